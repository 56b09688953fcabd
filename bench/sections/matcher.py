"""Matcher (issue 5): FAISS against scikit-learn's brute-force KNN (bench_matcher)."""

from __future__ import annotations

import json
from pathlib import Path

from bench.markdown import table, x
from bench.runner import REPO, newest_result
from bench.targets import MATCHER_20X, MATCHER_P99, Target

TITLE = "Matcher: FAISS against scikit-learn (issue 5)"


def render(data: dict, targets: list[Target], full: bool) -> str:
    parts = []
    rows = data.get("rows", [])
    for dataset in dict.fromkeys(r["dataset"] for r in rows):
        mine = [r for r in rows if r["dataset"] == dataset]
        parts.append(
            f"**{dataset}**\n\n"
            + table(
                [
                    "engine",
                    "q/s batch 1",
                    "p50 ms",
                    "p99 ms",
                    "q/s batch 64",
                    "recall@5",
                    "bytes/vector",
                    "RSS MB",
                    "build s",
                ],
                [
                    [
                        r["engine"],
                        r["batch1_qps"],
                        r["batch1_p50_ms"],
                        r["batch1_p99_ms"],
                        r["batch64_qps"],
                        r["recall_at_5"],
                        r["bytes_per_vector"],
                        r["rss_delta_mb"],
                        r["build_s"],
                    ]
                    for r in mine
                ],
            )
        )
    summary = data.get("ratios", [])
    earlier = None if full else newest_result("matcher", "full")
    if summary:
        parts.append(
            "Matcher ÷ scikit-learn queries/s (the matcher's default index):\n\n"
            + table(
                ["gallery", "matcher index", "batch 1", "batch 64", "HTTP b64 batch 1"],
                [
                    [
                        s["dataset"],
                        s["matcher_engine"],
                        x(s["batch1_qps_ratio"]),
                        x(s["batch64_qps_ratio"]),
                        x(s.get("http_b64_batch1_qps_ratio")),
                    ]
                    for s in summary
                ],
            )
        )
    matcher_targets(rows, summary, targets)
    if earlier is not None:
        replace_1m_targets(targets, *earlier)
    return (
        "Synthetic clustered 512-d galleries shaped like re-identification embeddings (a third of the "
        "queries are new individuals); peer: scikit-learn `NearestNeighbors(brute, cosine)`, the seed "
        "paper's KNN, on the same gallery and queries. Latencies in ms.\n\n" + "\n\n".join(parts)
    )


def _default_row(rows: list[dict], summary: list[dict], dataset: str) -> dict | None:
    engine = next((s["matcher_engine"] for s in summary if s["dataset"] == dataset), None)
    return next((r for r in rows if r["dataset"] == dataset and r["engine"] == engine), None)


def replace_1m_targets(targets: list[Target], path: Path, stamp: str) -> None:
    """Quick mode has no 1M gallery: its targets come from the newest full run, marked as such."""
    data = json.loads(path.read_text())
    from_full: list[Target] = []
    matcher_targets(data.get("rows", []), data.get("ratios", []), from_full)
    for mine, theirs in zip(targets[-3:], from_full):
        if mine.met is None and theirs.met is not None:
            mine.measured = (
                f"{theirs.measured} — from the earlier full run of {stamp} (`{path.relative_to(REPO)}`)"
            )
            mine.met, mine.reason = theirs.met, theirs.reason


def matcher_targets(rows: list[dict], summary: list[dict], targets: list[Target]) -> None:
    for size, limit in (("100k", 10.0), ("1M", 25.0)):
        row = _default_row(rows, summary, f"synthetic-{size}")
        if row is None:
            targets.append(Target.of(MATCHER_P99[size], "not measured in this run (1M is in `--full`)", None))
            continue
        ok = row["batch1_p99_ms"] <= limit and (row["recall_at_5"] or 0) >= 0.99
        measured = (f"p99 {row['batch1_p99_ms']:.2f} ms, p50 {row['batch1_p50_ms']:.2f} ms, "
                    f"recall@5 {row['recall_at_5']:.3f} ({row['engine']})")
        reason = "" if ok else (f"a long tail: p50 {row['batch1_p50_ms']:.2f} ms, p99 "
                                f"{row['batch1_p99_ms']:.2f} ms; see the nprobe sweep rows")
        targets.append(Target.of(MATCHER_P99[size], measured, ok, reason))
    million = next((s for s in summary if s["dataset"] == "synthetic-1M"), None)
    if million is None:
        targets.append(Target.of(MATCHER_20X, "not measured in this run (1M is in `--full`)", None))
    else:
        value = million["batch1_qps_ratio"]
        measured = f"{value:.0f}x at batch 1, {million['batch64_qps_ratio']:.1f}x at batch 64"
        reason = "" if value >= 20 else "scikit-learn's brute force is close at this size"
        targets.append(Target.of(MATCHER_20X, measured, value >= 20, reason))
