"""The embedder's files in a Triton-layout model repository: <name>/<version>/model.onnx, finprint.json."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from services.embedder.domain.model import EmbedderCard

MODEL_FILE = "model.onnx"
CARD_FILE = "finprint.json"


@dataclass(frozen=True)
class ModelFiles:
    version: str
    onnx: Path
    card: Path


def latest_version(repository: Path, name: str) -> str:
    model_dir = repository / name
    versions = sorted(int(p.name) for p in model_dir.glob("*") if p.name.isdigit() and (p / MODEL_FILE).exists())
    if not versions:
        raise FileNotFoundError(f"no {name}/<version>/{MODEL_FILE} in {repository}")
    return str(versions[-1])


def locate_model(repository: Path, name: str, version: str) -> ModelFiles:
    """The files of ``name`` at ``version`` ("" = highest numbered)."""
    version = version or latest_version(repository, name)
    model_dir = repository / name
    # A version may carry its own card; otherwise the model's card describes every version.
    card = next((p for p in (model_dir / version / CARD_FILE, model_dir / CARD_FILE) if p.exists()), None)
    if card is None:
        raise FileNotFoundError(f"no {CARD_FILE} for {name} version {version} in {repository}")
    return ModelFiles(version, model_dir / version / MODEL_FILE, card)


def load_card(path: Path) -> EmbedderCard:
    raw = json.loads(path.read_text())
    return EmbedderCard(
        input_size=int(raw["input_size"]),
        species=tuple(raw["species"]),
        embedding_dim=int(raw.get("embedding_dim", 512)),
    )
