"""Choosing a score cut for a precision target, from precisions measured at increasing cuts.

Shared by ``finprint calibrate`` (which chooses) and the matcher (which applies the card's curves to
an organisation's target), so both pick the same cut.
"""

from __future__ import annotations

from collections.abc import Sequence


def lowest_lasting_cut(precision: Sequence[float], target: float) -> int | None:
    """The index of the lowest cut from which the precision stays at or above ``target`` at every
    higher cut; None when even the highest misses it. "Stays": on a few hundred validation queries
    precision is noisy, and a lucky dip in the wrong answers must not set the cut below a stretch
    where the target fails."""
    found = None
    for i in range(len(precision) - 1, -1, -1):
        if precision[i] < target:
            break
        found = i
    return found
