"""Route of enrolment: an encounter's photos and their whole result, in one transaction."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from sqlalchemy.orm import Session

from finprint.schemas.catalog import EnrolRequest, EnrolResult, IdentificationOut, IndividualOut, MediaOut
from services.catalog.encounters.annotations.service import annotation_out
from services.catalog.encounters.enrolment import service as enrolment
from services.catalog.encounters.sightings.service import encounter_out
from services.catalog.shared.dependencies import CatalogContext, DbSession, OrgId
from services.catalog.shared.idempotency import Creation, replayed

router = APIRouter(prefix="/v1", tags=["catalogue"])


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
)
def enrol(context: CatalogContext, org_id: OrgId, payload: EnrolRequest, db: DbSession, create: Creation) -> Any:
    limits = context.settings.image_limits()
    response = create(payload, lambda: _result(db, enrolment.enrol(db, context.store, org_id, payload, limits=limits)))
    if not replayed(response):
        context.metrics.enrolments.inc()
    return response
