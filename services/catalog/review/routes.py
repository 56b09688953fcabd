"""Routes of identifications: open a review, browse the queue, decide."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from finprint.schemas.catalog import Decision, DecisionRequest, IdentificationCreate, IdentificationOut, Page
from services.catalog.review import service as review
from services.catalog.shared.dependencies import DbSession, Limit, Offset, OrgId
from services.catalog.shared.idempotency import Creation
from services.catalog.shared.paging import paged

router = APIRouter(prefix="/v1", tags=["catalogue"])


@router.post("/orgs/{org_id}/identifications", response_model=IdentificationOut, status_code=201,
             summary="Open a review of an annotation with its candidates")
def create_identification(org_id: OrgId, payload: IdentificationCreate, db: DbSession,
                          create: Creation) -> JSONResponse:
    return create(
        payload, lambda: IdentificationOut.model_validate(review.create_identification(db, org_id, payload))
    )


@router.get("/orgs/{org_id}/identifications", summary="Browse identifications (e.g. the pending ones)")
def list_identifications(org_id: OrgId, db: DbSession, offset: Offset = 0, limit: Limit = 100,
                         decision: Decision | None = None,
                         annotation_id: str | None = None) -> Page[IdentificationOut]:
    queue = review.select_identifications(org_id, decision=decision, annotation_id=annotation_id)
    return paged(db, queue, offset, limit, IdentificationOut.model_validate)


@router.get("/orgs/{org_id}/identifications/{identification_id}", summary="An identification")
def get_identification(org_id: OrgId, identification_id: str, db: DbSession) -> IdentificationOut:
    return IdentificationOut.model_validate(review.get_identification(db, org_id, identification_id))


@router.post("/orgs/{org_id}/identifications/{identification_id}:decide", response_model=IdentificationOut,
             summary="Decide: confirmed, new individual, or rejected")
def decide_identification(org_id: OrgId, identification_id: str, payload: DecisionRequest, db: DbSession,
                          create: Creation) -> JSONResponse:
    def decide() -> IdentificationOut:
        return IdentificationOut.model_validate(review.decide(db, org_id, identification_id, payload))

    return create(payload, decide)
