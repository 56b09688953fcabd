"""The shipped embedder run offline (onnxruntime, no services) on a protocol's photos.

Three ways to prepare a photo, one per stage of the product's pipeline, so that a gap between the
model and the API can be traced to the stage that makes it:

- ``training``: decoded as training and ``finprint evaluate`` decode (``read_image``);
- ``service``: decoded as the gateway decodes an upload (``load_model_input``), whole photo;
- ``service`` with regions: the region of the photo the API embedded (its detector's crop).

Ranking is the matcher's: each gallery individual scored by its best photo (cosine), with
``new_individual`` before the first individual below the species' threshold.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np

from finprint.imaging import Box, ImageLimits, load_model_input
from finprint.model_repository import OnnxModelSettings, create_session, locate_model
from finprint_train.data import read_image
from finprint_train.metrics import THRESHOLDS, map_at_5, predictions_with_new, rank_individuals

Decoding = Literal["training", "service"]
EMBEDDER = "finprint_embedder"


@dataclass(frozen=True)
class EmbedderCard:
    version: str
    input_size: int
    trim_letterbox: bool
    thresholds: dict[str, float]
    default_threshold: float
    centroid_weight: float
    """How the matcher scores individuals with this model's thresholds (``IndividualScoring``)."""

    def threshold_for(self, species: str) -> float:
        return self.thresholds.get(species, self.default_threshold)


class OfflineEmbedder:
    """The repository's embedder in process, memoising each (photo, decoding, region)."""

    def __init__(self, repository: Path, version: str = "", threads: int = 0, batch: int = 32) -> None:
        files = locate_model(repository, EMBEDDER, version)
        card = files.read_card()
        self.card = EmbedderCard(
            version=f"{EMBEDDER}:{files.version}",
            input_size=int(card["input_size"]),
            trim_letterbox=bool(card.get("trim_letterbox", False)),
            thresholds={k: float(v) for k, v in card.get("new_individual_thresholds_by_species", {}).items()},
            default_threshold=float(card.get("new_individual_threshold", 0.5)),
            centroid_weight=float((card.get("individual_scoring") or {}).get("centroid_weight", 0.0)),
        )
        self.session = create_session(files, OnnxModelSettings(intra_op_threads=threads))
        self.batch = batch
        self._memo: dict[tuple[Path, str, Box | None], np.ndarray] = {}

    def _pixels(self, path: Path, decoding: Decoding, region: Box | None) -> np.ndarray:
        size = self.card.input_size
        if decoding == "training":
            return read_image(path, size, trim_letterbox=self.card.trim_letterbox)
        made = load_model_input(path.read_bytes(), size, ImageLimits(), box=region,
                                trim_letterbox=self.card.trim_letterbox)
        return made.pixels

    def embed(self, paths: Sequence[Path], decoding: Decoding = "service",
              regions: Sequence[Box | None] | None = None) -> np.ndarray:
        """L2-normalised embeddings [N, D]; ``regions`` (service decoding) crops each photo first."""
        keys = [(p, decoding, None if regions is None else regions[i]) for i, p in enumerate(paths)]
        todo = list(dict.fromkeys(k for k in keys if k not in self._memo))
        for start in range(0, len(todo), self.batch):
            chunk = todo[start : start + self.batch]
            pixels = np.stack([self._pixels(*key) for key in chunk])
            vectors = self.session.run(["embedding"], {"images": pixels})[0]
            vectors /= np.linalg.norm(vectors, axis=1, keepdims=True) + 1e-12
            for key, vector in zip(chunk, vectors):
                self._memo[key] = vector
        return np.stack([self._memo[k] for k in keys]) if keys else np.zeros((0, 1), np.float32)


def ranked_labels(queries: np.ndarray, gallery: np.ndarray, gallery_ids: Sequence[str],
                  threshold: float, centroid_weight: float = 0.0) -> list[list[str]]:
    """Top-5 labels per query, as the matcher ranks them."""
    return predictions_with_new(rank_individuals(queries, gallery, list(gallery_ids), centroid_weight), threshold)


def best_threshold(queries: np.ndarray, gallery: np.ndarray, gallery_ids: Sequence[str],
                   truths: Sequence[str], centroid_weight: float = 0.0) -> float:
    """The ``new_individual`` threshold that maximises MAP@5 on these queries (validation only)."""
    ranking = rank_individuals(queries, gallery, list(gallery_ids), centroid_weight)
    curve = [map_at_5(predictions_with_new(ranking, float(t)), list(truths)) for t in THRESHOLDS]
    return float(THRESHOLDS[int(np.argmax(curve))])
