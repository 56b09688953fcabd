"""Routes of ingest jobs (for the gateway and its CLI) and of the queue its workers lease items from."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse

from finprint.objectstore import ObjectNotFound
from finprint.schemas.catalog import (
    IngestItemOut,
    IngestItemsAdd,
    IngestItemsAdded,
    IngestItemStatus,
    IngestItemUpdate,
    IngestJobCreate,
    IngestJobUpdate,
    MediaOut,
    Page,
)
from services.catalog.encounters.media.service import media_with_sha256
from services.catalog.ingest import jobs, queue
from services.catalog.ingest.schemas import (
    ClaimRequest,
    ClaimResponse,
    CompleteRequest,
    IngestItemsAddSpecs,
    IngestJobProgressOut,
    ReleaseRequest,
    ReleaseResponse,
    RenewRequest,
    RenewResponse,
)
from services.catalog.shared.dependencies import CatalogContext, DbSession, Limit, Offset, OrgId
from services.catalog.shared.idempotency import Creation
from services.catalog.shared.paging import paged
from services.catalog.shared.problems import Invalid, NotFound

job_routes = APIRouter(prefix="/v1/orgs/{org_id}", tags=["collaboration and jobs"])
queue_routes = APIRouter(prefix="/v1/internal", tags=["internal (matcher)"])


@job_routes.post(
    "/ingest-jobs", response_model=IngestJobProgressOut, status_code=201, summary="Start an ingest job"
)
def create_ingest_job(
    org_id: OrgId, payload: IngestJobCreate, db: DbSession, create: Creation
) -> JSONResponse:
    return create(payload, lambda: jobs.job_out(db, jobs.create_job(db, org_id, payload)))


@job_routes.get("/ingest-jobs", summary="Ingest jobs, newest first")
def list_ingest_jobs(
    org_id: OrgId, db: DbSession, offset: Offset = 0, limit: Limit = 100
) -> Page[IngestJobProgressOut]:
    return paged(db, jobs.select_jobs(org_id), offset, limit, lambda j: jobs.job_out(db, j))


@job_routes.get("/ingest-jobs/{job_id}", summary="An ingest job and its progress")
def get_ingest_job(org_id: OrgId, job_id: str, db: DbSession) -> IngestJobProgressOut:
    return jobs.job_out(db, jobs.get_job(db, org_id, job_id))


@job_routes.patch("/ingest-jobs/{job_id}", summary="Change a job's status")
def update_ingest_job(
    org_id: OrgId, job_id: str, payload: IngestJobUpdate, db: DbSession
) -> IngestJobProgressOut:
    job = jobs.set_job_status(db, org_id, job_id, payload.status)
    db.commit()
    return jobs.job_out(db, job)


@job_routes.post("/ingest-jobs/{job_id}/items", summary="Add items (idempotent by item_key)")
def add_ingest_items(org_id: OrgId, job_id: str, payload: IngestItemsAdd, db: DbSession) -> IngestItemsAdded:
    added, present = jobs.add_items(db, org_id, job_id, payload)
    db.commit()
    return IngestItemsAdded(added=added, already_present=present)


@job_routes.get("/ingest-jobs/{job_id}/items", summary="A job's items, by status")
def list_ingest_items(org_id: OrgId, job_id: str, db: DbSession, offset: Offset = 0, limit: Limit = 100,
                      status: IngestItemStatus | None = None) -> Page[IngestItemOut]:
    items = jobs.select_items(db, org_id, job_id, status=status)
    return paged(db, items, offset, limit, IngestItemOut.model_validate)


@job_routes.patch("/ingest-jobs/{job_id}/items/{item_id}", summary="Record an item's progress or result")
def update_ingest_item(org_id: OrgId, job_id: str, item_id: str, payload: IngestItemUpdate,
                       db: DbSession) -> IngestItemOut:
    item = jobs.update_item(db, org_id, job_id, item_id, payload)
    db.commit()
    return IngestItemOut.model_validate(item)


@job_routes.post(
    "/ingest-jobs/{job_id}/items:add", summary="Add items with their manifest rows (idempotent by item_key)"
)
def add_ingest_item_specs(org_id: OrgId, job_id: str, payload: IngestItemsAddSpecs,
                          db: DbSession) -> IngestItemsAdded:
    added, present = jobs.add_item_specs(db, org_id, job_id, payload)
    db.commit()
    return IngestItemsAdded(added=added, already_present=present)


@job_routes.put("/ingest-jobs/{job_id}/content/{item_key:path}",
                summary="Upload the photo of an item (raw bytes), before the job starts")
async def stage_ingest_content(request: Request, context: CatalogContext, org_id: str, job_id: str,
                               item_key: str) -> IngestItemOut:
    # async, to read the raw body; the database and the store are then used from the thread pool.
    data = await request.body()
    if not data:
        raise Invalid("the uploaded file is empty", field="body")
    content_type = request.headers.get("content-type") or "application/octet-stream"

    def stage() -> IngestItemOut:
        with context.sessions() as db:
            item = jobs.stage_photo(db, context.store, org_id, job_id, item_key, data, content_type)
            return IngestItemOut.model_validate(item)

    return await run_in_threadpool(stage)


@job_routes.get("/ingest-jobs/{job_id}/items/{item_id}/content", response_class=Response,
                summary="The staged photo of an item")
def ingest_item_content(context: CatalogContext, org_id: OrgId, job_id: str, item_id: str,
                        db: DbSession) -> Response:
    item = jobs.get_item(db, org_id, job_id, item_id)
    if item.content_key != jobs.staged_key(item):
        raise NotFound("Staged content of ingest item", item_id)
    try:
        return Response(context.store.get(item.content_key), media_type="application/octet-stream")
    except ObjectNotFound:
        raise NotFound("Staged content of ingest item", item_id) from None


@job_routes.post(
    "/ingest-jobs/{job_id}:start", summary="Let workers take the job's items (items without a file fail)"
)
def start_ingest_job(org_id: OrgId, job_id: str, db: DbSession) -> IngestJobProgressOut:
    job = jobs.start_job(db, org_id, job_id)
    db.commit()
    return jobs.job_out(db, job)


@job_routes.get("/media-by-sha256/{sha256}", summary="The image with these bytes")
def media_by_sha256(org_id: OrgId, sha256: str, db: DbSession) -> MediaOut:
    return MediaOut.model_validate(media_with_sha256(db, org_id, sha256))


@queue_routes.post("/ingest-items:claim", summary="Lease items to a worker")
def claim_ingest_items(payload: ClaimRequest, db: DbSession) -> ClaimResponse:
    claimed = queue.claim(db, payload)
    db.commit()
    return claimed


@queue_routes.post("/ingest-items:renew", summary="Extend a worker's leases")
def renew_ingest_items(payload: RenewRequest, db: DbSession) -> RenewResponse:
    renewed = queue.renew(db, payload)
    db.commit()
    return renewed


@queue_routes.post(
    "/ingest-items:release",
    summary="Give leased items back untried (a service they need was unavailable); "
    "the attempt does not count",
)
def release_ingest_items(payload: ReleaseRequest, db: DbSession) -> ReleaseResponse:
    released = queue.release(db, payload)
    db.commit()
    return released


@queue_routes.post("/ingest-items/{item_id}:complete", summary="Record a leased item's outcome")
def complete_ingest_item(context: CatalogContext, item_id: str, payload: CompleteRequest,
                         db: DbSession) -> IngestItemOut:
    item = queue.complete(db, item_id, payload)
    db.commit()
    queue.delete_staged_photos(db, context.store, item)
    return IngestItemOut.model_validate(item)
