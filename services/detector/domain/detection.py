"""The detector's answer for one photo, from the model's three outputs."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from services.detector.domain.heatmap import box_from_heatmap


@dataclass(frozen=True)
class DetectorCard:
    """What ``finprint.json`` says about a detector model."""

    input_size: int
    views: tuple[str, ...]
    cetacean_threshold: float
    heatmap_box_threshold: float
    trim_letterbox: bool = False
    """The model was trained on photos with uniform white letterbox bars trimmed."""


@dataclass(frozen=True)
class DetectorOutput:
    """The model's outputs for one photo."""

    cetacean_prob: float
    view_probs: np.ndarray
    heatmap: np.ndarray


@dataclass(frozen=True)
class Finding:
    box: tuple[int, int, int, int]
    view: str
    score: float
    view_scores: dict[str, float]


def find_cetacean(
    output: DetectorOutput, card: DetectorCard, region: tuple[float, float, float, float], margin: float
) -> Finding | None:
    """The animal in the ``region`` (x0, y0, x1, y1 pixels of the photo) the model saw, or None
    when the model says there is none."""
    if output.cetacean_prob < card.cetacean_threshold:
        return None
    box = box_from_heatmap(output.heatmap, card.heatmap_box_threshold, margin).to_pixels(region)
    view_scores = {view: float(p) for view, p in zip(card.views, output.view_probs)}
    view = max(view_scores, key=view_scores.__getitem__)
    return Finding(box=box, view=view, score=float(output.cetacean_prob), view_scores=view_scores)
