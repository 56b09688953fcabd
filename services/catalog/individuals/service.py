"""Individuals: create, look up, browse, edit, and point annotations at them.

Every assignment of an annotation is written to the audit log of both individuals concerned and
gets a change event, so the matcher follows; first/last seen are recomputed after each.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Select, func, select
from sqlalchemy.orm import Session

from finprint.schemas.catalog import IndividualCreate, IndividualUpdate
from services.catalog.adapters.db.models import Annotation, Encounter, Individual, Media, Species, UTCDateTime
from services.catalog.audit import service as audit
from services.catalog.internal.change_log import record_change
from services.catalog.shared.database import inserted
from services.catalog.shared.filters import contains, sighting_conditions
from services.catalog.shared.problems import Conflict, Invalid
from services.catalog.shared.scoping import get_owned

ENTITY = "individual"


def require_species(session: Session, key: str, field: str = "species") -> Species:
    species = session.get(Species, key)
    if species is None:
        raise Invalid(f"unknown species {key!r}; see GET /v1/species", field=field)
    return species


def list_species(session: Session) -> list[Species]:
    return list(session.scalars(select(Species).order_by(Species.key)))


def audit_individual(
    session: Session, individual: Individual, action: str, actor: str | None, **details: Any
) -> int:
    """Append to the individual's audit log; the entry's id."""
    return audit.append(session, individual.org_id, ENTITY, individual.id, action, actor, **details).id


def _require_free_code(session: Session, org_id: str, code: str) -> None:
    taken = session.scalar(
        select(Individual.id).where(Individual.org_id == org_id, Individual.catalogue_code == code)
    )
    if taken is not None:
        raise Conflict(f"catalogue code {code!r} is already used by individual {taken}", individual_id=taken)


def create_individual(
    session: Session, org_id: str, request: IndividualCreate, actor: str | None, *, action: str = "created"
) -> Individual:
    require_species(session, request.species)
    _require_free_code(session, org_id, request.catalogue_code)
    individual = Individual(
        org_id=org_id, catalogue_code=request.catalogue_code, name=request.name, species_key=request.species,
        sex=request.sex, notes=request.notes,
    )
    inserted(session, individual)
    audit_individual(session, individual, action, actor, **request.model_dump())
    return individual


def get_individual(session: Session, org_id: str, individual_id: str) -> Individual:
    return get_owned(session, Individual, org_id, individual_id, "Individual")


def active_individual(session: Session, org_id: str, individual_id: str) -> Individual:
    """The individual, or the one it was merged into (an old id still leads to the animal)."""
    individual = get_individual(session, org_id, individual_id)
    seen = {individual.id}
    while individual.merged_into_id is not None:
        individual = get_individual(session, org_id, individual.merged_into_id)
        if individual.id in seen:
            raise Conflict(f"the merge chain of individual {individual_id} loops")
        seen.add(individual.id)
    return individual


def require_active(individual: Individual, edit: str) -> None:
    """A merged individual is history: what would change it must change the one it became."""
    if individual.status != "active":
        raise Conflict(
            f"individual {individual.id} was merged into {individual.merged_into_id}; {edit} that one"
        )


def select_individuals(
    org_id: str,
    *,
    species: str | None,
    search: str | None,
    include_merged: bool,
    ids: Sequence[str] = (),
    catalogue_code: str | None = None,
    sex: str | None = None,
    seen_since: datetime | None = None,
    seen_until: datetime | None = None,
    seen_at: str | None = None,
) -> Select[tuple[Individual]]:
    """Browse (active ones unless ``include_merged``), or look up by ids / exact catalogue code
    (merged ones included: an old code or id must still be found). ``seen_since``, ``seen_until`` and
    ``seen_at`` keep the individuals with a sighting in that period and at a place of that name."""
    query = select(Individual).where(Individual.org_id == org_id)
    lookup = bool(ids) or catalogue_code is not None
    if ids:
        query = query.where(Individual.id.in_(ids))
    if catalogue_code is not None:
        query = query.where(Individual.catalogue_code == catalogue_code)
    if species:
        query = query.where(Individual.species_key == species)
    if sex:
        query = query.where(Individual.sex == sex)
    if search:
        query = query.where(contains(Individual.catalogue_code, search) | contains(Individual.name, search))
    seen = sighting_conditions(since=seen_since, until=seen_until, location=seen_at)
    if seen:
        sighted = (
            select(Annotation.individual_id)
            .join(Media, Media.id == Annotation.media_id)
            .join(Encounter, Encounter.id == Media.encounter_id)
            .where(Annotation.org_id == org_id, Annotation.individual_id.is_not(None), *seen)
        )
        query = query.where(Individual.id.in_(sighted))
    if not include_merged and not lookup:
        query = query.where(Individual.status == "active")
    return query.order_by(Individual.catalogue_code)


def update_individual(
    session: Session, org_id: str, individual_id: str, request: IndividualUpdate, actor: str | None
) -> Individual:
    individual = get_individual(session, org_id, individual_id)
    changes = request.model_dump(exclude_unset=True)
    if changes:
        require_active(individual, "edit")
    if "catalogue_code" in changes and changes["catalogue_code"] != individual.catalogue_code:
        _require_free_code(session, org_id, changes["catalogue_code"])
    if "species" in changes:
        require_species(session, changes["species"])
    if changes.get("representative_media_id"):
        get_owned(session, Media, org_id, changes["representative_media_id"], "Media")
    before = {}
    for field, value in changes.items():
        attribute = "species_key" if field == "species" else field
        before[field] = getattr(individual, attribute)
        setattr(individual, attribute, value)
    session.flush()
    if "species" in changes and before["species"] != changes["species"]:
        # The species is the matcher's index key: its embeddings move to another index.
        for annotation in annotations_of(session, org_id, individual.id):
            record_change(session, annotation, "species_changed")
    audit_individual(session, individual, "updated", actor, before=before, after=changes)
    return individual


def annotations_of(session: Session, org_id: str, individual_id: str) -> list[Annotation]:
    return list(
        session.scalars(
            select(Annotation)
            .where(Annotation.org_id == org_id, Annotation.individual_id == individual_id)
            .order_by(Annotation.created_at, Annotation.id)
        )
    )


def refresh_sightings(session: Session, individual: Individual) -> None:
    """first_seen/last_seen from the encounters of the individual's annotations."""
    session.flush()
    first, last = session.execute(
        select(func.min(Encounter.occurred_at), func.max(Encounter.occurred_at))
        .select_from(Annotation)
        .join(Media, Media.id == Annotation.media_id)
        .join(Encounter, Encounter.id == Media.encounter_id)
        .where(Annotation.individual_id == individual.id, Annotation.org_id == individual.org_id)
    ).one()
    # min/max of a timezone-aware column come back naive on SQLite: read them through the model type
    to_utc = UTCDateTime().process_result_value
    dialect = session.get_bind().dialect
    individual.first_seen = to_utc(first, dialect)
    individual.last_seen = to_utc(last, dialect)
    if individual.representative_media_id is None:
        first_annotation = next(iter(annotations_of(session, individual.org_id, individual.id)), None)
        if first_annotation is not None:
            individual.representative_media_id = first_annotation.media_id


def assign(
    session: Session, annotation: Annotation, individual: Individual | None, reason: str, actor: str | None
) -> None:
    """Point an annotation at an individual (or none), with its change event and audit entries."""
    previous_id = annotation.individual_id
    new_id = individual.id if individual is not None else None
    if previous_id == new_id:
        return
    annotation.individual_id = new_id
    record_change(session, annotation, reason)
    if previous_id is not None:
        previous = get_individual(session, annotation.org_id, previous_id)
        audit_individual(session, previous, "annotation_removed", actor,
                         annotation_id=annotation.id, reason=reason, to_individual_id=new_id)
        refresh_sightings(session, previous)
    if individual is not None:
        audit_individual(session, individual, "annotation_assigned", actor,
                         annotation_id=annotation.id, reason=reason, from_individual_id=previous_id)
        refresh_sightings(session, individual)
