"""Identifications: open a review, browse the queue, decide."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Select, select
from sqlalchemy.orm import Session

from finprint.schemas.catalog import DecisionRequest, IdentificationCreate, IdentificationOut
from services.catalog.adapters.db.models import Annotation, Encounter, Identification, Individual, Media, utcnow
from services.catalog.audit import service as audit
from services.catalog.encounters.annotations.service import candidates_out, get_annotation
from services.catalog.encounters.sightings.service import local_time
from services.catalog.individuals.service import active_individual, assign, create_individual
from services.catalog.shared.database import inserted
from services.catalog.shared.filters import sighting_conditions
from services.catalog.shared.scoping import get_owned, select_owned


def create_identification(session: Session, org_id: str, request: IdentificationCreate) -> Identification:
    annotation = get_annotation(session, org_id, request.annotation_id)
    for candidate in request.candidates:
        active_individual(session, org_id, candidate.individual_id)  # 404 for another org's individual
    identification = Identification(
        org_id=org_id,
        annotation_id=annotation.id,
        candidates=candidates_out(session, org_id, request.candidates),
        new_individual_probability=request.new_individual_probability,
        model_version=request.model_version,
    )
    return inserted(session, identification)


def get_identification(session: Session, org_id: str, identification_id: str) -> Identification:
    return get_owned(session, Identification, org_id, identification_id, "Identification")


def select_identifications(
    org_id: str, *, decision: str | None, annotation_id: str | None, species: str | None = None,
    since: datetime | None = None, until: datetime | None = None, location: str | None = None,
    dated: bool | None = None, decided_by: str | None = None,
) -> Select[tuple[Identification]]:
    """The organisation's identifications, oldest first, with one decision (the review queue: pending) or of
    one annotation when given; of an animal predicted as ``species``; of a photo whose sighting was in a
    period, at a place, or undated (a photo outside any encounter counts as undated); decided by someone
    (``auto-accept``: the matches confirmed without review, which a reviewer may check and revise)."""
    query = select_owned(Identification, org_id, decision=decision, annotation_id=annotation_id,
                         decided_by=decided_by)
    if species:
        query = query.where(
            Identification.annotation_id.in_(
                select(Annotation.id).where(Annotation.org_id == org_id, Annotation.species_key == species)
            )
        )
    sighted = sighting_conditions(since=since, until=until, location=location, dated=dated)
    if sighted:
        query = query.where(
            Identification.annotation_id.in_(
                select(Annotation.id)
                .join(Media, Media.id == Annotation.media_id)
                .outerjoin(Encounter, Encounter.id == Media.encounter_id)
                .where(Annotation.org_id == org_id, *sighted)
            )
        )
    return query.order_by(Identification.created_at, Identification.id)


def identification_out(identification: Identification) -> IdentificationOut:
    """The identification as the wire has it, with the sighting of its photo (date in the sighting's zone,
    place): what a reviewer knows the photo by."""
    out = IdentificationOut.model_validate(identification)
    encounter = identification.annotation.media.encounter
    if encounter is None:
        return out
    return out.model_copy(update={"encounter_id": encounter.id, "occurred_at": local_time(encounter),
                                  "location_name": encounter.location_name})


def _decided_individual(session: Session, org_id: str, request: DecisionRequest) -> Individual | None:
    """The individual the decision assigns the annotation to: the confirmed one, a new one, or none."""
    if request.decision == "confirmed":
        assert request.individual_id is not None
        return active_individual(session, org_id, request.individual_id)
    if request.decision == "new_individual":
        assert request.new_individual is not None
        return create_individual(session, org_id, request.new_individual, request.decided_by)
    return None


def decide(session: Session, org_id: str, identification_id: str, request: DecisionRequest) -> Identification:
    """Record the reviewer's decision and apply it to the annotation (may be revised later)."""
    identification = get_identification(session, org_id, identification_id)
    annotation = get_annotation(session, org_id, identification.annotation_id)
    previous = {"decision": identification.decision, "individual_id": identification.individual_id}
    individual = _decided_individual(session, org_id, request)
    assign(session, annotation, individual, f"identification_{request.decision}", request.decided_by)
    identification.decision = request.decision
    identification.individual_id = individual.id if individual else None
    identification.decided_by = request.decided_by
    identification.decided_at = utcnow()
    audit.append(session, org_id, "identification", identification.id, "decided", request.decided_by,
                 previous=previous, decision=request.decision, individual_id=identification.individual_id)
    session.flush()
    return identification
