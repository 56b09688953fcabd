"""The detector model in process through onnxruntime, from a Triton-layout model repository."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from finprint.model_repository import create_session, locate_model
from finprint.schemas.common import ModelInfo
from services.detector.domain.detection import DetectorCard, DetectorOutput
from services.detector.settings import DetectorSettings


def load_card(path: Path) -> DetectorCard:
    raw = json.loads(path.read_text())
    return DetectorCard(
        input_size=int(raw["input_size"]),
        views=tuple(raw["views"]),
        cetacean_threshold=float(raw["cetacean_threshold"]),
        heatmap_box_threshold=float(raw["heatmap_box_threshold"]),
        trim_letterbox=bool(raw.get("trim_letterbox", False)),
    )


class OnnxDetector:
    """One onnxruntime session; ``detect`` blocks, so callers run it in a worker thread."""

    def __init__(self, settings: DetectorSettings) -> None:
        files = locate_model(settings.model_repository, settings.model_name, settings.model_version)
        self.info = ModelInfo(name=files.name, version=files.version)
        self.card = load_card(files.card)
        self.session = create_session(files, settings)

    def detect(self, pixels: np.ndarray) -> DetectorOutput:
        """``pixels``: uint8 RGB [input_size, input_size, 3]."""
        cetacean_prob, view_probs, heatmap = self.session.run(
            ["cetacean_prob", "view_probs", "heatmap"], {"images": pixels[np.newaxis]}
        )
        return DetectorOutput(float(np.clip(cetacean_prob[0], 0.0, 1.0)), view_probs[0], heatmap[0])
