"""Ingest jobs and their items: the bookkeeping of bulk ingestion (resumable, idempotent).

Items are keyed by ``item_key`` within a job (e.g. the photo's path in the archive): adding the
same keys again adds nothing, so a crashed producer can simply start over. Photos uploaded for a
job wait in the object store under :func:`staged_key` until their item is done.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from sqlalchemy import ColumnElement, Select, func, select, update
from sqlalchemy.orm import Session

from finprint.objectstore import ObjectStore
from finprint.schemas.catalog import IngestItemsAdd, IngestItemUpdate, IngestJobCreate
from services.catalog.adapters.db.models import IngestItem, IngestJob, utcnow
from services.catalog.encounters.media.service import get_media
from services.catalog.ingest.schemas import IngestItemsAddSpecs, IngestJobProgressOut
from services.catalog.shared.database import inserted
from services.catalog.shared.problems import Conflict, NotFound
from services.catalog.shared.scoping import get_organisation, get_owned

INSERT_BATCH = 500
OPEN_STATUSES = ("pending", "running")


def create_job(session: Session, org_id: str, request: IngestJobCreate) -> IngestJob:
    return inserted(session, IngestJob(org_id=org_id, **request.model_dump()))


def get_job(session: Session, org_id: str, job_id: str) -> IngestJob:
    return get_owned(session, IngestJob, org_id, job_id, "Ingest job")


def select_jobs(org_id: str) -> Select[tuple[IngestJob]]:
    """The organisation's jobs, newest first."""
    return select(IngestJob).where(IngestJob.org_id == org_id).order_by(IngestJob.created_at.desc())


def set_job_status(session: Session, org_id: str, job_id: str, status: str) -> IngestJob:
    job = get_job(session, org_id, job_id)
    job.status = status
    return job


def job_out(session: Session, job: IngestJob) -> IngestJobProgressOut:
    """The job with its items counted by status."""
    counts = {
        status: n
        for status, n in session.execute(
            select(IngestItem.status, func.count())
            .where(IngestItem.job_id == job.id)
            .group_by(IngestItem.status)
        )
    }
    return IngestJobProgressOut.model_validate(job).model_copy(update={"counts": counts})


def add_items(session: Session, org_id: str, job_id: str, request: IngestItemsAdd) -> tuple[int, int]:
    """Add the keys not in the job yet; returns (added, already present)."""
    added = _add_new_items(session, org_id, job_id, {key: {} for key in request.item_keys})
    return added, len(request.item_keys) - added


def add_item_specs(
    session: Session, org_id: str, job_id: str, request: IngestItemsAddSpecs
) -> tuple[int, int]:
    """Add the items whose keys are not in the job yet, with their payloads; returns (added, present)."""
    columns = {s.item_key: {"payload": s.payload, "content_key": s.content_key} for s in request.items}
    added = _add_new_items(session, org_id, job_id, columns)
    return added, len(request.items) - added


def _add_new_items(
    session: Session, org_id: str, job_id: str, columns_by_key: dict[str, dict[str, Any]]
) -> int:
    """Insert an item for each key the job does not hold yet, with its columns; how many were inserted."""
    job = get_job(session, org_id, job_id)
    keys = list(columns_by_key)
    present: set[str] = set()
    for start in range(0, len(keys), INSERT_BATCH):
        chunk = keys[start : start + INSERT_BATCH]
        present |= set(session.scalars(
            select(IngestItem.item_key).where(IngestItem.job_id == job.id, IngestItem.item_key.in_(chunk))
        ))
    new = [key for key in keys if key not in present]
    session.add_all(
        IngestItem(org_id=org_id, job_id=job.id, item_key=key, **columns_by_key[key]) for key in new
    )
    session.flush()
    return len(new)


def select_items(
    session: Session, org_id: str, job_id: str, *, status: str | None
) -> Select[tuple[IngestItem]]:
    """The job's items (404 for another organisation's job), oldest first, with one status when given."""
    job = get_job(session, org_id, job_id)
    query = select(IngestItem).where(IngestItem.job_id == job.id)
    if status:
        query = query.where(IngestItem.status == status)
    return query.order_by(IngestItem.created_at, IngestItem.id)


def _job_item(
    session: Session, org_id: str, job_id: str, which: ColumnElement[bool], named: str
) -> IngestItem:
    job = get_job(session, org_id, job_id)
    item = session.scalar(select(IngestItem).where(IngestItem.job_id == job.id, which))
    if item is None:
        raise NotFound("Ingest item", named)
    return item


def get_item(session: Session, org_id: str, job_id: str, item_id: str) -> IngestItem:
    return _job_item(session, org_id, job_id, IngestItem.id == item_id, item_id)


def item_by_key(session: Session, org_id: str, job_id: str, item_key: str) -> IngestItem:
    return _job_item(session, org_id, job_id, IngestItem.item_key == item_key, item_key)


def update_item(
    session: Session, org_id: str, job_id: str, item_id: str, request: IngestItemUpdate
) -> IngestItem:
    item = get_item(session, org_id, job_id, item_id)
    if request.media_id:
        get_media(session, org_id, request.media_id)
        item.media_id = request.media_id
    if request.status == "running":
        item.attempts += 1
    item.status = request.status
    if request.result is not None:
        item.result = request.result
    item.error = request.error
    session.flush()
    return item


def staged_key(item: IngestItem) -> str:
    """Where an uploaded photo waits for its worker (deleted once the item is done)."""
    return f"ingest/{item.org_id}/{item.job_id}/{item.id}"


def staged_leftovers(session: Session, job: IngestJob, stored: Iterable[str]) -> list[str]:
    """Staged photos still in the store whose item is done or a duplicate (failed ones are kept)."""
    failed = {staged_key(item) for item in session.scalars(
        select(IngestItem).where(IngestItem.job_id == job.id, IngestItem.status == "failed"))}
    return [key for key in stored if key not in failed]


def stage_photo(
    session: Session,
    store: ObjectStore,
    org_id: str,
    job_id: str,
    item_key: str,
    data: bytes,
    content_type: str,
) -> IngestItem:
    """Keep the uploaded photo of an item until its worker takes it; committed."""
    get_organisation(session, org_id)
    item = item_by_key(session, org_id, job_id, item_key)
    store.put(staged_key(item), data, content_type)
    _record_staged(session, item)
    session.commit()
    return item


def _record_staged(session: Session, item: IngestItem) -> None:
    """Record that the item's bytes were uploaded; only a job still being assembled accepts files."""
    job = session.get(IngestJob, item.job_id)
    assert job is not None
    if job.status != "pending":
        raise Conflict(f"ingest job {job.id} has started; it accepts no more files", job_status=job.status)
    item.content_key = staged_key(item)
    session.flush()


def start_job(session: Session, org_id: str, job_id: str) -> IngestJob:
    """Let workers take the job's items; an item whose file never arrived fails now, with that reason."""
    job = get_job(session, org_id, job_id)
    if job.status != "pending":
        return job
    session.execute(
        update(IngestItem)
        .where(IngestItem.job_id == job.id, IngestItem.status == "pending", IngestItem.content_key.is_(None))
        .values(status="failed", error="the file was never uploaded", updated_at=utcnow())
    )
    job.status = "running"
    job.started_at = utcnow()
    session.flush()
    finish_if_drained(session, job)
    return job


DrainHook = Callable[[Session, IngestJob], bool]
DRAIN_HOOKS: dict[str, DrainHook] = {}
"""By a job's ``options.kind``: its last step once drained; False when it added items (it runs on).
A domain that runs its work as ingest jobs registers its hook (services.catalog.model_versions)."""


def finish_if_drained(session: Session, job: IngestJob) -> None:
    """A running job none of whose items is open any more is completed (after its kind's drain hook)."""
    open_items = session.scalar(select(func.count()).select_from(IngestItem).where(
        IngestItem.job_id == job.id, IngestItem.status.in_(OPEN_STATUSES)))
    if job.status == "running" and not open_items:
        hook = DRAIN_HOOKS.get(str(job.options.get("kind", "")))
        if hook is not None and not hook(session, job):
            return
        job.status = "completed"
        job.finished_at = utcnow()
        session.flush()
