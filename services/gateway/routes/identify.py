"""Identify a photo, and enrol photos as an encounter."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Header, Query, Request

from finprint.problems import Problem
from finprint.schemas.gateway import IdentifyResponse
from services.gateway.adapters.uploads import read_single_image
from services.gateway.dependencies import GatewayContext, gateway_context, identify_quota
from services.gateway.domain.principal import Principal, Role
from services.gateway.orchestration import enrol_annotations, identify, image_payload

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

IdempotencyKey = Annotated[str | None, Header(alias="Idempotency-Key", max_length=200,
                                               description="Retrying with the same key stores nothing twice.")]


@router.post(
    "/identify",
    response_model=IdentifyResponse,
    summary="Which species and which catalogued individual is in this photo",
    description="Send one photo as the multipart field `image` or as a raw image/jpeg, image/png or image/webp "
    "body. Nothing is stored unless `store=true` (contributors): then an encounter and an identification "
    "waiting for review are created.",
    responses={200: {"content": {"application/json": {"example": IDENTIFY_EXAMPLE}}}},
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
    response, analysis = await identify(ctx.pipeline, ctx.catalog, principal.org_id, upload)
    if not store or not response.results:
        return response
    enrolled = await ctx.catalog.enrol(
        principal.org_id,
        {"encounter": {}, "image": image_payload(upload), "uploaded_by": principal.subject,
         "annotations": enrol_annotations(analysis)},
        idempotency_key,
    )
    for result, identification in zip(response.results, enrolled["identifications"]):
        result.identification_id = identification["id"]
    response.encounter_id = enrolled["encounter"]["id"]
    response.media_id = enrolled["media"]["id"]
    return response
