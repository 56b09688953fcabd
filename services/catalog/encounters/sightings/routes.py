"""Routes of encounters (sightings)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Query
from fastapi.responses import JSONResponse

from finprint.schemas.catalog import EncounterCreate, EncounterOut, EncounterUpdate, Page
from services.catalog.encounters.sightings import service as encounters
from services.catalog.shared.dependencies import DbSession, Limit, Offset, OrgId
from services.catalog.shared.idempotency import Creation
from services.catalog.shared.paging import paged

router = APIRouter(prefix="/v1", tags=["catalogue"])


@router.post("/orgs/{org_id}/encounters", response_model=EncounterOut, status_code=201,
             summary="Record an encounter (sighting)")
def create_encounter(
    org_id: OrgId, payload: EncounterCreate, db: DbSession, create: Creation
) -> JSONResponse:
    return create(
        payload, lambda: encounters.encounter_out(db, encounters.create_encounter(db, org_id, payload))
    )


@router.get("/orgs/{org_id}/encounters", summary="Browse encounters")
def list_encounters(
    org_id: OrgId, db: DbSession, offset: Offset = 0, limit: Limit = 100, individual_id: str | None = None,
    since: datetime | None = None, until: datetime | None = None,
    species: Annotated[str | None, Query(description="With an animal of this species (predicted or identified).")]
    = None,
    location: Annotated[str | None, Query(max_length=200, description="Part of the place's name.")] = None,
    dated: Annotated[bool | None, Query(description="Only dated ones (true) or only undated ones (false).")] = None,
) -> Page[EncounterOut]:
    found = encounters.select_encounters(org_id, individual_id=individual_id, since=since, until=until,
                                         species=species, location=location, dated=dated)
    return paged(db, found, offset, limit, lambda e: encounters.encounter_out(db, e))


@router.get("/orgs/{org_id}/encounters/{encounter_id}", summary="An encounter")
def get_encounter(org_id: OrgId, encounter_id: str, db: DbSession) -> EncounterOut:
    return encounters.encounter_out(db, encounters.get_encounter(db, org_id, encounter_id))


@router.patch("/orgs/{org_id}/encounters/{encounter_id}", summary="Edit an encounter")
def update_encounter(org_id: OrgId, encounter_id: str, payload: EncounterUpdate, db: DbSession,
                     actor: str | None = None) -> EncounterOut:
    encounter = encounters.update_encounter(db, org_id, encounter_id, payload, actor)
    db.commit()
    return encounters.encounter_out(db, encounter)
