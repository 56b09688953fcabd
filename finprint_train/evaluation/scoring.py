"""Scores of one ranked answer per query: MAP@5 with ``new_individual``, top-k, and their spread."""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from finprint_train.metrics import NEW_INDIVIDUAL, average_precision_at_5


@dataclass(frozen=True)
class Scores:
    map5: float
    map5_ci: tuple[float, float]
    """95% bootstrap interval over the queries: how much of a difference is noise."""
    top1: float
    top5: float
    new_recall: float
    """Share of the new individuals' queries answered ``new_individual`` first."""
    queries: int

    def as_dict(self) -> dict[str, float | int | list[float]]:
        return {"map5": round(self.map5, 4), "map5_ci": [round(v, 4) for v in self.map5_ci],
                "top1": round(self.top1, 4), "top5": round(self.top5, 4),
                "new_recall": round(self.new_recall, 4), "queries": self.queries}


def bootstrap_interval(values: Sequence[float], rounds: int = 1000, seed: int = 0) -> tuple[float, float]:
    if not values:
        return (0.0, 0.0)
    rng = random.Random(seed)
    data = np.asarray(values, dtype=np.float64)
    means = sorted(float(data[[rng.randrange(len(data)) for _ in data]].mean()) for _ in range(rounds))
    return means[int(0.025 * rounds)], means[int(0.975 * rounds) - 1]


def score(rankings: Sequence[Sequence[str]], truths: Sequence[str]) -> Scores:
    """``rankings``: per query, the labels best first (individual ids and ``new_individual``)."""
    ap = [average_precision_at_5(list(r), t) for r, t in zip(rankings, truths)]
    known = [(list(r), t) for r, t in zip(rankings, truths) if t != NEW_INDIVIDUAL]
    new = [list(r) for r, t in zip(rankings, truths) if t == NEW_INDIVIDUAL]
    individuals_only = [[label for label in r if label != NEW_INDIVIDUAL] for r, _ in known]
    return Scores(
        map5=float(np.mean(ap)) if ap else 0.0,
        map5_ci=bootstrap_interval(ap),
        top1=float(np.mean([bool(r) and r[0] == t for r, (_, t) in zip(individuals_only, known)])) if known else 0.0,
        top5=float(np.mean([t in r[:5] for r, (_, t) in zip(individuals_only, known)])) if known else 0.0,
        new_recall=float(np.mean([bool(r) and r[0] == NEW_INDIVIDUAL for r in new])) if new else 0.0,
        queries=len(truths),
    )
