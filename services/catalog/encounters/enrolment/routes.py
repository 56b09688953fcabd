"""Route of enrolment: an encounter's photos and their whole result, in one transaction.

Its body is JSON (an EnrolRequest, the photos base64 in it or media uploaded before) or, as the
gateway sends it, multipart/form-data: the EnrolRequest as the part ``enrolment`` and each new photo
as a ``photos`` file part, its bytes exactly as uploaded, that its entry names by ``file.index``. A
multipart request reaches the route as its JSON part (the same validation, the same 422s), its
photos kept aside for the enrolment (``EnrolmentRoute``).
"""

from __future__ import annotations

import hashlib
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request, Response
from fastapi.routing import APIRoute
from pydantic import BaseModel
from sqlalchemy.orm import Session
from starlette.datastructures import UploadFile

from finprint.problems import Problem
from finprint.schemas.catalog import (
    ENROL_PHOTOS_MAX,
    EnrolRequest,
    EnrolResult,
    IdentificationOut,
    IndividualOut,
    MediaOut,
)
from services.catalog.encounters.annotations.service import annotation_out
from services.catalog.encounters.enrolment import service as enrolment
from services.catalog.encounters.sightings.service import encounter_out
from services.catalog.shared.dependencies import CatalogContext, DbSession, OrgId
from services.catalog.shared.idempotency import Creation, replayed

ENROLMENT_PART = "enrolment"
PHOTOS_PART = "photos"
MULTIPART_BODY = {"requestBody": {"content": {"multipart/form-data": {
    "schema": {"type": "object", "required": [ENROLMENT_PART], "properties": {
        ENROLMENT_PART: {"$ref": "#/components/schemas/EnrolRequest"},
        PHOTOS_PART: {"type": "array", "maxItems": ENROL_PHOTOS_MAX, "items": {"type": "string", "format": "binary"},
                      "description": "The new photos, as uploaded; each entry of `photos` with a `file` names one "
                                     "by its place here."}}},
    "encoding": {ENROLMENT_PART: {"contentType": "application/json"}},
}}}}


def _multipart_problem(detail: str, field: str) -> Problem:
    return Problem(422, detail, slug="validation-error", errors=[{"field": field, "message": detail, "type": "value_error"}])


async def _json_part(request: Request) -> Request:
    """The multipart request as the JSON request of its ``enrolment`` part; its photos in ``state``."""
    form = await request.form(max_files=ENROL_PHOTOS_MAX + 1, max_fields=1)
    unexpected = sorted(set(form.keys()) - {ENROLMENT_PART, PHOTOS_PART})
    if unexpected:
        raise _multipart_problem(f"Unknown part(s) {unexpected}: send `{ENROLMENT_PART}` and `{PHOTOS_PART}`.",
                                 unexpected[0])
    document = form.get(ENROLMENT_PART)
    if document is None:
        raise _multipart_problem(f"Send the enrolment as the JSON part `{ENROLMENT_PART}`.", ENROLMENT_PART)
    photos = []
    for part in form.getlist(PHOTOS_PART):
        if not isinstance(part, UploadFile):
            raise _multipart_problem(f"Each `{PHOTOS_PART}` part must be a file.", PHOTOS_PART)
        photos.append(enrolment.UploadedPhoto(await part.read(), part.filename))
    body = await document.read() if isinstance(document, UploadFile) else document.encode()
    await form.close()
    headers = [(k, v) for k, v in request.scope["headers"] if k not in (b"content-type", b"content-length")]
    as_json = Request({**request.scope, "headers": [*headers, (b"content-type", b"application/json")]},
                      request.receive)
    as_json._body = body  # what FastAPI reads and validates as the route's body
    as_json.state.uploaded_photos = photos
    return as_json


class EnrolmentRoute(APIRoute):
    """The enrolment route, taking its body as JSON or as multipart (see the module)."""

    def get_route_handler(self) -> Any:
        handle = super().get_route_handler()

        async def route_handler(request: Request) -> Response:
            media_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
            return await handle(await _json_part(request) if media_type == "multipart/form-data" else request)

        return route_handler


def uploaded_photos(request: Request) -> list[enrolment.UploadedPhoto]:
    return getattr(request.state, "uploaded_photos", [])


UploadedPhotos = Annotated[list[enrolment.UploadedPhoto], Depends(uploaded_photos)]

router = APIRouter(prefix="/v1", tags=["catalogue"], route_class=EnrolmentRoute)


class _WithPhotos(BaseModel):
    """What identifies a multipart enrolment without a caller's fingerprint: its JSON part and its photos."""

    enrolment: EnrolRequest
    photos_sha256: list[str]


def _identity(payload: EnrolRequest, photos: list[enrolment.UploadedPhoto]) -> BaseModel:
    if not photos:
        return payload  # a JSON body holds its photos: the same identity as ever
    return _WithPhotos(enrolment=payload, photos_sha256=[hashlib.sha256(p.data).hexdigest() for p in photos])


def _result(db: Session, enrolled: enrolment.Enrolment) -> EnrolResult:
    return EnrolResult(
        encounter=encounter_out(db, enrolled.encounter),
        media=[MediaOut.model_validate(m) for m in enrolled.media],
        duplicate_media_ids=enrolled.duplicate_media_ids,
        annotations=[annotation_out(a) for a in enrolled.annotations],
        identifications=[IdentificationOut.model_validate(i) for i in enrolled.identifications],
        new_individuals=[IndividualOut.model_validate(i) for i in enrolled.new_individuals],
    )


@router.post(
    "/orgs/{org_id}/enrolments",
    response_model=EnrolResult,
    status_code=201,
    summary="Enrol an encounter's photos and their whole result in one transaction",
    description="JSON (photos base64 in `image`, or `media_id`), or multipart/form-data: the same document as "
    f"the JSON part `{ENROLMENT_PART}` and each new photo as a `{PHOTOS_PART}` file part, as uploaded, named by "
    "its entry's `file.index`.",
    openapi_extra=MULTIPART_BODY,
)
def enrol(context: CatalogContext, org_id: OrgId, payload: EnrolRequest, photos: UploadedPhotos, db: DbSession,
          create: Creation) -> Any:
    limits = context.settings.image_limits()
    response = create(_identity(payload, photos), lambda: _result(
        db, enrolment.enrol(db, context.store, org_id, payload, photos, limits=limits)))
    if not replayed(response):
        context.metrics.enrolments.inc()
    return response
