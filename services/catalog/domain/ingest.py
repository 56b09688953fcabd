"""Ingest jobs and their items: the bookkeeping of bulk ingestion (resumable, idempotent).

Items are keyed by ``item_key`` within a job (e.g. the photo's path in the archive): adding the
same keys again adds nothing, so a crashed producer can simply start over.


The queue: workers claim pending items (or running ones whose lease expired, their worker having
died) with ``SELECT ... FOR UPDATE SKIP LOCKED`` on PostgreSQL, so concurrent claims never wait on
each other nor take the same row. SQLite has one writer at a time and no FOR UPDATE: there a claim
takes the write lock before it reads (an empty UPDATE), so claims run one after the other. Either
way each row is then taken by a conditional UPDATE (``WHERE status = 'pending' OR lease expired``)
whose row count says whether this worker won it: the guard that makes a claim correct even where
the locking above were missing.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any, Literal

from pydantic import BaseModel, Field
from sqlalchemy import and_, case, false, func, or_, select, update
from sqlalchemy.orm import Session

from finprint.schemas.catalog import IngestItemsAdd, IngestItemUpdate, IngestJobCreate, IngestJobOut
from finprint.schemas.common import Inbound
from services.catalog.adapters.db.models import IngestItem, IngestJob, Media, utcnow
from services.catalog.domain.errors import Conflict, NotFound
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


class IngestJobProgressOut(IngestJobOut):
    started_at: datetime | None = Field(None, description="When workers could first take its items.")
    finished_at: datetime | None = Field(None, description="When its last item was finished.")


def job_out(session: Session, job: IngestJob) -> IngestJobProgressOut:
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


# --- the queue ----------------------------------------------------------------------------------

FINAL_STATUSES = ("done", "failed", "skipped")


class IngestItemSpec(Inbound):
    item_key: str = Field(min_length=1, max_length=1000, examples=["2019/IMG_0042.jpg"])
    payload: dict[str, Any] = Field({}, description="The manifest row: observed_at, latitude, individual_id...")
    content_key: str | None = Field(None, max_length=1000,
                                    description="The object's name in the job's S3 source, when it has one.")


class IngestItemsAddSpecs(Inbound):
    items: list[IngestItemSpec] = Field(min_length=1, max_length=10_000)


class ClaimRequest(Inbound):
    worker_id: str = Field(min_length=1, max_length=200)
    limit: int = Field(8, ge=1, le=500)
    lease_s: float = Field(60.0, gt=0, le=3600)
    job_id: str | None = Field(None, description="Only this job's items.")
    max_attempts: int = Field(5, ge=1, le=1000, description="An item claimed this often already fails instead.")


class ClaimedItem(BaseModel):
    id: str
    org_id: str
    job_id: str
    item_key: str
    payload: dict[str, Any]
    content_key: str | None
    attempts: int
    job_options: dict[str, Any]


class ClaimResponse(BaseModel):
    items: list[ClaimedItem]
    remaining: int = Field(description="Items of the job (or of all running jobs) not final yet, claimed ones included.")


class RenewRequest(Inbound):
    worker_id: str = Field(min_length=1, max_length=200)
    item_ids: list[str] = Field(min_length=1, max_length=500)
    lease_s: float = Field(60.0, gt=0, le=3600)


class RenewResponse(BaseModel):
    renewed: list[str] = Field(description="The items this worker still holds; the others were lost.")


class ReleaseRequest(Inbound):
    worker_id: str = Field(min_length=1, max_length=200)
    item_ids: list[str] = Field(min_length=1, max_length=500)
    reason: str = Field(max_length=2000, description="Why they were not processed (the service that failed).")


class ReleaseResponse(BaseModel):
    released: list[str] = Field(description="The items given back (those this worker still held).")


class CompleteRequest(Inbound):
    worker_id: str = Field(min_length=1, max_length=200)
    status: Literal["done", "failed", "skipped"]
    media_id: str | None = None
    result: dict[str, Any] = {}
    error: str | None = Field(None, max_length=2000)


def add_item_specs(session: Session, org_id: str, job_id: str, request: IngestItemsAddSpecs) -> tuple[int, int]:
    """Add the items whose keys are not in the job yet, with their payloads; returns (added, present)."""
    job = get_job(session, org_id, job_id)
    specs = list({spec.item_key: spec for spec in request.items}.values())
    present: set[str] = set()
    for start in range(0, len(specs), INSERT_BATCH):
        chunk = [spec.item_key for spec in specs[start : start + INSERT_BATCH]]
        present |= set(session.scalars(
            select(IngestItem.item_key).where(IngestItem.job_id == job.id, IngestItem.item_key.in_(chunk))
        ))
    new = [spec for spec in specs if spec.item_key not in present]
    session.add_all(IngestItem(org_id=org_id, job_id=job.id, item_key=spec.item_key, payload=spec.payload,
                               content_key=spec.content_key) for spec in new)
    session.flush()
    return len(new), len(request.items) - len(new)


def item_by_key(session: Session, org_id: str, job_id: str, item_key: str) -> IngestItem:
    job = get_job(session, org_id, job_id)
    item = session.scalar(select(IngestItem).where(IngestItem.job_id == job.id, IngestItem.item_key == item_key))
    if item is None:
        raise NotFound("Ingest item", item_key)
    return item


def get_item(session: Session, org_id: str, job_id: str, item_id: str) -> IngestItem:
    job = get_job(session, org_id, job_id)
    item = session.scalar(select(IngestItem).where(IngestItem.id == item_id, IngestItem.job_id == job.id))
    if item is None:
        raise NotFound("Ingest item", item_id)
    return item


def staged_key(item: IngestItem) -> str:
    """Where an uploaded photo waits for its worker (deleted once the item is done)."""
    return f"ingest/{item.org_id}/{item.job_id}/{item.id}"


def staged_leftovers(session: Session, job: IngestJob, stored: Iterable[str]) -> list[str]:
    """Staged photos still in the store whose item is done or a duplicate (failed ones are kept)."""
    failed = {staged_key(item) for item in session.scalars(
        select(IngestItem).where(IngestItem.job_id == job.id, IngestItem.status == "failed"))}
    return [key for key in stored if key not in failed]


def stage_content(session: Session, item: IngestItem) -> str:
    """Record that the item's bytes were uploaded; only a job still being assembled accepts files."""
    job = session.get(IngestJob, item.job_id)
    assert job is not None
    if job.status != "pending":
        raise Conflict(f"ingest job {job.id} has started; it accepts no more files", job_status=job.status)
    item.content_key = staged_key(item)
    session.flush()
    return item.content_key


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
    _finish_if_drained(session, job)
    return job


def _claimable(now: datetime) -> Any:
    expired = and_(IngestItem.status == "running", IngestItem.lease_expires_at < now)
    return or_(IngestItem.status == "pending", expired)


def _remaining(session: Session, job_id: str | None) -> int:
    query = (select(func.count()).select_from(IngestItem).join(IngestJob, IngestJob.id == IngestItem.job_id)
             .where(IngestJob.status == "running", IngestItem.status.in_(("pending", "running"))))
    if job_id:
        query = query.where(IngestItem.job_id == job_id)
    return session.scalar(query) or 0


def claim(session: Session, request: ClaimRequest) -> ClaimResponse:
    """Lease up to ``limit`` items of running jobs to a worker, oldest first."""
    if session.get_bind().dialect.name == "sqlite":
        session.execute(update(IngestItem).where(false()))  # the write lock, before reading
    now = utcnow()
    candidates = (
        select(IngestItem.id, IngestItem.attempts, IngestItem.job_id)
        .join(IngestJob, IngestJob.id == IngestItem.job_id)
        .where(IngestJob.status == "running", _claimable(now))
        .order_by(IngestItem.created_at, IngestItem.id)
        .limit(request.limit)
        .with_for_update(skip_locked=True, of=IngestItem)
    )
    if request.job_id:
        candidates = candidates.where(IngestItem.job_id == request.job_id)
    claimed_ids = []
    gave_up: set[str] = set()
    for item_id, attempts, job_id in session.execute(candidates).all():
        exhausted = attempts >= request.max_attempts
        values: dict[str, Any] = (
            {"status": "failed", "error": f"gave up after {attempts} attempts (its workers died or timed out)",
             "lease_expires_at": None}
            if exhausted else
            {"status": "running", "worker_id": request.worker_id, "attempts": IngestItem.attempts + 1,
             "lease_expires_at": now + timedelta(seconds=request.lease_s)}
        )
        won = session.execute(
            update(IngestItem).where(IngestItem.id == item_id, _claimable(now))
            .values(updated_at=now, **values).execution_options(synchronize_session=False)
        ).rowcount
        if won and not exhausted:
            claimed_ids.append(item_id)
        elif won:
            gave_up.add(job_id)
    session.flush()
    for job in session.scalars(select(IngestJob).where(IngestJob.id.in_(gave_up))) if gave_up else []:
        _finish_if_drained(session, job)  # its last items may have been the ones given up
    items = session.scalars(select(IngestItem).where(IngestItem.id.in_(claimed_ids))).all() if claimed_ids else []
    options = {job.id: job.options for job in session.scalars(
        select(IngestJob).where(IngestJob.id.in_({item.job_id for item in items})))} if items else {}
    claimed = [ClaimedItem(id=i.id, org_id=i.org_id, job_id=i.job_id, item_key=i.item_key, payload=i.payload,
                           content_key=i.content_key, attempts=i.attempts, job_options=options[i.job_id])
               for i in sorted(items, key=lambda i: claimed_ids.index(i.id))]
    return ClaimResponse(items=claimed, remaining=_remaining(session, request.job_id))


def renew(session: Session, request: RenewRequest) -> RenewResponse:
    now = utcnow()
    held = and_(IngestItem.id.in_(request.item_ids), IngestItem.worker_id == request.worker_id,
                IngestItem.status == "running")
    renewed = list(session.scalars(select(IngestItem.id).where(held)))
    if renewed:
        session.execute(update(IngestItem).where(IngestItem.id.in_(renewed))
                        .values(lease_expires_at=now + timedelta(seconds=request.lease_s))
                        .execution_options(synchronize_session=False))
    session.flush()
    return RenewResponse(renewed=renewed)


def release(session: Session, request: ReleaseRequest) -> ReleaseResponse:
    """Give leased items back untried: a service they need answered 503 before anything was stored.

    The attempt does not count: attempts are for workers that die or hang, and an outage of a
    dependency longer than ``max_attempts`` leases must not fail a job's photos. The reason stays on
    the pending item until a worker takes it again.
    """
    held = and_(IngestItem.id.in_(request.item_ids), IngestItem.worker_id == request.worker_id,
                IngestItem.status == "running")
    released = list(session.scalars(select(IngestItem.id).where(held)))
    if released:
        session.execute(update(IngestItem).where(IngestItem.id.in_(released))
                        .values(status="pending", lease_expires_at=None, updated_at=utcnow(),
                                attempts=case((IngestItem.attempts > 0, IngestItem.attempts - 1), else_=0),
                                error=f"postponed: {request.reason}"[:2000])
                        .execution_options(synchronize_session=False))
    session.flush()
    return ReleaseResponse(released=released)


def complete(session: Session, item_id: str, request: CompleteRequest) -> IngestItem:
    """Record an item's outcome; only the worker holding its lease may (a late one gets 409)."""
    item = session.get(IngestItem, item_id)
    if item is None:
        raise NotFound("Ingest item", item_id)
    if item.status != "running" or item.worker_id != request.worker_id:
        raise Conflict(f"ingest item {item_id} is not leased to worker {request.worker_id}; another worker "
                       f"took it over", item_status=item.status)
    if request.media_id:
        if session.get(Media, request.media_id) is None:
            raise NotFound("Media", request.media_id)
        item.media_id = request.media_id
    item.status = request.status
    item.result = request.result
    item.error = request.error
    item.lease_expires_at = None
    session.flush()
    job = session.get(IngestJob, item.job_id)
    assert job is not None
    _finish_if_drained(session, job)
    return item


def _finish_if_drained(session: Session, job: IngestJob) -> None:
    open_items = session.scalar(select(func.count()).select_from(IngestItem).where(
        IngestItem.job_id == job.id, IngestItem.status.in_(("pending", "running"))))
    if job.status == "running" and not open_items:
        job.status = "completed"
        job.finished_at = utcnow()
        session.flush()


def media_by_sha256(session: Session, org_id: str, sha256: str) -> Media:
    media = session.scalar(select(Media).where(Media.org_id == org_id, Media.sha256 == sha256.lower()))
    if media is None:
        raise NotFound("Media with SHA-256", sha256)
    return media
