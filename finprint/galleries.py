"""How close two individuals' galleries are: the rule that finds individuals catalogued twice.

A pair's score mixes, as an individual is scored against a query (the matcher's
``IndividualScoring``, with the model card's weight w), the best cosine between a photo of one and a
photo of the other and the cosine between their galleries' centroids:
``(1 - w) * best photo pair + w * centroid cosine``. The matcher applies it to an index
(``POST /v1/duplicates``) and ``finprint calibrate`` to the validation and test individuals, so the
cut chosen is the cut applied.

Only pairs with a photo among each other's ``neighbours`` nearest photos of other individuals are
scored: a pair whose closest photos are not even that near is no duplicate, and the work stays
about linear in the photos (a chunked product, never the full photo-by-photo matrix at once).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

NEIGHBOURS = 10
_CHUNK = 1024


@dataclass(frozen=True)
class GalleryPair:
    """Two individuals (``a`` < ``b``), their score, and the photos (row numbers) of their best pair."""

    a: str
    b: str
    score: float
    best: float
    centroid: float
    photo_a: int
    photo_b: int


def gallery_pairs(vectors: np.ndarray, owners: Sequence[str], centroid_weight: float,
                  neighbours: int = NEIGHBOURS, min_score: float = -1.0) -> list[GalleryPair]:
    """The pairs of individuals scoring at least ``min_score``, best first (ties by ids).

    ``vectors``: unit rows, one per photo; ``owners``: each photo's individual."""
    vectors = np.ascontiguousarray(vectors, dtype=np.float32)
    names = sorted(set(owners))
    if len(names) < 2:
        return []
    column = {name: i for i, name in enumerate(names)}
    owner = np.array([column[o] for o in owners])
    best: dict[tuple[int, int], tuple[float, int, int]] = {}
    k = min(neighbours, len(vectors) - 1)
    for start in range(0, len(vectors), _CHUNK):
        rows = np.arange(start, min(start + _CHUNK, len(vectors)))
        sims = vectors[rows] @ vectors.T
        sims[owner[rows][:, None] == owner[None, :]] = -np.inf  # photos of the same individual
        nearest = np.argpartition(-sims, k - 1, axis=1)[:, :k]
        for r, cols in zip(rows, nearest):
            for c in cols:
                s = float(sims[r - start, c])
                if s == -np.inf:
                    continue
                pair, photos = ((owner[r], owner[c]), (r, c)) if owner[r] < owner[c] else ((owner[c], owner[r]), (c, r))
                if pair not in best or s > best[pair][0]:
                    best[pair] = (s, int(photos[0]), int(photos[1]))
    centroids = np.zeros((len(names), vectors.shape[1]), dtype=np.float64)
    np.add.at(centroids, owner, vectors)
    centroids /= np.maximum(np.linalg.norm(centroids, axis=1, keepdims=True), 1e-12)
    pairs = []
    for (i, j), (s, photo_i, photo_j) in best.items():
        centroid = float(centroids[i] @ centroids[j])
        score = (1 - centroid_weight) * s + centroid_weight * centroid
        if score >= min_score:
            pairs.append(GalleryPair(names[i], names[j], round(score, 6), round(s, 6), round(centroid, 6),
                                     photo_i, photo_j))
    return sorted(pairs, key=lambda p: (-p.score, p.a, p.b))
