"""Encounters (sightings): record, edit, browse, and their wire form.

The time is stored in UTC together with the offset it was given in, so it can be shown (and
exported) in the local time of the sighting.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from sqlalchemy import Select, select
from sqlalchemy.orm import Session

from finprint.schemas.catalog import EncounterCreate, EncounterOut, EncounterUpdate
from services.catalog.adapters.db.models import Annotation, Encounter, Individual, Media
from services.catalog.audit import service as audit
from services.catalog.individuals.service import get_individual, refresh_sightings
from services.catalog.shared.database import inserted
from services.catalog.shared.filters import sighting_conditions
from services.catalog.shared.problems import Invalid
from services.catalog.shared.scoping import get_owned


def _offset_minutes(moment: datetime | None) -> int | None:
    if moment is None:
        return None
    offset = moment.utcoffset()
    return int(offset.total_seconds() // 60) if offset is not None else None


def local_time(encounter: Encounter) -> datetime | None:
    """``occurred_at`` in the zone it was recorded in."""
    if encounter.occurred_at is None:
        return None
    offset = timedelta(minutes=encounter.utc_offset_minutes or 0)
    return encounter.occurred_at.astimezone(timezone(offset))


def create_encounter(session: Session, org_id: str, request: EncounterCreate) -> Encounter:
    offset = _offset_minutes(request.occurred_at)
    return inserted(session, Encounter(org_id=org_id, utc_offset_minutes=offset, **request.model_dump()))


def get_encounter(session: Session, org_id: str, encounter_id: str) -> Encounter:
    return get_owned(session, Encounter, org_id, encounter_id, "Encounter")


def update_encounter(
    session: Session, org_id: str, encounter_id: str, request: EncounterUpdate, actor: str | None
) -> Encounter:
    encounter = get_encounter(session, org_id, encounter_id)
    changes = request.model_dump(exclude_unset=True)
    latitude = changes.get("latitude", encounter.latitude)
    longitude = changes.get("longitude", encounter.longitude)
    if (latitude is None) != (longitude is None):
        raise Invalid("give both latitude and longitude, or neither", field="latitude")
    before = {field: getattr(encounter, field) for field in changes}
    for field, value in changes.items():
        setattr(encounter, field, value)
    if "occurred_at" in changes:
        encounter.utc_offset_minutes = _offset_minutes(changes["occurred_at"])
    session.flush()
    before_json = {k: str(v) if isinstance(v, datetime) else v for k, v in before.items()}
    after_json = request.model_dump(mode="json", exclude_unset=True)
    audit.append(
        session, org_id, "encounter", encounter.id, "updated", actor, before=before_json, after=after_json
    )
    if "occurred_at" in changes:
        for individual_id in individual_ids(session, encounter):
            refresh_sightings(session, get_individual(session, org_id, individual_id))
    return encounter


def select_encounters(
    org_id: str, *, individual_id: str | None, since: datetime | None, until: datetime | None,
    species: str | None = None, location: str | None = None, dated: bool | None = None,
) -> Select[tuple[Encounter]]:
    """The organisation's encounters, newest first (undated ones last), of one individual, of one
    species (an animal predicted or identified as it), in a period, at a place, or undated, when given."""
    query = select(Encounter).where(Encounter.org_id == org_id)
    if individual_id:
        of_individual = (
            select(Media.encounter_id)
            .join(Annotation, Annotation.media_id == Media.id)
            .where(Annotation.org_id == org_id, Annotation.individual_id == individual_id)
        )
        query = query.where(Encounter.id.in_(of_individual))
    if species:
        of_species = (
            select(Media.encounter_id)
            .join(Annotation, Annotation.media_id == Media.id)
            .where(
                Annotation.org_id == org_id,
                (Annotation.species_key == species)
                | Annotation.individual_id.in_(
                    select(Individual.id).where(Individual.org_id == org_id, Individual.species_key == species)
                ),
            )
        )
        query = query.where(Encounter.id.in_(of_species))
    query = query.where(*sighting_conditions(since=since, until=until, location=location, dated=dated))
    return query.order_by(Encounter.occurred_at.desc().nulls_last(), Encounter.id)


def individual_ids(session: Session, encounter: Encounter) -> list[str]:
    """The individuals identified in the encounter's media."""
    return list(
        session.scalars(
            select(Annotation.individual_id)
            .distinct()
            .join(Media, Media.id == Annotation.media_id)
            .where(Media.encounter_id == encounter.id, Annotation.individual_id.is_not(None))
            .order_by(Annotation.individual_id)
        )
    )


def encounter_out(session: Session, encounter: Encounter) -> EncounterOut:
    out = EncounterOut.model_validate(encounter)
    return out.model_copy(
        update={
            "occurred_at": local_time(encounter),
            "media_ids": [m.id for m in encounter.media],
            "individual_ids": individual_ids(session, encounter),
        }
    )
