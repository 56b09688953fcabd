"""Ranking metrics, free of torch: the Happywhale/Kaggle MAP@5 with ``new_individual``,
CMC, and the classification summaries. The services and tests can use them without the
``train`` extra.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

NEW_INDIVIDUAL = "new_individual"
THRESHOLDS = np.round(np.arange(0.0, 1.0001, 0.01), 2)


def average_precision_at_5(predictions: list[str], truth: str) -> float:
    """Kaggle/Happywhale AP@5 for one image: 1/k for the first correct label at rank k
    (k <= 5), 0 if absent. Repeats of the correct label after the first count for nothing."""
    for k, label in enumerate(predictions[:5], start=1):
        if label == truth:
            return 1.0 / k
    return 0.0


def map_at_5(predictions: list[list[str]], truths: list[str]) -> float:
    """Mean of :func:`average_precision_at_5` over the images."""
    if not truths:
        return 0.0
    return float(np.mean([average_precision_at_5(p, t) for p, t in zip(predictions, truths)]))


@dataclass
class Ranking:
    """Per query: gallery individuals by decreasing best cosine similarity."""

    ids: list[list[str]]
    scores: list[np.ndarray]


def rank_individuals(queries: np.ndarray, gallery: np.ndarray, gallery_ids: list[str],
                     centroid_weight: float = 0.0) -> Ranking:
    """Score each individual by its best-matching gallery photo, as a k-NN matcher does; with
    ``centroid_weight`` w, by ``(1 - w) * best + w * cosine to the individual's centroid`` (the
    normalised mean of its photos), the matcher's ``IndividualScoring``."""
    individuals = sorted(set(gallery_ids))
    column = {ind: i for i, ind in enumerate(individuals)}
    sims = queries @ gallery.T  # [Q, G]
    best = np.full((len(queries), len(individuals)), -np.inf, dtype=np.float32)
    for g, ind in enumerate(gallery_ids):
        np.maximum(best[:, column[ind]], sims[:, g], out=best[:, column[ind]])
    if centroid_weight:
        centroids = np.zeros((len(individuals), gallery.shape[1]), dtype=np.float64)
        np.add.at(centroids, [column[i] for i in gallery_ids], gallery)
        centroids /= np.maximum(np.linalg.norm(centroids, axis=1, keepdims=True), 1e-12)
        best = ((1 - centroid_weight) * best + centroid_weight * (queries @ centroids.T)).astype(np.float32)
    order = np.argsort(-best, axis=1, kind="stable")
    return Ranking([[individuals[j] for j in row] for row in order], [best[q, row] for q, row in enumerate(order)])


def predictions_with_new(ranking: Ranking, threshold: float, k: int = 5) -> list[list[str]]:
    """Top-k labels with ``new_individual`` inserted before the first individual whose score
    is below ``threshold`` (the Kaggle protocol's way of predicting unseen individuals)."""
    out = []
    for ids, scores in zip(ranking.ids, ranking.scores):
        n_above = int((scores >= threshold).sum())
        labels = ids[:n_above] + [NEW_INDIVIDUAL] + ids[n_above:]
        out.append(labels[:k])
    return out


def threshold_curve(ranking: Ranking, truths: list[str]) -> np.ndarray:
    """MAP@5 at every candidate threshold in :data:`THRESHOLDS`."""
    return np.array([map_at_5(predictions_with_new(ranking, float(t)), truths) for t in THRESHOLDS])


def cmc(ranking: Ranking, truths: list[str], max_rank: int = 20) -> np.ndarray:
    """Fraction of known-individual queries whose individual is within the top r, r=1..max_rank."""
    hits = np.zeros(max_rank)
    known = [(ids, t) for ids, t in zip(ranking.ids, truths) if t != NEW_INDIVIDUAL]
    for ids, truth in known:
        if truth in ids[:max_rank]:
            hits[ids.index(truth) :] += 1
    return hits / max(1, len(known))


def confusion_matrix(truth: list[int], predicted: list[int], n: int) -> np.ndarray:
    matrix = np.zeros((n, n), dtype=int)
    for t, p in zip(truth, predicted):
        matrix[t, p] += 1
    return matrix


def macro_f1(matrix: np.ndarray) -> float:
    """Mean F1 over the classes that occur in the truth."""
    scores = []
    for c in range(len(matrix)):
        support = matrix[c].sum()
        if support == 0:
            continue
        tp = matrix[c, c]
        precision = tp / max(1, matrix[:, c].sum())
        recall = tp / support
        scores.append(0.0 if tp == 0 else 2 * precision * recall / (precision + recall))
    return float(np.mean(scores)) if scores else 0.0
