"""Possible duplicates: pairs of individuals a scan found so close they may be one animal, filed into
the review queue; a reviewer merges them (as ``individuals:merge``) or dismisses them, once: a
decided pair is not filed again by later scans."""

from __future__ import annotations

from sqlalchemy import Select, select
from sqlalchemy.orm import Session

from finprint.schemas.catalog import DuplicateDecision, DuplicatesFile, DuplicatesFiled, MergeRequest
from services.catalog.adapters.db.models import DuplicatePair, Individual, utcnow
from services.catalog.audit import service as audit
from services.catalog.encounters.annotations.service import annotations_of_embeddings
from services.catalog.individuals.curation import merge
from services.catalog.shared.problems import Conflict, Invalid
from services.catalog.shared.scoping import get_owned, select_owned


def file_pairs(session: Session, org_id: str, request: DuplicatesFile) -> DuplicatesFiled:
    ids = {i for p in request.pairs for i in (p.individual_a_id, p.individual_b_id)}
    individuals = {i.id: i for i in session.scalars(
        select(Individual).where(Individual.org_id == org_id, Individual.id.in_(ids)))}
    existing = {(d.individual_a_id, d.individual_b_id): d for d in session.scalars(
        select(DuplicatePair).where(DuplicatePair.org_id == org_id, DuplicatePair.individual_a_id.in_(ids)))}
    counts = {"filed": 0, "updated": 0, "unchanged": 0, "skipped": 0}
    annotation_of = annotations_of_embeddings(session, org_id, {p for pair in request.pairs
                                                       for p in (pair.annotation_a_id, pair.annotation_b_id) if p})
    for pair in request.pairs:
        (a, photo_a), (b, photo_b) = sorted([(pair.individual_a_id, annotation_of.get(pair.annotation_a_id or "")),
                                             (pair.individual_b_id, annotation_of.get(pair.annotation_b_id or ""))])
        found = [individuals.get(a), individuals.get(b)]
        if a == b or any(i is None or i.status != "active" or i.species_key != request.species for i in found):
            counts["skipped"] += 1
            continue
        row = existing.get((a, b))
        if row is None:
            row = existing[(a, b)] = DuplicatePair(
                org_id=org_id, species_key=request.species, individual_a_id=a, individual_b_id=b, score=pair.score,
                model_version=request.model_version, annotation_a_id=photo_a, annotation_b_id=photo_b)
            session.add(row)
            counts["filed"] += 1
        elif row.status == "pending":
            row.score, row.model_version = pair.score, request.model_version
            row.annotation_a_id, row.annotation_b_id = photo_a, photo_b
            counts["updated"] += 1
        else:
            counts["unchanged"] += 1
    audit.append(session, org_id, "organisation", org_id, "duplicates_filed", request.filed_by,
                 species=request.species, model_version=request.model_version, **counts)
    session.flush()
    return DuplicatesFiled(**counts)


def select_pairs(org_id: str, *, status: str | None, species: str | None) -> Select[tuple[DuplicatePair]]:
    """The organisation's pairs, closest first; of one status (the queue: pending) and species when given."""
    query = select_owned(DuplicatePair, org_id, status=status, species_key=species)
    return query.order_by(DuplicatePair.score.desc(), DuplicatePair.id)


def get_pair(session: Session, org_id: str, pair_id: str) -> DuplicatePair:
    return get_owned(session, DuplicatePair, org_id, pair_id, "Duplicate pair")


def decide(session: Session, org_id: str, pair_id: str, request: DuplicateDecision) -> DuplicatePair:
    pair = get_pair(session, org_id, pair_id)
    if pair.status == "merged":
        raise Conflict(f"duplicate pair {pair_id} was merged already")
    previous = pair.status
    if request.decision == "merged":
        keep = request.keep or pair.individual_a_id
        if keep not in (pair.individual_a_id, pair.individual_b_id):
            raise Invalid("keep must be one of the pair's two individuals", field="keep")
        other = pair.individual_b_id if keep == pair.individual_a_id else pair.individual_a_id
        merge(session, org_id, MergeRequest(target_id=keep, source_ids=[other], actor=request.decided_by,
                                            reason=request.reason or f"possible duplicate {pair.id}"))
    pair.status = request.decision
    pair.decided_by = request.decided_by
    pair.decided_at = utcnow()
    audit.append(session, org_id, "duplicate_pair", pair.id, "decided", request.decided_by, previous=previous,
                 decision=request.decision, individual_a_id=pair.individual_a_id,
                 individual_b_id=pair.individual_b_id, keep=request.keep, reason=request.reason)
    session.flush()
    return pair
