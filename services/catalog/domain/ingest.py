"""Ingest jobs and their items: the bookkeeping of bulk ingestion (resumable, idempotent).

Items are keyed by ``item_key`` within a job (e.g. the photo's path in the archive): adding the
same keys again adds nothing, so a crashed producer can simply start over.
"""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from finprint.schemas.catalog import IngestItemsAdd, IngestItemUpdate, IngestJobCreate, IngestJobOut
from services.catalog.adapters.db.models import IngestItem, IngestJob, Media
from services.catalog.domain.errors import NotFound
from services.catalog.domain.paging import count, page
from services.catalog.domain.scoping import get_owned

INSERT_BATCH = 500


def create_job(session: Session, org_id: str, request: IngestJobCreate) -> IngestJob:
    job = IngestJob(org_id=org_id, **request.model_dump())
    session.add(job)
    session.flush()
    return job


def get_job(session: Session, org_id: str, job_id: str) -> IngestJob:
    return get_owned(session, IngestJob, org_id, job_id, "Ingest job")


def list_jobs(session: Session, org_id: str, offset: int, limit: int) -> tuple[list[IngestJob], int]:
    query = select(IngestJob).where(IngestJob.org_id == org_id).order_by(IngestJob.created_at.desc())
    return page(session, query, offset, limit), count(session, query)


def job_out(session: Session, job: IngestJob) -> IngestJobOut:
    counts = {
        status: n
        for status, n in session.execute(
            select(IngestItem.status, func.count())
            .where(IngestItem.job_id == job.id)
            .group_by(IngestItem.status)
        )
    }
    return IngestJobOut.model_validate(job).model_copy(update={"counts": counts})


def add_items(session: Session, org_id: str, job_id: str, request: IngestItemsAdd) -> tuple[int, int]:
    """Add the keys not in the job yet; returns (added, already present)."""
    job = get_job(session, org_id, job_id)
    keys = list(dict.fromkeys(request.item_keys))
    present: set[str] = set()
    for start in range(0, len(keys), INSERT_BATCH):
        chunk = keys[start : start + INSERT_BATCH]
        present |= set(
            session.scalars(
                select(IngestItem.item_key).where(IngestItem.job_id == job.id, IngestItem.item_key.in_(chunk))
            )
        )
    new = [key for key in keys if key not in present]
    session.add_all(IngestItem(org_id=org_id, job_id=job.id, item_key=key) for key in new)
    session.flush()
    return len(new), len(request.item_keys) - len(new)


def list_items(
    session: Session, org_id: str, job_id: str, *, status: str | None, offset: int, limit: int
) -> tuple[list[IngestItem], int]:
    job = get_job(session, org_id, job_id)
    query = select(IngestItem).where(IngestItem.job_id == job.id)
    if status:
        query = query.where(IngestItem.status == status)
    query = query.order_by(IngestItem.created_at, IngestItem.id)
    return page(session, query, offset, limit), count(session, query)


def update_item(
    session: Session, org_id: str, job_id: str, item_id: str, request: IngestItemUpdate
) -> IngestItem:
    job = get_job(session, org_id, job_id)
    item = session.scalar(select(IngestItem).where(IngestItem.id == item_id, IngestItem.job_id == job.id))
    if item is None:
        raise NotFound("Ingest item", item_id)
    if request.media_id:
        get_owned(session, Media, org_id, request.media_id, "Media")
        item.media_id = request.media_id
    if request.status == "running":
        item.attempts += 1
    item.status = request.status
    if request.result is not None:
        item.result = request.result
    item.error = request.error
    session.flush()
    return item
