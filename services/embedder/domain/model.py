"""What the embedder knows about its model, and the interface every backend implements."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np

from finprint.schemas.common import ModelInfo, SpeciesScore

INPUT_NAME = "images"
EMBEDDING_OUTPUT = "embedding"
SPECIES_OUTPUT = "species_probs"


@dataclass(frozen=True)
class EmbedderCard:
    """What ``finprint.json`` says about an embedder model."""

    input_size: int
    species: tuple[str, ...]
    embedding_dim: int
    trim_letterbox: bool = False
    """The model was trained on photos with uniform white letterbox bars trimmed."""


class EmbeddingBackend(Protocol):
    """Runs the embedder model on a batch of uint8 RGB images [N, size, size, 3].

    ``model`` and ``card`` describe the model being served once :meth:`start` has succeeded
    (``card`` is None before).
    """

    model: ModelInfo
    card: EmbedderCard | None

    async def start(self) -> None:
        """Load or connect; raises when the model cannot be served."""

    async def close(self) -> None: ...

    async def check_ready(self) -> None:
        """Raises while the model cannot answer."""

    async def embed(self, images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(embeddings float32 [N, dim], L2-normalised; species probabilities float32 [N, S])."""
        ...


def ranked_species(probabilities: np.ndarray, species: tuple[str, ...]) -> list[SpeciesScore]:
    """Every species with its probability, highest first."""
    order = np.argsort(-probabilities, kind="stable")
    return [SpeciesScore(species=species[i], score=float(min(max(probabilities[i], 0.0), 1.0))) for i in order]
