"""Identify a photo, and enrol photos as an encounter."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Header, Query, Request
from pydantic import ValidationError
from starlette.datastructures import UploadFile

from finprint.problems import Problem, problem_from_validation
from finprint.schemas.common import NOTES_MAX_LENGTH
from finprint.schemas.gateway import EncounterIdentifyResponse, IdentifyResponse
from services.gateway.adapters.uploads import Upload, read_photos, read_single_image, request_fingerprint
from services.gateway.application.enrolment import EnrolmentRequest
from services.gateway.application.identify import identify, identify_encounter
from services.gateway.dependencies import GatewayContext, gateway_context, identify_quota
from services.gateway.domain.enrolment import EncounterForm
from services.gateway.domain.principal import Principal, Role

router = APIRouter(prefix="/v1", tags=["identification"])

IDENTIFY_EXAMPLE = {
    "results": [{
        "box": [112.0, 80.0, 1630.0, 905.0], "view": "fluke", "detection_score": 0.98,
        "species": [{"species": "humpback_whale", "score": 0.97}, {"species": "beluga", "score": 0.01}],
        "candidates": [{"individual_id": "HW-0042", "score": 0.81, "name": "Salt"},
                       {"individual_id": "HW-0007", "score": 0.52, "name": None}],
        "new_individual": 0.08, "ranking": ["HW-0042", "new_individual", "HW-0007"],
        "identification_id": None,
    }],
    "reason": None,
    "model": {"detector": {"name": "finprint_detector", "version": "1"},
              "embedder": {"name": "finprint_embedder", "version": "1"}},
    "encounter_id": None, "media_id": None,
}

PHOTO = {"type": "string", "format": "binary"}
# The routes read their bodies themselves (one photo from either form), so the contract is spelled out here.
IDENTIFY_BODY = {"requestBody": {"required": True, "content": {
    "multipart/form-data": {"schema": {"type": "object", "required": ["image"], "properties": {"image": PHOTO}}},
    **{media_type: {"schema": PHOTO} for media_type in ("image/jpeg", "image/png", "image/webp")}}}}
ENROL_BODY = {"requestBody": {"required": True, "content": {"multipart/form-data": {"schema": {
    "type": "object", "required": ["images"], "properties": {
        "images": {"type": "array", "items": PHOTO}, "observed_at": {"type": "string", "format": "date-time"},
        "latitude": {"type": "number", "minimum": -90, "maximum": 90},
        "longitude": {"type": "number", "minimum": -180, "maximum": 180},
        "location": {"type": "string", "maxLength": 200}, "observer": {"type": "string", "maxLength": 200},
        "notes": {"type": "string", "maxLength": NOTES_MAX_LENGTH},
        "individual_id": {"type": "string", "minLength": 1, "maxLength": 64}}}}}}}

ENCOUNTER_IDENTIFY_BODY = {"requestBody": {"required": True, "content": {"multipart/form-data": {"schema": {
    "type": "object", "required": ["images"], "properties": {
        "images": {"type": "array", "items": PHOTO, "minItems": 1, "maxItems": 20}}}}}}}

IdempotencyKey = Annotated[str | None, Header(alias="Idempotency-Key", max_length=200,
                                               description="Retrying with the same key stores nothing twice.")]


@router.post(
    "/identify",
    response_model=IdentifyResponse,
    summary="Which species and which catalogued individual is in this photo",
    description="Send one photo as the multipart field `image` or as a raw image/jpeg, image/png or image/webp "
    "body. Nothing is stored unless `store=true` (contributors): then an encounter and an identification "
    "waiting for review are created, or confirmed at once when the organisation's auto-accept target is set "
    "(`PUT /v1/settings`) and the match clears its species' cut (`decision`: confirmed).",
    responses={200: {"content": {"application/json": {"example": IDENTIFY_EXAMPLE}}}},
    openapi_extra=IDENTIFY_BODY,
)
async def identify_photo(
    request: Request,
    store: Annotated[bool, Query(description="Keep the photo and queue the identification for review.")] = False,
    idempotency_key: IdempotencyKey = None,
    principal: Principal = Depends(identify_quota),
    ctx: GatewayContext = Depends(gateway_context),
) -> IdentifyResponse:
    if store and not principal.may(Role.contributor):
        raise Problem(403, "Storing a photo needs the contributor role.", slug="forbidden", needed_role="contributor")
    upload = await read_single_image(request)
    target = await ctx.enrolment.precision_target(principal.org_id) if store else None
    response, analysis = await identify(ctx.pipeline, ctx.catalog, principal.org_id, upload, target)
    if not store or not response.results:
        return response
    stored = await ctx.enrolment.store(EnrolmentRequest(
        principal.org_id, [upload], EncounterForm(), actor=principal.subject, uploaded_by=principal.subject,
        idempotency_key=idempotency_key, fingerprint=request_fingerprint("identify", [upload], {})), [analysis])
    enrolled = stored.catalog
    for group in sorted(stored.auto_accepted):
        await ctx.enrolment.index_soon(principal.org_id, group)
    for result, identification in zip(response.results, enrolled["identifications"]):
        result.identification_id = identification["id"]
        result.decision = identification["decision"]
    response.encounter_id = enrolled["encounter"]["id"]
    response.media_id = enrolled["media"][0]["id"]
    return response


@router.post(
    "/encounters:identify",
    response_model=EncounterIdentifyResponse,
    summary="Which catalogued individual several photos of one encounter show",
    description="Multipart: the photos of ONE animal seen in one encounter, each as an `images` file field. "
    "Each photo is identified on its own (`photos`), and the animal once from all of them (`fused`: the "
    "photos' embeddings averaged and searched together), which ranks the animal much better than any single "
    "photo (docs/models.md). Photos without a cetacean are left out of the fused answer. Nothing is stored.",
    openapi_extra=ENCOUNTER_IDENTIFY_BODY,
)
async def identify_encounter_photos(
    request: Request,
    principal: Principal = Depends(identify_quota),
    ctx: GatewayContext = Depends(gateway_context),
) -> EncounterIdentifyResponse:
    uploads = await read_photos(request, "images", ctx.settings.encounter_max_photos)
    return await identify_encounter(ctx.pipeline, ctx.catalog, principal.org_id, uploads,
                                    ctx.settings.encounter_photo_concurrency)


async def _enrolment_form(request: Request) -> tuple[EncounterForm, list[Upload], str]:
    """The form of an enrolment, validated before any photo is analysed (bad input costs nothing)."""
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type != "multipart/form-data":
        raise Problem(415, "Send an enrolment as multipart/form-data: one or more `images` file fields plus "
                           "the encounter's fields.")
    form = await request.form()
    files = [f for f in form.getlist("images") if isinstance(f, UploadFile)]
    if not files:
        raise Problem(422, "Send at least one photo in the multipart field `images`.", slug="validation-error",
                      errors=[{"field": "images", "message": "missing file", "type": "missing"}])
    fields = {name: form.get(name) for name in EncounterForm.model_fields if form.get(name) not in (None, "")}
    try:
        meta = EncounterForm.model_validate(fields)
    except ValidationError as exc:
        raise problem_from_validation(exc) from None
    uploads = [Upload(await f.read(), f.filename or f"image-{i}", f.content_type or "application/octet-stream")
               for i, f in enumerate(files)]
    return meta, uploads, request_fingerprint("encounters", uploads, fields)


@router.post(
    "/encounters",
    status_code=201,
    summary="Enrol photos of an encounter: stored, detected, embedded and indexed",
    description="Multipart: one or more `images` file fields plus `observed_at` (ISO 8601 with zone), "
    "`latitude`, `longitude`, `location`, `observer`, `notes`, and `individual_id` (a catalogue code) when "
    "the animal is known; a new code creates the individual. Without `individual_id` each photo's "
    "identification waits in the review queue. All photos are stored in one transaction, or none.",
    openapi_extra=ENROL_BODY,
)
async def enrol_encounter(
    request: Request,
    idempotency_key: IdempotencyKey = None,
    principal: Principal = Depends(identify_quota),
    ctx: GatewayContext = Depends(gateway_context),
) -> dict:
    if not principal.may(Role.contributor):
        raise Problem(403, "Enrolling photos needs the contributor role.", slug="forbidden",
                      needed_role="contributor")
    form, uploads, fingerprint = await _enrolment_form(request)
    enrolled = await ctx.enrolment.enrol(EnrolmentRequest(
        principal.org_id, uploads, form, actor=principal.subject, uploaded_by=principal.subject,
        idempotency_key=idempotency_key, fingerprint=fingerprint))
    return enrolled.catalog
