"""Bulk ingestion of archives: jobs, their progress (JSON and server-sent events), failures and results.

A job comes from a CSV manifest whose photos the client then uploads one by one (bounded memory on
both sides, resumable: uploading a file twice stores it once), from a ZIP or TAR archive, or from an
S3 bucket and prefix. Workers (``finprint worker``) process its items; see docs/ingestion.md.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, Field, ValidationError
from sse_starlette.sse import EventSourceResponse
from starlette.datastructures import UploadFile

from finprint.outbound import OutboundRefused
from finprint.problems import Problem, problem_from_validation
from services.gateway.dependencies import GatewayContext, gateway_context, require
from services.gateway.domain.paging import decode_cursor, public_page
from services.gateway.domain.principal import Principal, Role
from services.gateway.ingest.manifest import ManifestItem, image_names, read_manifest
from services.gateway.ingest.progress import JobProgress, csv_header, csv_rows, job_progress
from services.gateway.ingest.queue import IngestQueue
from services.gateway.ingest.sources import S3_ERRORS, Archive, S3Source, outbound_refused, s3_failure

router = APIRouter(prefix="/v1/ingest", tags=["bulk ingestion"])
Viewer = Annotated[Principal, Depends(require(Role.viewer))]
Contributor = Annotated[Principal, Depends(require(Role.contributor))]
Context = Annotated[GatewayContext, Depends(gateway_context)]
EXPORT_PAGE = 500
EVENT_INTERVAL_S = 1.0

JOB_EXAMPLE = {
    "id": "0f9c2d4e-8a1b-4c3d-9e2f-1a2b3c4d5e6f", "name": "haro-strait-2019", "status": "running",
    "source": "manifest:haro-2019.csv", "created_at": "2026-11-23T19:00:00Z", "started_at": "2026-11-23T19:02:00Z",
    "finished_at": None, "total": 2000, "done": 812, "failed": 3, "duplicates": 40, "pending": 1137,
    "running": 8, "images_per_second": 4.2, "eta_s": 272.6, "s3": None,
}


class S3JobRequest(BaseModel):
    name: str = Field(min_length=1, max_length=200, examples=["archive-2019"])
    s3: S3Source


def _queue(ctx: GatewayContext) -> IngestQueue:
    return IngestQueue(ctx.catalog.client)


async def _progress(ctx: GatewayContext, principal: Principal, job_id: str) -> JobProgress:
    return job_progress(await _queue(ctx).job(principal.org_id, job_id))


async def _create(ctx: GatewayContext, principal: Principal, name: str, source: str, items: list[dict[str, Any]],
                  idempotency_key: str | None, options: dict[str, Any] | None = None) -> dict[str, Any]:
    """The job and its items (adding items is idempotent by key, so a replayed creation adds nothing)."""
    queue = _queue(ctx)
    body = {"name": name, "source": source[:500], "created_by": principal.subject,
            "options": {"uploaded_by": principal.subject, **(options or {})}}
    job = await queue.create_job(principal.org_id, body, idempotency_key)
    await queue.add_items(principal.org_id, job["id"], items)
    return job


@router.post(
    "/jobs",
    status_code=201,
    response_model=JobProgress,
    summary="Create an ingest job from a CSV manifest, a ZIP/TAR archive, or an S3 bucket",
    description="Multipart: `manifest` (CSV with columns `image` (required: the photo's path or key), "
    "`observed_at`, `latitude`, `longitude`, `location`, `observer`, `species`, `individual_id`) and/or "
    "`archive` (a ZIP or TAR; with a `manifest.csv` at its root, or every photo in it), and `name`. "
    "A manifest alone creates a job waiting for its files: upload each with "
    "`PUT /v1/ingest/jobs/{id}/files/{image}`, then `POST /v1/ingest/jobs/{id}:start`. "
    "JSON `{\"name\": ..., \"s3\": {\"endpoint\", \"bucket\", \"prefix\", \"access_key\", \"secret_key\", "
    "\"secure\"}}` ingests every photo under the prefix. Archive and S3 jobs start at once. Photos with "
    "an `individual_id` enrol that individual (a new code creates it); the others wait for review.",
    responses={201: {"content": {"application/json": {"example": JOB_EXAMPLE}}}},
    openapi_extra={"requestBody": {"required": True, "content": {
        "multipart/form-data": {"schema": {"type": "object", "properties": {
            "name": {"type": "string"},
            "manifest": {"type": "string", "format": "binary", "description": "CSV, header row first."},
            "archive": {"type": "string", "format": "binary", "description": "ZIP or TAR."}}}},
        "application/json": {"schema": {"type": "object", "required": ["name", "s3"], "properties": {
                                 "name": {"type": "string"}, "s3": S3Source.model_json_schema()}},
                             "example": {"name": "archive-2019", "s3": {
                                 "endpoint": "minio.example.org:9000", "bucket": "photos", "prefix": "2019/",
                                 "access_key": "AKIA...", "secret_key": "...", "secure": True}}},
    }}},
)
async def create_job(request: Request, principal: Contributor, ctx: Context) -> JobProgress:
    key = request.headers.get("Idempotency-Key")
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type == "application/json":
        job = await _create_from_s3(ctx, principal, await request.body(), key)
    elif content_type == "multipart/form-data":
        job = await _create_from_form(ctx, principal, request, key)
    else:
        raise Problem(415, "Send multipart/form-data (`manifest` and/or `archive` files) or JSON (`s3`).")
    return job_progress(job)


async def _create_from_s3(ctx: GatewayContext, principal: Principal, raw: bytes, key: str | None) -> dict:
    try:
        request = S3JobRequest.model_validate_json(raw)
    except ValidationError as exc:
        raise problem_from_validation(exc) from None
    source = request.s3
    try:
        names = await asyncio.to_thread(source.object_names, ctx.settings.outbound_guard())
    except OutboundRefused as exc:
        raise outbound_refused(exc) from None
    except S3_ERRORS as exc:
        raise Problem(422, f"Cannot list s3://{source.bucket}/{source.prefix} at {source.endpoint}: "
                      f"{s3_failure(exc)}.", slug="s3-unreachable", field="s3") from None
    keys = image_names(iter(names), "S3 object")
    if not keys:
        raise Problem(422, f"No photos (.jpg, .jpeg, .png, .webp) under s3://{source.bucket}/{source.prefix}.",
                      slug="no-photos")
    items = [{"item_key": k, "payload": {}, "content_key": k} for k in keys]
    job = await _create(ctx, principal, request.name, f"s3://{source.bucket}/{source.prefix}", items, key,
                        {"s3": source.model_dump()})
    return await _queue(ctx).start(principal.org_id, job["id"])


async def _create_from_form(ctx: GatewayContext, principal: Principal, request: Request, key: str | None) -> dict:
    form = await request.form()
    manifest, archive = form.get("manifest"), form.get("archive")
    name = str(form.get("name") or "")
    if not isinstance(manifest, UploadFile) and not isinstance(archive, UploadFile):
        raise Problem(422, "Send a `manifest` CSV file, an `archive` ZIP/TAR file, or JSON with `s3`.",
                      slug="validation-error", errors=[{"field": "manifest", "message": "missing file"}])
    if not isinstance(archive, UploadFile):
        assert isinstance(manifest, UploadFile)
        items = read_manifest(await manifest.read())
        job = await _create(ctx, principal, name or manifest.filename or "manifest", f"manifest:{manifest.filename}",
                            [i.model_dump() for i in items], key)
        return await _queue(ctx).job(principal.org_id, job["id"])
    opened = Archive(archive.file, archive.filename or "archive")
    await asyncio.to_thread(opened.verify)
    listed = opened.manifest() if not isinstance(manifest, UploadFile) else await manifest.read()
    members = dict(opened.members_by_key())
    items = read_manifest(listed) if listed else [ManifestItem(item_key=k, payload={})
                                                  for k in image_names(iter(members), "Archive member")]
    job = await _create(ctx, principal, name or opened.filename, f"archive:{opened.filename}",
                        [i.model_dump() for i in items], key)
    queue = _queue(ctx)
    if job["status"] == "pending":
        for item in items:
            member = members.get(item.item_key)
            if member is not None:  # a listed photo missing from the archive fails when the job starts
                data = await asyncio.to_thread(opened.read, member)
                await queue.stage_content(principal.org_id, job["id"], item.item_key, data,
                                          "application/octet-stream")
    return await queue.start(principal.org_id, job["id"])


class FileUploaded(BaseModel):
    job_id: str
    image: str
    bytes: int


@router.put(
    "/jobs/{job_id}/files/{image:path}",
    response_model=FileUploaded,
    summary="Upload one photo of a manifest job (raw bytes; uploading it again replaces it)",
    openapi_extra={"requestBody": {"required": True, "description": "The photo's bytes, as they are.", "content": {
        media_type: {"schema": {"type": "string", "format": "binary"}}
        for media_type in ("application/octet-stream", "image/jpeg", "image/png", "image/webp")}}},
)
async def upload_file(request: Request, job_id: str, image: Annotated[str, Path(description="The manifest's `image`.")],
                      principal: Contributor, ctx: Context) -> FileUploaded:
    data = await request.body()
    if not data:
        raise Problem(422, "The request body is empty; send the photo's bytes.", slug="validation-error",
                      errors=[{"field": "body", "message": "empty", "type": "missing"}])
    queue = _queue(ctx)
    await queue.stage_content(principal.org_id, job_id, image, data,
                              request.headers.get("content-type") or "application/octet-stream")
    return FileUploaded(job_id=job_id, image=image, bytes=len(data))


@router.post("/jobs/{job_id}:start", response_model=JobProgress,
             summary="Start a manifest job once its files are uploaded (a photo never uploaded fails)")
async def start_job(job_id: str, principal: Contributor, ctx: Context) -> JobProgress:
    return job_progress(await _queue(ctx).start(principal.org_id, job_id))


@router.get("/jobs", summary="Ingest jobs, newest first")
async def list_jobs(principal: Viewer, ctx: Context, cursor: str | None = None,
                    limit: Annotated[int, Query(ge=1, le=200)] = 50) -> dict:
    offset = decode_cursor(cursor)
    page = await ctx.catalog.forward("GET", f"/v1/orgs/{principal.org_id}/ingest-jobs",
                                     params={"offset": offset, "limit": limit})
    page["items"] = [job_progress(j).model_dump(mode="json") for j in page["items"]]
    return public_page(page, offset)


@router.get("/jobs/{job_id}", response_model=JobProgress, summary="A job's progress: counts, images per second, ETA",
            responses={200: {"content": {"application/json": {"example": JOB_EXAMPLE}}}})
async def get_job(job_id: str, principal: Viewer, ctx: Context) -> JobProgress:
    return await _progress(ctx, principal, job_id)


@router.get(
    "/jobs/{job_id}/events",
    summary="A job's progress as server-sent events",
    description="`progress` events (the job as `GET /v1/ingest/jobs/{id}` shows it) whenever it changes, "
    "then one `end` event when the job is finished, and the stream closes.",
    response_class=EventSourceResponse,
)
async def job_events(job_id: str, principal: Viewer, ctx: Context) -> EventSourceResponse:
    first = await _progress(ctx, principal, job_id)  # a 404 before the stream starts

    async def events() -> AsyncIterator[dict[str, str]]:
        progress, last = first, ""
        while True:
            data = progress.model_dump_json()
            if data != last:
                yield {"event": "progress", "data": data}
                last = data
            if progress.finished:
                yield {"event": "end", "data": data}
                return
            await asyncio.sleep(EVENT_INTERVAL_S)
            progress = await _progress(ctx, principal, job_id)

    return EventSourceResponse(events(), ping=15)


@router.get("/jobs/{job_id}/items", summary="A job's items, e.g. the failed ones with their reason")
async def list_items(job_id: str, principal: Viewer, ctx: Context,
                     status: Literal["pending", "running", "done", "failed", "duplicate"] | None = None,
                     cursor: str | None = None, limit: Annotated[int, Query(ge=1, le=500)] = 100) -> dict:
    offset = decode_cursor(cursor)
    page = await _queue(ctx).items(principal.org_id, job_id, status="skipped" if status == "duplicate" else status,
                                   offset=offset, limit=limit)
    page["items"] = [_public_item(i) for i in page["items"]]
    return public_page(page, offset)


def _public_item(item: dict[str, Any]) -> dict[str, Any]:
    return {"id": item["id"], "image": item["item_key"],
            "status": "duplicate" if item["status"] == "skipped" else item["status"],
            "reason": item["error"], "media_id": item["media_id"], "attempts": item["attempts"],
            "result": item["result"], "updated_at": item["updated_at"]}


@router.get(
    "/jobs/{job_id}/results.csv",
    response_class=StreamingResponse,
    summary="One row per image: status, reason, species, top-5 candidates and the new-individual score",
)
async def results_csv(job_id: str, principal: Viewer, ctx: Context) -> StreamingResponse:
    queue = _queue(ctx)
    await queue.job(principal.org_id, job_id)  # a 404 before the stream starts

    async def rows() -> AsyncIterator[str]:
        yield csv_header()
        offset = 0
        while True:
            page = await queue.items(principal.org_id, job_id, status=None, offset=offset, limit=EXPORT_PAGE)
            if not page["items"]:
                return
            yield csv_rows(page["items"])
            offset += len(page["items"])

    return StreamingResponse(rows(), media_type="text/csv; charset=utf-8",
                             headers={"Content-Disposition": f'attachment; filename="ingest-{job_id}.csv"'})
