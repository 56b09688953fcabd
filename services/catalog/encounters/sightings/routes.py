"""Routes of encounters (sightings)."""

from __future__ import annotations

from datetime import datetime

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from finprint.schemas.catalog import EncounterCreate, EncounterOut, EncounterUpdate, Page
from services.catalog.encounters.sightings import service as encounters
from services.catalog.shared.dependencies import DbSession, Limit, Offset, OrgId
from services.catalog.shared.idempotency import Creation
from services.catalog.shared.paging import paged
from services.catalog.shared.problems import Invalid

router = APIRouter(prefix="/v1", tags=["catalogue"])


@router.post("/orgs/{org_id}/encounters", response_model=EncounterOut, status_code=201,
             summary="Record an encounter (sighting)")
def create_encounter(
    org_id: OrgId, payload: EncounterCreate, db: DbSession, create: Creation
) -> JSONResponse:
    return create(
        payload, lambda: encounters.encounter_out(db, encounters.create_encounter(db, org_id, payload))
    )


def _require_zone(name: str, moment: datetime | None) -> None:
    if moment is not None and moment.tzinfo is None:
        raise Invalid(f"{name} needs a time zone (e.g. 2024-07-01T00:00:00Z)", field=name)


@router.get("/orgs/{org_id}/encounters", summary="Browse encounters")
def list_encounters(org_id: OrgId, db: DbSession, offset: Offset = 0, limit: Limit = 100,
                    individual_id: str | None = None, since: datetime | None = None,
                    until: datetime | None = None) -> Page[EncounterOut]:
    _require_zone("since", since)
    _require_zone("until", until)
    found = encounters.select_encounters(org_id, individual_id=individual_id, since=since, until=until)
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
