"""The two curatorial repairs: merge (one animal catalogued twice) and split (two animals under one code).

Both keep the history: a merged individual is never deleted (it is marked ``merged`` and points at
the individual it became, so its catalogue code stays reserved and old identifications still name
it), every move is written to the audit log, and every moved embedding gets a change event so the
matcher follows.
"""

from __future__ import annotations

from sqlalchemy.orm import Session

from finprint.schemas.catalog import MergeRequest, SplitRequest
from services.catalog.adapters.db.models import Annotation, Individual
from services.catalog.individuals.service import (
    annotations_of,
    audit_individual,
    create_individual,
    get_individual,
    refresh_sightings,
    require_active,
)
from services.catalog.internal.change_log import record_change
from services.catalog.shared.problems import Conflict, Invalid


def _move(session: Session, annotations: list[Annotation], to: Individual, reason: str) -> list[str]:
    """Point the annotations at ``to``, each with its change event; their ids."""
    for annotation in annotations:
        annotation.individual_id = to.id
        record_change(session, annotation, reason)
    return [a.id for a in annotations]


def _require_mergeable(target: Individual, sources: list[Individual]) -> None:
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


def merge(session: Session, org_id: str, request: MergeRequest) -> tuple[Individual, list[str], list[int]]:
    """Move everything of the sources to the target; the sources stay, marked merged into it.

    Returns the target, the moved annotations' ids and the audit entries' ids."""
    target = get_individual(session, org_id, request.target_id)
    sources = [get_individual(session, org_id, source_id) for source_id in dict.fromkeys(request.source_ids)]
    _require_mergeable(target, sources)
    moved: list[str] = []
    audit_ids: list[int] = []
    for source in sources:
        source_moved = _move(session, annotations_of(session, org_id, source.id), target, "merge")
        source.status = "merged"
        source.merged_into_id = target.id
        if target.representative_media_id is None:
            target.representative_media_id = source.representative_media_id
        audit_ids.append(audit_individual(
            session, source, "merged_into", request.actor, target_id=target.id,
            target_code=target.catalogue_code, moved_annotation_ids=source_moved, reason=request.reason,
        ))
        moved += source_moved
    audit_ids.append(audit_individual(
        session, target, "merged", request.actor, source_ids=[s.id for s in sources],
        source_codes=[s.catalogue_code for s in sources], moved_annotation_ids=moved, reason=request.reason,
    ))
    refresh_sightings(session, target)
    for source in sources:
        source.first_seen = source.last_seen = None
    return target, moved, audit_ids


def _chosen_annotations(
    session: Session, original: Individual, annotation_ids: list[str]
) -> tuple[list[Annotation], list[str]]:
    """The annotations to split off (some of the individual's, not all) and their ids, in the order asked."""
    owned = {a.id: a for a in annotations_of(session, original.org_id, original.id)}
    wanted = list(dict.fromkeys(annotation_ids))
    foreign = [a for a in wanted if a not in owned]
    if foreign:
        raise Invalid(
            f"annotations {', '.join(foreign)} do not belong to individual {original.id}",
            field="annotation_ids",
        )
    if len(wanted) == len(owned):
        raise Invalid(
            "a split must leave the individual at least one annotation; to rename it, edit it",
            field="annotation_ids",
        )
    return [owned[a] for a in wanted], wanted


def split(
    session: Session, org_id: str, individual_id: str, request: SplitRequest
) -> tuple[Individual, list[str], list[int]]:
    """Move some of an individual's annotations to a new individual.

    Returns the new individual, the moved annotations' ids and the audit entries' ids."""
    original = get_individual(session, org_id, individual_id)
    require_active(original, "split")
    chosen, wanted = _chosen_annotations(session, original, request.annotation_ids)
    new = create_individual(session, org_id, request.new_individual, request.actor, action="created_by_split")
    _move(session, chosen, new, "split")
    audit_ids = [
        audit_individual(session, original, "split", request.actor, new_individual_id=new.id,
                         new_code=new.catalogue_code, moved_annotation_ids=wanted, reason=request.reason),
        audit_individual(session, new, "split_from", request.actor, individual_id=original.id,
                         code=original.catalogue_code, moved_annotation_ids=wanted, reason=request.reason),
    ]
    if original.representative_media_id in {a.media_id for a in chosen}:
        original.representative_media_id = None
    refresh_sightings(session, original)
    refresh_sightings(session, new)
    return new, wanted, audit_ids
