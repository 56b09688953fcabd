"""``finprint calibrate --out``'s report.md: what was chosen on validation and what it did on test,
per species (thresholds, calibration error, auto-accept precision and coverage, possible duplicates)."""

from __future__ import annotations

from typing import Any


def _num(value: float | None, digits: int = 3) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def _share(precision: float | None, count: int) -> str:
    """Right out of ``count``, from a precision over ``count`` items."""
    return "" if precision is None or not count else f" ({round(precision * count)}/{count})"


def calibration_report(record: dict[str, Any]) -> str:
    protocol = record["protocol"]
    lines = [f"# Calibration of {record['model']}", "",
             f"Validation protocol `{protocol['val']}` (chooses), test protocol `{protocol['test']}` (measures); "
             f"individuals scored with centroid weight {record['centroid_weight']}.", "",
             "## New-individual thresholds", "",
             "| species | threshold | validation MAP@5 | test MAP@5 |", "|---|---|---|---|"]
    for sp, threshold in sorted(record["new_individual_thresholds_by_species"].items()):
        lines.append(f"| {sp} | {threshold} | {_num(record['val_map5'].get(sp))} | {_num(record['test_map5'].get(sp))} |")
    lines += ["", "## Calibrated probabilities: expected calibration error on test", "",
              "| species | P(top candidate is the animal) | P(the animal is new) |", "|---|---|---|"]
    for sp, ece in sorted(record["test_calibration"].items()):
        lines.append(f"| {sp} | {_num(ece['top_candidate'], 4)} | {_num(ece['new_individual'], 4)} |")
    lines += ["", "![reliability diagrams](reliability.png)", "",
              "## Auto-accept: the validation cut of each precision target, on test", "",
              "| species | target | cut | test precision (right/accepted) | test coverage |", "|---|---|---|---|---|"]
    for sp, targets in sorted(record["test_auto_accept"].items()):
        for target, at in targets.items():
            lines.append(f"| {sp} | {target} | {_num(at['cut'], 2)} | {_num(at['precision'])}"
                         f"{_share(at['precision'], at['accepted'])} | {_num(at['coverage'])} |")
    duplicates = record.get("duplicates_validation") or {}
    lines += ["", "## Possible duplicates: individuals split in two", ""]
    if not duplicates:
        lines.append("No cut reached the precision target on validation: nothing would be filed.")
    else:
        lines += [f"One cut for every species, {duplicates['cut']}, chosen on the validation pairs of all of them "
                  f"(precision {_num(duplicates['precision'])}, recall {_num(duplicates['recall'])} of "
                  f"{duplicates['planted']} planted duplicates).", "",
                  "| species | test precision (right/filed) | test recall (found/planted) |", "|---|---|---|"]
        for sp, at in sorted(record["test_duplicates"].items()):
            found = round(at["recall"] * at["planted"])
            lines.append(f"| {sp} | {_num(at['precision'])}{_share(at['precision'], at['filed'])} | "
                         f"{_num(at['recall'])} ({found}/{at['planted']}) |")
    return "\n".join(lines) + "\n"
