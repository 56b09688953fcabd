"""Routes of the species (reference data) and of individuals: browse, look up, edit, history, merge, split."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Query
from fastapi.responses import JSONResponse

from finprint.schemas.catalog import (
    AuditEntryOut,
    IndividualCreate,
    IndividualOut,
    IndividualUpdate,
    MergeRequest,
    MergeSplitResult,
    Page,
    Sex,
    SpeciesOut,
    SplitRequest,
)
from services.catalog.adapters.db.models import Individual
from services.catalog.audit import service as audit
from services.catalog.individuals import curation
from services.catalog.individuals import service as individuals
from services.catalog.shared.dependencies import DbSession, Limit, Offset, OrgId
from services.catalog.shared.idempotency import Creation
from services.catalog.shared.paging import paged

router = APIRouter(prefix="/v1", tags=["catalogue"])
HISTORY_MAX = 10_000
Actor = Annotated[str | None, Query(description="Who does it (audit log).")]


@router.get("/species", summary="The species (reference data, shared)")
def list_species(db: DbSession) -> list[SpeciesOut]:
    return [SpeciesOut.model_validate(s) for s in individuals.list_species(db)]


@router.post("/orgs/{org_id}/individuals", response_model=IndividualOut, status_code=201,
             summary="Catalogue an individual")
def create_individual(org_id: OrgId, payload: IndividualCreate, db: DbSession, create: Creation,
                      actor: Actor = None) -> JSONResponse:
    def catalogue() -> IndividualOut:
        return IndividualOut.model_validate(individuals.create_individual(db, org_id, payload, actor))

    return create(payload, catalogue)


@router.get("/orgs/{org_id}/individuals", summary="Browse individuals")
def list_individuals(
    org_id: OrgId,
    db: DbSession,
    offset: Offset = 0,
    limit: Limit = 100,
    species: str | None = None,
    q: Annotated[str | None, Query(max_length=100, description="Part of the code or name.")] = None,
    include_merged: Annotated[bool, Query(description="Browse merged ones too (lookups always do).")] = False,
    ids: Annotated[str | None, Query(description="Look up these ids (comma-separated).")] = None,
    catalogue_code: Annotated[str | None, Query(description="Look up this exact catalogue code.")] = None,
    sex: Sex | None = None,
    since: Annotated[datetime | None, Query(description="Seen on or after (with a time zone).")] = None,
    until: Annotated[datetime | None, Query(description="Seen before (with a time zone).")] = None,
    location: Annotated[str | None, Query(max_length=200, description="Seen at a place whose name holds this.")]
    = None,
) -> Page[IndividualOut]:
    id_list = [i for i in (ids or "").split(",") if i]
    found = individuals.select_individuals(
        org_id, species=species, search=q, include_merged=include_merged, ids=id_list,
        catalogue_code=catalogue_code, sex=sex, seen_since=since, seen_until=until, seen_at=location,
    )
    return paged(db, found, offset, limit, IndividualOut.model_validate)


@router.get("/orgs/{org_id}/individuals/{individual_id}", summary="An individual")
def get_individual(org_id: OrgId, individual_id: str, db: DbSession) -> IndividualOut:
    return IndividualOut.model_validate(individuals.get_individual(db, org_id, individual_id))


@router.patch("/orgs/{org_id}/individuals/{individual_id}", summary="Edit an individual")
def update_individual(org_id: OrgId, individual_id: str, payload: IndividualUpdate, db: DbSession,
                      actor: str | None = None) -> IndividualOut:
    individual = individuals.update_individual(db, org_id, individual_id, payload, actor)
    db.commit()
    return IndividualOut.model_validate(individual)


@router.get(
    "/orgs/{org_id}/individuals/{individual_id}/history", summary="The individual's audit log, oldest first"
)
def individual_history(org_id: OrgId, individual_id: str, db: DbSession) -> list[AuditEntryOut]:
    individuals.get_individual(db, org_id, individual_id)
    history = audit.select_entries(org_id, entity_type=individuals.ENTITY, entity_id=individual_id)
    return [AuditEntryOut.model_validate(e) for e in db.scalars(history.limit(HISTORY_MAX))]


def _result(repaired: tuple[Individual, list[str], list[int]]) -> MergeSplitResult:
    individual, moved, audit_ids = repaired
    return MergeSplitResult(individual=IndividualOut.model_validate(individual), moved_annotation_ids=moved,
                            audit_ids=audit_ids)


@router.post("/orgs/{org_id}/individuals:merge", response_model=MergeSplitResult,
             summary="Merge individuals catalogued twice into one")
def merge_individuals(org_id: OrgId, payload: MergeRequest, db: DbSession, create: Creation) -> JSONResponse:
    return create(payload, lambda: _result(curation.merge(db, org_id, payload)))


@router.post(
    "/orgs/{org_id}/individuals/{individual_id}:split",
    response_model=MergeSplitResult,
    status_code=201,
    summary="Split some annotations off into a new individual",
)
def split_individual(org_id: OrgId, individual_id: str, payload: SplitRequest, db: DbSession,
                     create: Creation) -> JSONResponse:
    return create(payload, lambda: _result(curation.split(db, org_id, individual_id, payload)))
