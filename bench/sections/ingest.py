"""Bulk ingestion (issue 8): images per minute and time per stage, 1 worker against 2 (bench_ingest)."""

from __future__ import annotations

from bench.markdown import ratio, table, x
from bench.targets import INGEST_RATE, Target

TITLE = "Bulk ingestion (issue 8)"


def render(data: list | dict, targets: list[Target], full: bool) -> str:
    runs = data if isinstance(data, list) else data.get("runs", [])
    stage_names = list(dict.fromkeys(s for r in runs for s in r.get("stage_ms_per_image", {})))
    rows = [
        [
            r.get("workers"),
            r.get("items", r.get("images")),
            r.get("images_per_minute"),
            r.get("wall_s"),
            r.get("upload_s"),
            *[r.get("stage_ms_per_image", {}).get(s) for s in stage_names],
        ]
        for r in runs
    ]
    images = runs[0].get("images") if runs else None
    rates = ", ".join(
        f"{r.get('images_per_minute')} images/min with {r.get('workers')} worker(s)" for r in runs
    )
    scaling = (
        ratio(runs[-1].get("images_per_minute"), runs[0].get("images_per_minute")) if len(runs) > 1 else None
    )
    measured = (rates or "no runs") + (f" on {images} images" if images else "")
    reason = "" if (images or 0) >= 2000 else "quick mode ingests fewer images; `--full` runs 2,000"
    targets.append(Target.of(INGEST_RATE, measured, None if not runs else (images or 0) >= 2000, reason,
                             figure_only=True))
    return (
        "Separate services on loopback, a CSV manifest of real photos (kaggle_humpback2019), `finprint worker` "
        "processes; the detector and the embedder with one onnxruntime thread each (they share the 2 cores); "
        "stage times are ms per image summed over the workers (they overlap within a batch). "
        "Peer: 1 worker against 2."
        + (f" 2 workers ÷ 1 worker: {x(scaling)}." if scaling else "")
        + "\n\n"
        + table(
            ["workers", "images", "images/min", "wall s", "upload s", *[f"{s} ms" for s in stage_names]], rows
        )
    )
