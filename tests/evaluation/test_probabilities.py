"""Platt scaling and the expected calibration error, on cases whose answer is known."""

from __future__ import annotations

import numpy as np
import pytest

from finprint_train.evaluation.probabilities import (
    Platt,
    QueryOutcomes,
    at_cut,
    cut_for,
    expected_calibration_error,
    fit_platt,
    outcomes,
    precision_curve,
    reliability,
)
from finprint_train.metrics import NEW_INDIVIDUAL, Ranking


def test_a_fit_recovers_the_logistic_that_made_the_labels() -> None:
    rng = np.random.default_rng(0)
    scores = rng.uniform(0.0, 1.0, 20_000)
    truth = Platt(12.0, -6.0)
    labels = rng.uniform(size=scores.size) < truth.probability(scores)
    fitted = fit_platt(scores, labels)
    assert fitted.a == pytest.approx(12.0, rel=0.1) and fitted.b == pytest.approx(-6.0, rel=0.1)
    # Calibrated on its own kind of data, the error is small; a fit of the wrong sign is not.
    assert expected_calibration_error(fitted.probability(scores), labels.astype(float)) < 0.02
    assert expected_calibration_error(Platt(-12.0, 6.0).probability(scores), labels.astype(float)) > 0.3


def test_labels_all_alike_give_a_constant() -> None:
    fitted = fit_platt(np.array([0.2, 0.5, 0.9]), np.array([True, True, True]))
    assert fitted.a == 0.0 and fitted.probability(np.array([0.0, 1.0])) == pytest.approx([0.999, 0.999])


def test_expected_calibration_error_by_hand() -> None:
    # Bins of 0.1: [0.1, 0.2) holds 0.1 (observed 0), [0.2, 0.3) holds 0.2 (observed 1), [0.9, 1.0] holds
    # 0.9 and 1.0 (observed 1): 0.25 * 0.1 + 0.25 * 0.8 + 0.5 * 0.05.
    p = np.array([0.1, 0.2, 0.9, 1.0])
    y = np.array([0.0, 1.0, 1.0, 1.0])
    assert expected_calibration_error(p, y) == pytest.approx(0.25 * 0.1 + 0.25 * 0.8 + 0.5 * 0.05)
    assert [b["queries"] for b in reliability(p, y)] == [1, 1, 2]


def test_outcomes_of_a_ranking() -> None:
    ranking = Ranking([["a", "b"], ["b", "a"], ["a"]], [np.array([0.9, 0.1]), np.array([0.5, 0.4]), np.array([0.3])])
    got = outcomes(ranking, ["a", "a", NEW_INDIVIDUAL])
    assert got.top_score.tolist() == [0.9, 0.5, 0.3]
    assert got.top_correct.tolist() == [True, False, False]
    assert got.is_new.tolist() == [False, False, True]


def test_the_auto_accept_cut_is_the_lowest_reaching_the_target() -> None:
    # Top scores 0.3 .. 0.9; wrong answers at 0.3, 0.4 and 0.6 (the last a new animal scoring high).
    val = QueryOutcomes(np.array([0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9]),
                        np.array([False, False, True, False, True, True, True]), np.zeros(7, bool))
    curve = precision_curve(val)
    assert curve["cuts"][0] == 0.2 and curve["cuts"][-1] == 0.9  # nothing scores above 0.9
    by_cut = dict(zip(curve["cuts"], curve["precision"]))
    assert by_cut[0.5] == 0.8 and by_cut[0.61] == 1.0 and by_cut[0.2] == pytest.approx(4 / 7, abs=1e-4)
    assert cut_for(curve, 0.75) == 0.41 and cut_for(curve, 0.99) == 0.61
    assert cut_for({"cuts": [0.5], "precision": [0.9], "coverage": [0.1]}, 0.95) is None
    # A lucky stretch below a cut that misses the target does not count: the precision must last.
    assert cut_for({"cuts": [0.4, 0.5, 0.6], "precision": [0.95, 0.8, 0.96], "coverage": [0.3, 0.2, 0.1]}, 0.9) == 0.6
    test = QueryOutcomes(np.array([0.5, 0.65, 0.7]), np.array([True, False, True]), np.zeros(3, bool))
    assert at_cut(test, 0.61) == {"cut": 0.61, "precision": 0.5, "coverage": pytest.approx(2 / 3, abs=1e-4),
                                  "accepted": 2}
    assert at_cut(test, None)["coverage"] == 0.0
