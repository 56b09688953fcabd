"""Markdown helpers of the page's sections: tables, ratios, paths."""

from __future__ import annotations

from pathlib import Path

from bench.runner import REPO


def table(header: list[str], rows: list[list[object]]) -> str:
    def cell(value: object) -> str:
        if isinstance(value, float):
            return f"{value:,.3g}" if abs(value) < 100 else f"{value:,.0f}"
        return "–" if value is None else str(value)

    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def ratio(a: object, b: object) -> float | None:
    return a / b if isinstance(a, int | float) and isinstance(b, int | float) and b else None


def x(value: float | None) -> str:
    return "–" if value is None else f"{value:.2f}x"



def repo_relative(path: str) -> str:
    try:
        return str(Path(path).relative_to(REPO))
    except ValueError:
        return path

