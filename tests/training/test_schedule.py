"""The time-budget bookkeeping of `finprint train`: a suspended process does not eat the budget."""

from __future__ import annotations

from collections import deque

import pytest

pytestmark = pytest.mark.train


def test_a_step_held_up_by_a_suspension_counts_as_a_typical_step() -> None:
    from finprint_train.train import budgeted_step_time

    recent: deque[float] = deque(maxlen=50)
    counted = [budgeted_step_time(1.0 + 0.01 * i, recent) for i in range(12)]
    assert counted == pytest.approx([1.0 + 0.01 * i for i in range(12)])  # ordinary steps count as taken
    assert budgeted_step_time(600.0, recent) == pytest.approx(1.055, abs=0.01)  # kill -STOP for ten minutes
    assert budgeted_step_time(3.0, recent) == 3.0  # slower, but not suspended: it counts


def test_early_steps_count_whatever_they_took() -> None:
    from finprint_train.train import budgeted_step_time

    recent: deque[float] = deque(maxlen=50)
    assert budgeted_step_time(30.0, recent) == 30.0  # no history yet to call it unusual
