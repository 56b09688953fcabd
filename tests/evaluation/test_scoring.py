"""MAP@5, top-k and new-individual recall of ranked answers, on cases worked by hand."""

from __future__ import annotations

import pytest

from finprint_train.evaluation.scoring import bootstrap_interval, score
from finprint_train.metrics import NEW_INDIVIDUAL as NEW


def test_scores_of_hand_made_answers() -> None:
    rankings = [
        ["a", NEW, "b"],  # known a, first: 1
        [NEW, "a", "b"],  # known b, third: 1/3, top-5 yes, top-1 no
        ["c", NEW],  # new, second: 1/2
        [],  # known a, rejected photo: 0
    ]
    truths = ["a", "b", NEW, "a"]
    s = score(rankings, truths)
    assert s.map5 == pytest.approx((1 + 1 / 3 + 1 / 2 + 0) / 4)
    assert s.top1 == pytest.approx(1 / 3)  # a of (a, b, a)
    assert s.top5 == pytest.approx(2 / 3)
    assert s.new_recall == 0.0
    assert s.map5_ci[0] <= s.map5 <= s.map5_ci[1]


def test_bootstrap_interval_narrows_with_more_queries() -> None:
    few = bootstrap_interval([0.0, 1.0] * 10)
    many = bootstrap_interval([0.0, 1.0] * 500)
    assert few[0] < many[0] < 0.5 < many[1] < few[1]
