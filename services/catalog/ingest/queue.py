"""The queue the gateway's ingest workers lease items from.

Workers claim pending items (or running ones whose lease expired, their worker having died) with
``SELECT ... FOR UPDATE SKIP LOCKED`` on PostgreSQL, so concurrent claims never wait on each other
nor take the same row. SQLite has one writer at a time and no FOR UPDATE: there a claim takes the
write lock before it reads (an empty UPDATE), so claims run one after the other. Either way each
row is then taken by a conditional UPDATE (``WHERE status = 'pending' OR lease expired``) whose row
count says whether this worker won it: the guard that makes a claim correct even where the locking
above were missing.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, and_, case, false, func, or_, select, update
from sqlalchemy.orm import Session

from finprint.objectstore import ObjectStore, ObjectStoreError
from services.catalog.adapters.db.models import IngestItem, IngestJob, Media, utcnow
from services.catalog.ingest.jobs import (
    OPEN_STATUSES,
    finish_if_drained,
    get_job,
    staged_key,
    staged_leftovers,
)
from services.catalog.ingest.schemas import (
    ClaimedItem,
    ClaimRequest,
    ClaimResponse,
    CompleteRequest,
    ReleaseRequest,
    ReleaseResponse,
    RenewRequest,
    RenewResponse,
)
from services.catalog.shared.problems import Conflict, NotFound

log = logging.getLogger("finprint.catalog")


def _claimable(now: datetime) -> ColumnElement[bool]:
    expired = and_(IngestItem.status == "running", IngestItem.lease_expires_at < now)
    return or_(IngestItem.status == "pending", expired)


def _remaining(session: Session, job_id: str | None) -> int:
    query = (select(func.count()).select_from(IngestItem).join(IngestJob, IngestJob.id == IngestItem.job_id)
             .where(IngestJob.status == "running", IngestItem.status.in_(OPEN_STATUSES)))
    if job_id:
        query = query.where(IngestItem.job_id == job_id)
    return session.scalar(query) or 0


def _held(request: RenewRequest | ReleaseRequest) -> ColumnElement[bool]:
    """The request's items that its worker still holds."""
    return and_(IngestItem.id.in_(request.item_ids), IngestItem.worker_id == request.worker_id,
                IngestItem.status == "running")


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
    claimed_ids: list[str] = []
    gave_up: set[str] = set()
    for item_id, attempts, job_id in session.execute(candidates).all():
        exhausted = attempts >= request.max_attempts
        values = _given_up(attempts) if exhausted else _leased(request, now)
        if not _take(session, item_id, values, now):
            continue  # another claim won it
        if exhausted:
            gave_up.add(job_id)
        else:
            claimed_ids.append(item_id)
    session.flush()
    for job in session.scalars(select(IngestJob).where(IngestJob.id.in_(gave_up))) if gave_up else []:
        finish_if_drained(session, job)  # its last items may have been the ones given up
    return ClaimResponse(items=_claimed(session, claimed_ids), remaining=_remaining(session, request.job_id))


def _leased(request: ClaimRequest, now: datetime) -> dict[str, Any]:
    return {"status": "running", "worker_id": request.worker_id, "attempts": IngestItem.attempts + 1,
            "lease_expires_at": now + timedelta(seconds=request.lease_s)}


def _given_up(attempts: int) -> dict[str, Any]:
    """An item claimed too often fails: its workers died or hung on it every time."""
    return {"status": "failed", "error": f"gave up after {attempts} attempts (its workers died or timed out)",
            "lease_expires_at": None}


def _take(session: Session, item_id: str, values: dict[str, Any], now: datetime) -> bool:
    """Change the item only if it is still claimable; whether this claim won it."""
    won = session.execute(
        update(IngestItem).where(IngestItem.id == item_id, _claimable(now))
        .values(updated_at=now, **values).execution_options(synchronize_session=False)
    ).rowcount
    return bool(won)


def _claimed(session: Session, claimed_ids: list[str]) -> list[ClaimedItem]:
    """The claimed items with their job's options, in the order they were claimed."""
    if not claimed_ids:
        return []
    items = session.scalars(select(IngestItem).where(IngestItem.id.in_(claimed_ids))).all()
    options = {job.id: job.options for job in session.scalars(
        select(IngestJob).where(IngestJob.id.in_({item.job_id for item in items})))}
    return [ClaimedItem(id=i.id, org_id=i.org_id, job_id=i.job_id, item_key=i.item_key, payload=i.payload,
                        content_key=i.content_key, attempts=i.attempts, job_options=options[i.job_id])
            for i in sorted(items, key=lambda i: claimed_ids.index(i.id))]


def renew(session: Session, request: RenewRequest) -> RenewResponse:
    now = utcnow()
    renewed = list(session.scalars(select(IngestItem.id).where(_held(request))))
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
    released = list(session.scalars(select(IngestItem.id).where(_held(request))))
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
    # Locked, so the last two items completed at once cannot each count the other as still open and
    # leave the job running for ever (a re-embedding would then never swap); SQLite serialises writers.
    job = session.get(IngestJob, item.job_id, with_for_update=True)
    assert job is not None
    finish_if_drained(session, job)
    return item


def delete_staged_photos(session: Session, store: ObjectStore, item: IngestItem) -> None:
    """After a committed outcome: the item's staged photo, which is in the catalogue now (or was already),
    and when the job is completed what earlier deletions left behind while the store was down.

    Best effort: a failed photo stays for a look, and an object store failing here must not make the
    worker believe that the outcome was not recorded.
    """
    keys = [item.content_key] if item.content_key == staged_key(item) and item.status != "failed" else []
    job = get_job(session, item.org_id, item.job_id)
    try:
        if job.status == "completed":
            keys += staged_leftovers(session, job, store.list(f"ingest/{job.org_id}/{job.id}/"))
        for key in dict.fromkeys(k for k in keys if k):
            store.delete(key)
    except ObjectStoreError as exc:
        fields = {"job_id": item.job_id, "error": str(exc)}
        log.warning("staged ingest photos not deleted", extra={"fields": fields})
