"""Calibrated probabilities from the matcher's scores: is the top candidate the animal, is it new?

Per species, two one-feature logistic fits (Platt scaling) on the validation protocol's queries,
both on the top candidate's score (the matcher's individual score): P(top candidate is the animal)
and P(the animal is not in the gallery). Platt rather than isotonic: a validation set of 80-300
queries a species gives a stepwise isotonic map few steps, while two parameters generalise. The
model card stores ``a`` and ``b`` (p = 1 / (1 + exp(-(a * score + b)))), so the matcher needs no
scikit-learn to apply them; the expected calibration error is measured on the test protocol.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from finprint.cuts import lowest_lasting_cut
from finprint_train.metrics import NEW_INDIVIDUAL, Ranking


@dataclass(frozen=True)
class Platt:
    a: float
    b: float

    def probability(self, scores: np.ndarray) -> np.ndarray:
        return 1.0 / (1.0 + np.exp(-(self.a * np.asarray(scores, dtype=np.float64) + self.b)))

    def as_dict(self) -> dict[str, float]:
        return {"a": round(self.a, 5), "b": round(self.b, 5)}


@dataclass(frozen=True)
class QueryOutcomes:
    """Per query: the top candidate's score, whether it is the animal, whether the animal is new."""

    top_score: np.ndarray
    top_correct: np.ndarray
    is_new: np.ndarray


def outcomes(ranking: Ranking, truths: list[str]) -> QueryOutcomes:
    top = np.array([float(s[0]) if len(s) else 0.0 for s in ranking.scores])
    correct = np.array([bool(ids) and ids[0] == t for ids, t in zip(ranking.ids, truths)])
    return QueryOutcomes(top, correct, np.array([t == NEW_INDIVIDUAL for t in truths]))


def fit_platt(scores: np.ndarray, labels: np.ndarray) -> Platt:
    """Logistic fit of ``labels`` on ``scores``; a constant when the labels are all alike."""
    from sklearn.linear_model import LogisticRegression

    labels = labels.astype(int)
    if labels.min() == labels.max():
        rate = min(max(float(labels.mean()), 1e-3), 1 - 1e-3)
        return Platt(0.0, math.log(rate / (1 - rate)))
    model = LogisticRegression(C=1e4).fit(scores.reshape(-1, 1), labels)
    return Platt(float(model.coef_[0][0]), float(model.intercept_[0]))


def expected_calibration_error(probabilities: np.ndarray, labels: np.ndarray, bins: int = 10) -> float:
    """Mean |accuracy - confidence| over equal-width probability bins, weighted by their queries."""
    edges = np.linspace(0.0, 1.0, bins + 1)
    which = np.clip(np.digitize(probabilities, edges[1:-1]), 0, bins - 1)
    error = 0.0
    for b in range(bins):
        inside = which == b
        if inside.any():
            error += inside.mean() * abs(labels[inside].mean() - probabilities[inside].mean())
    return float(error)


def reliability(probabilities: np.ndarray, labels: np.ndarray, bins: int = 10) -> list[dict[str, float]]:
    """The reliability diagram's points: per non-empty bin, mean confidence, accuracy, queries."""
    edges = np.linspace(0.0, 1.0, bins + 1)
    which = np.clip(np.digitize(probabilities, edges[1:-1]), 0, bins - 1)
    return [{"confidence": float(probabilities[which == b].mean()), "accuracy": float(labels[which == b].mean()),
             "queries": int((which == b).sum())} for b in range(bins) if (which == b).any()]


def plot_reliability(path: Path, diagrams: dict[str, dict[str, list[dict[str, float]]]]) -> None:
    """One panel per species: both probabilities against the diagonal."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(diagrams), figsize=(4.5 * len(diagrams), 4), squeeze=False)
    for ax, (species, curves) in zip(axes[0], sorted(diagrams.items())):
        ax.plot([0, 1], [0, 1], color="grey", linestyle=":", label="perfectly calibrated")
        for name, points in curves.items():
            ax.plot([p["confidence"] for p in points], [p["accuracy"] for p in points], marker="o", label=name)
        ax.set(title=f"{species} (test)", xlabel="predicted probability", ylabel="observed frequency",
               xlim=(0, 1), ylim=(0, 1))
        ax.legend(fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)


AUTO_ACCEPT_CUTS = np.round(np.arange(0.2, 1.0001, 0.01), 2)
"""Score cuts on which the validation precision of accepting the top candidate is measured."""
AUTO_ACCEPT_TARGETS = (0.9, 0.95, 0.99)
"""Precision targets whose test precision and coverage the calibration records."""


def precision_curve(val: QueryOutcomes) -> dict[str, list[float]]:
    """Per score cut: the precision of taking the top candidate of every query scoring at least the cut
    (a new animal above the cut counts as wrong: auto-accepting it would file it under another), and the
    share of queries above it (coverage). Cuts no query reaches are left out."""
    cuts, precision, coverage = [], [], []
    for cut in AUTO_ACCEPT_CUTS:
        above = val.top_score >= cut
        if above.any():
            cuts.append(float(cut))
            precision.append(round(float(val.top_correct[above].mean()), 4))
            coverage.append(round(float(above.mean()), 4))
    return {"cuts": cuts, "precision": precision, "coverage": coverage}


def cut_for(curve: dict[str, list[float]], target: float) -> float | None:
    """The lowest score cut whose validation precision reaches ``target`` and stays there at every
    higher cut (:func:`finprint.cuts.lowest_lasting_cut`); None when none does."""
    index = lowest_lasting_cut(curve["precision"], target)
    return None if index is None else curve["cuts"][index]


def at_cut(test: QueryOutcomes, cut: float | None) -> dict[str, float | int | None]:
    """What auto-accepting above ``cut`` does on other queries: precision, coverage, queries accepted."""
    if cut is None:
        return {"cut": None, "precision": None, "coverage": 0.0, "accepted": 0}
    above = test.top_score >= cut
    return {"cut": cut, "precision": round(float(test.top_correct[above].mean()), 4) if above.any() else None,
            "coverage": round(float(above.mean()), 4), "accepted": int(above.sum())}


def auto_accept_record(val: QueryOutcomes, test: QueryOutcomes) -> tuple[dict[str, list[float]], dict[str, Any]]:
    """The validation curve (for the card) and, per target, its cut's precision and coverage on test."""
    curve = precision_curve(val)
    return curve, {str(t): at_cut(test, cut_for(curve, t)) for t in AUTO_ACCEPT_TARGETS}


def species_calibration(val: QueryOutcomes, test: QueryOutcomes) -> tuple[dict[str, Any], dict[str, Any]]:
    """The two fits on validation (for the card), and their test calibration (for the record)."""
    fits = {"top_candidate": fit_platt(val.top_score, val.top_correct),
            "new_individual": fit_platt(val.top_score, val.is_new)}
    labels = {"top_candidate": test.top_correct, "new_individual": test.is_new}
    measured = {}
    for name, fit in fits.items():
        p = fit.probability(test.top_score)
        measured[name] = {"ece": round(expected_calibration_error(p, labels[name].astype(float)), 4),
                          "reliability": reliability(p, labels[name].astype(float))}
    return {name: fit.as_dict() for name, fit in fits.items()}, measured
