"""Model upgrades (issue 22): re-embedding images per minute with 1 and 2 workers, and identify's p99
while it runs against idle (bench_reembed)."""

from __future__ import annotations

from bench.markdown import table
from bench.targets import REEMBED_IDENTIFY_P99, REEMBED_RATE, Target

TITLE = "Model upgrades: re-embedding the catalogue (issue 22)"


def render(data: list | dict, targets: list[Target], full: bool) -> str:
    runs = data if isinstance(data, list) else data.get("runs", [])
    rows = [[r["workers"], r.get("bulk_concurrency"), r["items"], r["images_per_minute"], r["wall_s"], r["identify_idle"]["p50_ms"],
             r["identify_idle"]["p99_ms"], r["identify_during"]["p50_ms"], r["identify_during"]["p99_ms"],
             r["identify_during"]["n"], r["p99_ratio"], r["swapped"]] for r in runs]
    images = runs[0]["images"] if runs else 0
    rates = ", ".join(f"{r['images_per_minute']} images/min with {r['workers']} worker(s)" for r in runs)
    targets.append(Target.of(REEMBED_RATE, f"{rates} on {images} images" if runs else "no runs",
                             None if not runs else True, figure_only=True))
    ratios = [r["p99_ratio"] for r in runs if r["p99_ratio"] is not None]
    worst = max(ratios, default=None)
    targets.append(Target.of(
        REEMBED_IDENTIFY_P99,
        "identify p99 during / idle: " + ", ".join(f"{r['p99_ratio']}x with {r['workers']} worker(s)" for r in runs)
        if ratios else "not measured", None if worst is None else worst <= 2.0,
        "" if worst is None or worst <= 2.0 else "the 2 cores are shared by the workers, the five services and "
        "the client: a re-embedding worker takes CPU identify needs"))
    return (
        "Separate services on loopback (PostgreSQL, a local object store); the embedder serves the shipped "
        "version and its int8 export beside it; an organisation enrols real photos (kaggle_humpback2019) with "
        "the shipped version, then `POST /v1/admin/model-upgrades` re-embeds them with `finprint worker` "
        "processes (each keeping `FINPRINT_GATEWAY_INGEST_BULK_CONCURRENCY` calls in flight per service) while one client identifies held-out photos back to back (concurrency 1). Peer: identify "
        "idle, in the same run, just before. Latencies in ms over the answered (200) identifies; 'identifies during' is how many the p99 during is over.\n\n"
        + table(["workers", "bulk calls in flight", "images", "images/min", "wall s", "idle p50", "idle p99", "during p50", "during p99",
                 "identifies during", "p99 during / idle", "swapped"], rows)
    )
