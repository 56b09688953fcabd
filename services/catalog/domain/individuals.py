"""Individuals: create, update, and the two curatorial repairs, merge and split.

Both repairs keep the history: a merged individual is never deleted (it is marked ``merged``
and points at the individual it became, so its catalogue code stays reserved and old
identifications still name it), every move is written to the audit log, and every moved
embedding gets a change event so the matcher follows.
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from finprint.schemas.catalog import IndividualCreate, IndividualUpdate, MergeRequest, SplitRequest
from services.catalog.adapters.db.models import Annotation, Encounter, Individual, Media, Species, UTCDateTime
from services.catalog.domain import audit
from services.catalog.domain.changes import record_change
from services.catalog.domain.errors import Conflict, Invalid
from services.catalog.domain.paging import count, page
from services.catalog.domain.scoping import get_owned

ENTITY = "individual"


def require_species(session: Session, key: str, field: str = "species") -> Species:
    species = session.get(Species, key)
    if species is None:
        raise Invalid(f"unknown species {key!r}; see GET /v1/species", field=field)
    return species


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
        org_id=org_id,
        catalogue_code=request.catalogue_code,
        name=request.name,
        species_key=request.species,
        sex=request.sex,
        notes=request.notes,
    )
    session.add(individual)
    session.flush()
    audit.append(session, org_id, ENTITY, individual.id, action, actor, **request.model_dump())
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


def list_individuals(
    session: Session,
    org_id: str,
    *,
    species: str | None,
    search: str | None,
    include_merged: bool,
    offset: int,
    limit: int,
    ids: Sequence[str] = (),
    catalogue_code: str | None = None,
) -> tuple[list[Individual], int]:
    """Browse (active ones unless ``include_merged``), or look up by ids / exact catalogue code
    (merged ones included: an old code or id must still be found)."""
    query = select(Individual).where(Individual.org_id == org_id)
    lookup = bool(ids) or catalogue_code is not None
    if ids:
        query = query.where(Individual.id.in_(ids))
    if catalogue_code is not None:
        query = query.where(Individual.catalogue_code == catalogue_code)
    if species:
        query = query.where(Individual.species_key == species)
    if search:
        pattern = f"%{search.lower()}%"
        query = query.where(
            func.lower(Individual.catalogue_code).like(pattern) | func.lower(Individual.name).like(pattern)
        )
    if not include_merged and not lookup:
        query = query.where(Individual.status == "active")
    return page(session, query.order_by(Individual.catalogue_code), offset, limit), count(session, query)


def update_individual(
    session: Session, org_id: str, individual_id: str, request: IndividualUpdate, actor: str | None
) -> Individual:
    individual = get_individual(session, org_id, individual_id)
    changes = request.model_dump(exclude_unset=True)
    if individual.status != "active" and changes:
        raise Conflict(
            f"individual {individual_id} was merged into {individual.merged_into_id}; edit that one"
        )
    before = {}
    if "catalogue_code" in changes and changes["catalogue_code"] != individual.catalogue_code:
        _require_free_code(session, org_id, changes["catalogue_code"])
    if "species" in changes:
        require_species(session, changes["species"])
    if changes.get("representative_media_id"):
        get_owned(session, Media, org_id, changes["representative_media_id"], "Media")
    for field, value in changes.items():
        attribute = "species_key" if field == "species" else field
        before[field] = getattr(individual, attribute)
        setattr(individual, attribute, value)
    session.flush()
    if "species" in changes and before["species"] != changes["species"]:
        # The species is the matcher's index key: its embeddings move to another index.
        for annotation in annotations_of(session, org_id, individual.id):
            record_change(session, annotation, "species_changed")
    audit.append(session, org_id, ENTITY, individual.id, "updated", actor, before=before, after=changes)
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
        audit.append(
            session,
            annotation.org_id,
            ENTITY,
            previous_id,
            "annotation_removed",
            actor,
            annotation_id=annotation.id,
            reason=reason,
            to_individual_id=new_id,
        )
        refresh_sightings(session, previous)
    if individual is not None:
        audit.append(
            session,
            annotation.org_id,
            ENTITY,
            individual.id,
            "annotation_assigned",
            actor,
            annotation_id=annotation.id,
            reason=reason,
            from_individual_id=previous_id,
        )
        refresh_sightings(session, individual)


def merge(session: Session, org_id: str, request: MergeRequest) -> tuple[Individual, list[str], list[int]]:
    """Move everything of the sources to the target; the sources stay, marked merged into it."""
    target = get_individual(session, org_id, request.target_id)
    sources = [get_individual(session, org_id, source_id) for source_id in dict.fromkeys(request.source_ids)]
    for individual in (target, *sources):
        if individual.status != "active":
            raise Conflict(f"individual {individual.id} was already merged into {individual.merged_into_id}")
    if target.id in {s.id for s in sources}:
        raise Invalid("an individual cannot be merged into itself", field="source_ids")
    other_species = sorted({s.species_key for s in sources} - {target.species_key})
    if other_species:
        raise Conflict(
            f"cannot merge individuals of other species ({', '.join(other_species)}) into a "
            f"{target.species_key}; correct the species first"
        )
    moved: list[str] = []
    audit_ids: list[int] = []
    for source in sources:
        source_moved = []
        for annotation in annotations_of(session, org_id, source.id):
            annotation.individual_id = target.id
            record_change(session, annotation, "merge")
            source_moved.append(annotation.id)
        source.status = "merged"
        source.merged_into_id = target.id
        if target.representative_media_id is None:
            target.representative_media_id = source.representative_media_id
        entry = audit.append(
            session,
            org_id,
            ENTITY,
            source.id,
            "merged_into",
            request.actor,
            target_id=target.id,
            target_code=target.catalogue_code,
            moved_annotation_ids=source_moved,
            reason=request.reason,
        )
        audit_ids.append(entry.id)
        moved += source_moved
    entry = audit.append(
        session,
        org_id,
        ENTITY,
        target.id,
        "merged",
        request.actor,
        source_ids=[s.id for s in sources],
        source_codes=[s.catalogue_code for s in sources],
        moved_annotation_ids=moved,
        reason=request.reason,
    )
    audit_ids.append(entry.id)
    refresh_sightings(session, target)
    for source in sources:
        source.first_seen = source.last_seen = None
    return target, moved, audit_ids


def split(
    session: Session, org_id: str, individual_id: str, request: SplitRequest
) -> tuple[Individual, list[str], list[int]]:
    """Move some of an individual's annotations to a new individual."""
    original = get_individual(session, org_id, individual_id)
    if original.status != "active":
        raise Conflict(
            f"individual {individual_id} was merged into {original.merged_into_id}; split that one"
        )
    owned = {a.id: a for a in annotations_of(session, org_id, original.id)}
    wanted = list(dict.fromkeys(request.annotation_ids))
    foreign = [a for a in wanted if a not in owned]
    if foreign:
        raise Invalid(
            f"annotations {', '.join(foreign)} do not belong to individual {individual_id}",
            field="annotation_ids",
        )
    if len(wanted) == len(owned):
        raise Invalid(
            "a split must leave the individual at least one annotation; to rename it, edit it",
            field="annotation_ids",
        )
    new = create_individual(session, org_id, request.new_individual, request.actor, action="created_by_split")
    for annotation_id in wanted:
        owned[annotation_id].individual_id = new.id
        record_change(session, owned[annotation_id], "split")
    split_entry = audit.append(
        session,
        org_id,
        ENTITY,
        original.id,
        "split",
        request.actor,
        new_individual_id=new.id,
        new_code=new.catalogue_code,
        moved_annotation_ids=wanted,
        reason=request.reason,
    )
    from_entry = audit.append(
        session,
        org_id,
        ENTITY,
        new.id,
        "split_from",
        request.actor,
        individual_id=original.id,
        code=original.catalogue_code,
        moved_annotation_ids=wanted,
        reason=request.reason,
    )
    if original.representative_media_id in {owned[a].media_id for a in wanted}:
        original.representative_media_id = None
    refresh_sightings(session, original)
    refresh_sightings(session, new)
    return new, wanted, [split_entry.id, from_entry.id]
