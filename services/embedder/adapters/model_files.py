"""The embedder's card (finprint.json) in the model repository."""

from __future__ import annotations

import json
from pathlib import Path

from services.embedder.domain.model import EmbedderCard


def load_card(path: Path) -> EmbedderCard:
    raw = json.loads(path.read_text())
    return EmbedderCard(
        input_size=int(raw["input_size"]),
        species=tuple(raw["species"]),
        embedding_dim=int(raw.get("embedding_dim", 512)),
        trim_letterbox=bool(raw.get("trim_letterbox", False)),
    )
