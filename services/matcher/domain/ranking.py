"""From image hits to ranked individuals, and the new-individual decision.

A catalogue holds several images per individual. Ranking images would let one well-photographed
individual fill every slot; the Happywhale solutions instead score each individual by its best
image, and answer "new_individual" where the best similarity falls below a threshold. Scoring an
individual also by the centroid of its images (``IndividualScoring``) measured better on the
validation individuals of every species (docs/models.md), and the model card says which rule its
thresholds were chosen with.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

from finprint.schemas.matcher import NEW_INDIVIDUAL


@dataclass(frozen=True)
class ImageHit:
    """One gallery image returned by the index for a query."""

    embedding_id: str
    individual_id: str
    score: float


@dataclass(frozen=True)
class IndividualScore:
    individual_id: str
    score: float
    best_embedding_id: str


@dataclass(frozen=True)
class IndividualScoring:
    """An individual's score: ``(1 - w) * best image cosine + w * cosine to its images' centroid``.

    w = 0 is the best image alone. The centroid is the normalised mean of the individual's unit
    vectors; ``finprint_train.metrics.rank_individuals`` implements the same rule offline.
    """

    centroid_weight: float = 0.0

    def rescored(self, candidates: list[IndividualScore], centroid_similarities: list[float]) -> list[IndividualScore]:
        w = self.centroid_weight
        mixed = [
            IndividualScore(c.individual_id, (1 - w) * c.score + w * centroid, c.best_embedding_id)
            for c, centroid in zip(candidates, centroid_similarities)
        ]
        return sorted(mixed, key=lambda c: (-c.score, c.individual_id))


BEST_IMAGE = IndividualScoring(0.0)


@dataclass(frozen=True)
class NewIndividualRule:
    """The threshold on the top-1 similarity, and how sharply the probability turns around it.

    The probability is a logistic in the top-1 cosine similarity, 0.5 at the threshold; the
    temperature is the similarity change that moves the log-odds by one.
    """

    threshold: float
    temperature: float

    def probability(self, top_score: float | None) -> float:
        if top_score is None:
            return 1.0  # an empty gallery: whatever this is, the catalogue does not hold it
        log_odds = (self.threshold - top_score) / self.temperature
        return _sigmoid(log_odds)

    def ranking(self, candidates: list[IndividualScore], k: int) -> list[str]:
        """Individual ids best first, with NEW_INDIVIDUAL placed before the first one below the threshold.

        When every candidate clears the threshold and there are fewer than k, "new individual" is
        still the next-best answer, so it comes last.
        """
        labels: list[str] = []
        placed = False
        for candidate in candidates:
            if not placed and candidate.score < self.threshold:
                labels.append(NEW_INDIVIDUAL)
                placed = True
            labels.append(candidate.individual_id)
        if not placed:
            labels.append(NEW_INDIVIDUAL)
        return labels[:k]


def _sigmoid(x: float) -> float:
    if x >= 0:
        return 1.0 / (1.0 + math.exp(-x))
    z = math.exp(x)
    return z / (1.0 + z)


def best_per_individual(hits: Iterable[ImageHit]) -> list[IndividualScore]:
    """Each individual once, scored by its best image; best first, ties broken by id for stable output."""
    best: dict[str, ImageHit] = {}
    for hit in hits:
        current = best.get(hit.individual_id)
        if current is None or hit.score > current.score:
            best[hit.individual_id] = hit
    ordered = sorted(best.values(), key=lambda h: (-h.score, h.individual_id))
    return [IndividualScore(h.individual_id, h.score, h.embedding_id) for h in ordered]
