"""Routes of images: upload (stored once), metadata, bytes, and presigned download URLs."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated

from fastapi import APIRouter, File, Form, Query, Response, UploadFile
from fastapi.encoders import jsonable_encoder
from fastapi.responses import JSONResponse

from finprint.objectstore import ObjectNotFound
from finprint.problems import NotFound
from finprint.schemas.catalog import MediaOut, MediaUploaded, PresignedUrl
from finprint.schemas.common import SingleLine
from services.catalog.encounters.media import service as media_service
from services.catalog.encounters.sightings.service import get_encounter
from services.catalog.shared.dependencies import CatalogContext, DbSession, OrgId
from services.catalog.shared.problems import Invalid

router = APIRouter(prefix="/v1", tags=["catalogue"])
PRESIGN_EXPIRY_MAX_S = 7 * 24 * 3600
ExpiresS = Annotated[int | None, Query(ge=1, le=PRESIGN_EXPIRY_MAX_S)]


@router.post(
    "/orgs/{org_id}/media",
    response_model=MediaUploaded,
    status_code=201,
    responses={200: {"model": MediaUploaded, "description": "The same bytes were stored before."}},
    summary="Upload an image (stored once per organisation; EXIF prefills the encounter)",
)
def upload_media(
    context: CatalogContext,
    org_id: OrgId,
    db: DbSession,
    file: Annotated[UploadFile, File()],
    uploaded_by: Annotated[SingleLine | None, Form(max_length=200)] = None,
    encounter_id: Annotated[SingleLine | None, Form()] = None,
) -> JSONResponse:
    if encounter_id:
        get_encounter(db, org_id, encounter_id)
    data = file.file.read()
    if not data:
        raise Invalid("the uploaded file is empty", field="file")
    stored = media_service.store_media_alone(
        db, context.store, org_id, data, filename=file.filename, uploaded_by=uploaded_by,
        limits=context.settings.image_limits(), encounter_id=encounter_id,
    )
    (context.metrics.dedup_hits if stored.duplicate else context.metrics.media_stored).inc()
    body = MediaUploaded(
        media=MediaOut.model_validate(stored.media),
        duplicate=stored.duplicate,
        encounter_prefill=media_service.encounter_prefill(stored.media),
    )
    return JSONResponse(jsonable_encoder(body), status_code=200 if stored.duplicate else 201)


@router.get("/orgs/{org_id}/media/{media_id}", summary="An image's metadata")
def get_media(org_id: OrgId, media_id: str, db: DbSession) -> MediaOut:
    return MediaOut.model_validate(media_service.get_media(db, org_id, media_id))


@router.get("/orgs/{org_id}/media/{media_id}/content", response_class=Response, summary="An image's bytes")
def get_media_content(context: CatalogContext, org_id: OrgId, media_id: str, db: DbSession) -> Response:
    media = media_service.get_media(db, org_id, media_id)
    try:
        data = context.store.get(media.object_key)
    except ObjectNotFound:
        raise NotFound("Image bytes of media", media_id) from None
    return Response(data, media_type=media.content_type, headers={"ETag": f'"{media.sha256}"'})


@router.get("/orgs/{org_id}/media/{media_id}/url", summary="A presigned download URL that expires")
def presign_media(
    context: CatalogContext, org_id: OrgId, media_id: str, db: DbSession, expires_s: ExpiresS = None
) -> PresignedUrl:
    media = media_service.get_media(db, org_id, media_id)
    lifetime = expires_s or context.settings.presign_expiry_s
    url = context.store.presigned_get_url(media.object_key, lifetime)
    return PresignedUrl(url=url, expires_at=datetime.now(UTC) + timedelta(seconds=lifetime))
