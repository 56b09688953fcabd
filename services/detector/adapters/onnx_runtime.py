"""The detector model in process through onnxruntime, from a Triton-layout model repository."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnxruntime as ort

from finprint.schemas.common import ModelInfo
from services.detector.domain.detection import DetectorCard, DetectorOutput
from services.detector.settings import DetectorSettings

log = logging.getLogger("finprint.detector.model")
MODEL_FILE = "model.onnx"
CARD_FILE = "finprint.json"


@dataclass(frozen=True)
class ModelFiles:
    info: ModelInfo
    onnx: Path
    card: Path


def locate_model(repository: Path, name: str, version: str) -> ModelFiles:
    """The ONNX file and finprint.json of ``name`` at ``version`` ("" = highest numbered)."""
    model_dir = repository / name
    if not version:
        versions = sorted(int(p.name) for p in model_dir.glob("*") if p.name.isdigit() and (p / MODEL_FILE).exists())
        if not versions:
            raise FileNotFoundError(f"no {name}/<version>/{MODEL_FILE} in {repository}")
        version = str(versions[-1])
    onnx_path = model_dir / version / MODEL_FILE
    if not onnx_path.exists():
        raise FileNotFoundError(f"{onnx_path} does not exist")
    # A version may carry its own card; otherwise the model's card describes every version.
    card = next((p for p in (model_dir / version / CARD_FILE, model_dir / CARD_FILE) if p.exists()), None)
    if card is None:
        raise FileNotFoundError(f"no {CARD_FILE} for {name} version {version} in {repository}")
    return ModelFiles(ModelInfo(name=name, version=version), onnx_path, card)


def providers_for(preference: str) -> list[str]:
    available = ort.get_available_providers()
    if preference != "cpu" and "CUDAExecutionProvider" in available:
        return ["CUDAExecutionProvider", "CPUExecutionProvider"]
    if preference == "cuda":
        log.warning("CUDA requested but this onnxruntime has no CUDA provider (install onnxruntime-gpu)")
    return ["CPUExecutionProvider"]


def session_options(intra_op_threads: int, allow_spinning: bool) -> ort.SessionOptions:
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.intra_op_num_threads = intra_op_threads
    options.inter_op_num_threads = 1
    options.add_session_config_entry("session.intra_op.allow_spinning", "1" if allow_spinning else "0")
    return options


def load_card(path: Path) -> DetectorCard:
    raw = json.loads(path.read_text())
    return DetectorCard(
        input_size=int(raw["input_size"]),
        views=tuple(raw["views"]),
        cetacean_threshold=float(raw["cetacean_threshold"]),
        heatmap_box_threshold=float(raw["heatmap_box_threshold"]),
    )


class OnnxDetector:
    """One onnxruntime session; ``detect`` blocks, so callers run it in a worker thread."""

    def __init__(self, settings: DetectorSettings) -> None:
        files = locate_model(settings.model_repository, settings.model_name, settings.model_version)
        self.info = files.info
        self.card = load_card(files.card)
        self.session = ort.InferenceSession(
            str(files.onnx),
            sess_options=session_options(settings.intra_op_threads, settings.allow_spinning),
            providers=providers_for(settings.execution_provider),
        )
        log.info(
            "detector model loaded",
            extra={"fields": {"model": f"{self.info.name}:{self.info.version}", "path": str(files.onnx),
                              "provider": self.session.get_providers()[0]}},
        )

    def detect(self, pixels: np.ndarray) -> DetectorOutput:
        """``pixels``: uint8 RGB [input_size, input_size, 3]."""
        cetacean_prob, view_probs, heatmap = self.session.run(
            ["cetacean_prob", "view_probs", "heatmap"], {"images": pixels[np.newaxis]}
        )
        return DetectorOutput(float(np.clip(cetacean_prob[0], 0.0, 1.0)), view_probs[0], heatmap[0])
