"""A job's progress as users see it: counts, images per second, ETA, and the results export."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, Field

from finprint.schemas.catalog import REEMBED_JOB_KIND
from services.gateway.ingest.sources import S3Source

RESULT_COLUMNS = ("image", "status", "reason", "media_id", "species", "individual_id", "decision",
                  "new_individual", *(f"candidate_{n}{part}" for n in range(1, 6) for part in ("", "_score")))


class JobProgress(BaseModel):
    id: str
    name: str
    status: str = Field(description="pending (waiting for files), running, completed, paused, failed, cancelled.")
    source: str | None
    created_at: datetime
    started_at: datetime | None = None
    finished_at: datetime | None = None
    total: int
    done: int
    failed: int
    duplicates: int = Field(description="Photos already in the catalogue (same SHA-256): stored once, not again.")
    pending: int
    running: int
    images_per_second: float | None = Field(description="Items finished per second since the job started.")
    eta_s: float | None = Field(description="Seconds left at the current rate.")
    s3: dict[str, Any] | None = Field(None, description="The S3 source, without its credentials.")
    model_upgrade: dict[str, Any] | None = Field(
        None, description="A re-embedding job: its `model_version`, and once finished whether the shards were "
        "`swapped` to it (with `shards`) or why not (`reason`).")

    @property
    def finished(self) -> bool:
        return self.status in {"completed", "failed", "cancelled"}


def _time(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


def job_progress(job: dict[str, Any], now: datetime | None = None) -> JobProgress:
    """The public view of the catalog's job: counts by status, rate and ETA."""
    counts = job.get("counts", {})
    done, failed, duplicates = counts.get("done", 0), counts.get("failed", 0), counts.get("skipped", 0)
    pending, running = counts.get("pending", 0), counts.get("running", 0)
    total = done + failed + duplicates + pending + running
    started, finished = _time(job.get("started_at")), _time(job.get("finished_at"))
    rate = eta = None
    if started is not None:
        elapsed = ((finished or now or datetime.now(UTC)) - started).total_seconds()
        finished_items = done + failed + duplicates
        if elapsed > 0 and finished_items:
            rate = round(finished_items / elapsed, 3)
            eta = round((pending + running) / rate, 1)
    options = job.get("options", {})
    s3 = options.get("s3")
    upgrade = {k: v for k, v in options.items() if k != "kind"} if options.get("kind") == REEMBED_JOB_KIND else None
    return JobProgress(
        id=job["id"], name=job["name"], status=job["status"], source=job.get("source"),
        created_at=job["created_at"], started_at=started, finished_at=finished, total=total, done=done,
        failed=failed, duplicates=duplicates, pending=pending, running=running, images_per_second=rate,
        eta_s=eta, s3=S3Source.model_validate(s3).public() if s3 else None, model_upgrade=upgrade,
    )


def summary(progress: JobProgress) -> dict[str, Any]:
    """The CLI's last line: what a script needs to know about a finished job."""
    return {"job_id": progress.id, "status": progress.status, "total": progress.total, "done": progress.done,
            "failed": progress.failed, "duplicates": progress.duplicates,
            "images_per_second": progress.images_per_second}


def csv_header() -> str:
    buffer = io.StringIO()
    csv.writer(buffer).writerow(RESULT_COLUMNS)
    return buffer.getvalue()


def csv_rows(items: list[dict[str, Any]]) -> str:
    """One row per image (its first animal's answer; a photo rarely shows two)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    for item in items:
        result = item.get("result") or {}
        animals = result.get("animals") or [{}]
        first = animals[0]
        candidates = first.get("candidates", [])[:5]
        cells: list[Any] = [item["item_key"], "duplicate" if item["status"] == "skipped" else item["status"],
                            item.get("error") or "", item.get("media_id") or "", first.get("species", ""),
                            result.get("individual_id") or "", result.get("decision", ""),
                            first.get("new_individual", "")]
        for n in range(5):
            cells += [candidates[n]["individual_id"], candidates[n]["score"]] if n < len(candidates) else ["", ""]
        writer.writerow(cells)
    return buffer.getvalue()
