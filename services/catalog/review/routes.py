"""Routes of identifications: open a review, browse the queue, decide."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Query
from fastapi.responses import JSONResponse

from finprint.schemas.catalog import (
    Decision,
    DecisionRequest,
    DuplicateDecision,
    DuplicatePairOut,
    DuplicatesFile,
    DuplicatesFiled,
    DuplicateStatus,
    ExplanationCreate,
    ExplanationOut,
    IdentificationCreate,
    IdentificationOut,
    Page,
)
from services.catalog.review import duplicates, explanations
from services.catalog.review import service as review
from services.catalog.shared.dependencies import CatalogContext, DbSession, Limit, Offset, OrgId
from services.catalog.shared.idempotency import Creation
from services.catalog.shared.paging import paged

router = APIRouter(prefix="/v1", tags=["catalogue"])


@router.post("/orgs/{org_id}/identifications", response_model=IdentificationOut, status_code=201,
             summary="Open a review of an annotation with its candidates")
def create_identification(org_id: OrgId, payload: IdentificationCreate, db: DbSession,
                          create: Creation) -> JSONResponse:
    return create(payload, lambda: review.identification_out(review.create_identification(db, org_id, payload)))


@router.get("/orgs/{org_id}/identifications", summary="Browse identifications (e.g. the pending ones)")
def list_identifications(
    org_id: OrgId, db: DbSession, offset: Offset = 0, limit: Limit = 100, decision: Decision | None = None,
    annotation_id: str | None = None,
    species: Annotated[str | None, Query(description="Of an animal predicted as this species.")] = None,
    since: Annotated[datetime | None, Query(description="Photo's sighting on or after (with a time zone).")]
    = None,
    until: Annotated[datetime | None, Query(description="Photo's sighting before (with a time zone).")] = None,
    location: Annotated[str | None, Query(max_length=200, description="Part of the sighting's place name.")]
    = None,
    dated: Annotated[bool | None, Query(description="Only photos of dated sightings (true) or undated (false).")]
    = None,
    decided_by: Annotated[str | None, Query(max_length=200, description="Decided by this actor; `auto-accept`: "
                                            "the matches confirmed without review.")] = None,
) -> Page[IdentificationOut]:
    queue = review.select_identifications(org_id, decision=decision, annotation_id=annotation_id, species=species,
                                          since=since, until=until, location=location, dated=dated,
                                          decided_by=decided_by)
    return paged(db, queue, offset, limit, review.identification_out)


@router.get("/orgs/{org_id}/identifications/{identification_id}", summary="An identification")
def get_identification(org_id: OrgId, identification_id: str, db: DbSession) -> IdentificationOut:
    return review.identification_out(review.get_identification(db, org_id, identification_id))


@router.post("/orgs/{org_id}/identifications/{identification_id}:decide", response_model=IdentificationOut,
             summary="Decide: confirmed, new individual, or rejected")
def decide_identification(org_id: OrgId, identification_id: str, payload: DecisionRequest, db: DbSession,
                          create: Creation) -> JSONResponse:
    def decide() -> IdentificationOut:
        return review.identification_out(review.decide(db, org_id, identification_id, payload))

    return create(payload, decide)


@router.get("/orgs/{org_id}/identifications/{identification_id}/explanations/{individual_id}",
            summary="The kept explanation of a candidate (404 until one is saved)")
def get_explanation(context: CatalogContext, org_id: OrgId, identification_id: str, individual_id: str,
                    db: DbSession) -> ExplanationOut:
    return explanations.get_explanation(db, context.store, org_id, identification_id, individual_id,
                                        context.settings.presign_expiry_s)


@router.put("/orgs/{org_id}/identifications/{identification_id}/explanations/{individual_id}",
            summary="Keep the explanation of a candidate: its heatmaps, and its overlays in the object store")
def put_explanation(context: CatalogContext, org_id: OrgId, identification_id: str, individual_id: str,
                    payload: ExplanationCreate, db: DbSession) -> ExplanationOut:
    return explanations.save_explanation(db, context.store, org_id, identification_id, individual_id, payload,
                                         context.settings.presign_expiry_s)


@router.post("/orgs/{org_id}/duplicates:file", summary="File possible duplicates into the review queue")
def file_duplicates(org_id: OrgId, payload: DuplicatesFile, db: DbSession) -> DuplicatesFiled:
    filed = duplicates.file_pairs(db, org_id, payload)
    db.commit()
    return filed


@router.get("/orgs/{org_id}/duplicates", summary="Possible duplicates, closest first (pending by default)")
def list_duplicates(org_id: OrgId, db: DbSession, offset: Offset = 0, limit: Limit = 100,
                    status: DuplicateStatus | None = "pending",
                    species: Annotated[str | None, Query(max_length=100)] = None) -> Page[DuplicatePairOut]:
    return paged(db, duplicates.select_pairs(org_id, status=status, species=species), offset, limit,
                 DuplicatePairOut.model_validate)


@router.get("/orgs/{org_id}/duplicates/{pair_id}", summary="A possible duplicate")
def get_duplicate(org_id: OrgId, pair_id: str, db: DbSession) -> DuplicatePairOut:
    return DuplicatePairOut.model_validate(duplicates.get_pair(db, org_id, pair_id))


@router.post("/orgs/{org_id}/duplicates/{pair_id}:decide", summary="Merge the two individuals, or dismiss the pair")
def decide_duplicate(org_id: OrgId, pair_id: str, payload: DuplicateDecision, db: DbSession) -> DuplicatePairOut:
    pair = duplicates.decide(db, org_id, pair_id, payload)
    db.commit()
    return DuplicatePairOut.model_validate(pair)
