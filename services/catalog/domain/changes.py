"""The change sequence the matcher replays, and the embedding records it rebuilds from.

An annotation is *indexed* when it has an embedding and belongs to an active individual whose
species is a cetacean; its index key is (organisation, the individual's species, the embedding's
model version). Whenever something changes what the matcher should hold for an annotation (its
individual, a merge or split, a deletion, the individual's species), :func:`record_change`
writes a row to ``changes`` in the same transaction, so a change never exists without its event
or the other way round.

Sequence numbers come from the ``changes`` table's auto-increment key. On PostgreSQL two
transactions could take numbers 10 and 11 and commit 11 first; a reader that saw 11 would then
skip 10 forever. Writers therefore serialise on a transaction-scoped advisory lock taken before
the insert, so numbers are handed out in commit order (SQLite serialises writers by itself).

Events are resolved at read time: each carries the annotation's *current* state (upsert when it
is indexed now, delete otherwise). Replaying them in order converges to the current catalogue.
"""

from __future__ import annotations

import numpy as np
from sqlalchemy import Select, func, select, text
from sqlalchemy.orm import Session

from finprint.schemas.embeddings import (
    ChangePage,
    EmbeddingChange,
    EmbeddingPage,
    EmbeddingRecord,
    EmbeddingSummary,
    IndexSummary,
    MembershipDigest,
    encode_vector,
)
from services.catalog.adapters.db.models import Annotation, Change, Individual, Species

# Any constant works; it only has to be the same for every writer of the change log.
CHANGE_LOG_LOCK_ID = 0x66696E7072696E74  # "finprint"
_LOCK_HOLDER = "finprint_change_lock_transaction"


def _lock_change_log(session: Session) -> None:
    if session.get_bind().dialect.name != "postgresql":
        return  # SQLite serialises writers by itself
    held_by = session.info.get(_LOCK_HOLDER)
    if held_by is not None and held_by is session.get_transaction():
        return  # already taken in this transaction; it lasts until the transaction ends
    session.execute(text("SELECT pg_advisory_xact_lock(:id)"), {"id": CHANGE_LOG_LOCK_ID})
    session.info[_LOCK_HOLDER] = session.get_transaction()


def record_change(
    session: Session, annotation: Annotation, reason: str, *, deleted: bool = False
) -> Change | None:
    """Write the event for an annotation whose index entry may have changed.

    Annotations without an embedding were never indexed and get no event.
    """
    if annotation.embedding is None:
        return None
    _lock_change_log(session)
    session.flush()  # the annotation's new state first, so indexed() sees it
    op = "upsert" if not deleted and is_indexed(session, annotation) else "delete"
    change = Change(org_id=annotation.org_id, embedding_id=annotation.id, op=op, reason=reason)
    session.add(change)
    session.flush()
    if not deleted:
        annotation.change_seq = change.seq
    return change


def is_indexed(session: Session, annotation: Annotation) -> bool:
    return (
        session.scalar(
            _indexed_query().where(Annotation.id == annotation.id).with_only_columns(Annotation.id)
        )
        is not None
    )


def _indexed_query() -> Select[tuple[Annotation, Individual]]:
    return (
        select(Annotation, Individual)
        .join(Individual, Individual.id == Annotation.individual_id)
        .join(Species, Species.key == Individual.species_key)
        .where(
            Annotation.embedding.is_not(None),
            Annotation.embedding_model.is_not(None),
            Individual.status == "active",
            Species.is_cetacean.is_(True),
        )
    )


def head_seq(session: Session) -> int:
    return session.scalar(select(func.max(Change.seq))) or 0


def _record(annotation: Annotation, individual: Individual, seq: int) -> EmbeddingRecord:
    assert annotation.embedding is not None and annotation.embedding_model is not None
    return EmbeddingRecord(
        org_id=annotation.org_id,
        species_group=individual.species_key,
        model_version=annotation.embedding_model,
        embedding_id=annotation.id,
        individual_id=individual.id,
        vector=encode_vector(np.frombuffer(annotation.embedding, dtype="<f4")),
        seq=seq,
    )


def _parse_cursor(cursor: str | None) -> tuple[int | None, str]:
    """A cursor is ``<head_seq>.<last embedding id>``: every page of a rebuild reports the same head."""
    if not cursor:
        return None, ""
    head, _, after = cursor.partition(".")
    if not head.isdigit() or not after:
        raise ValueError(f"invalid cursor {cursor!r}")
    return int(head), after


def embedding_page(session: Session, *, cursor: str | None, limit: int, org_id: str | None) -> EmbeddingPage:
    """Indexed embeddings ordered by id, for a full rebuild of the matcher."""
    head, after = _parse_cursor(cursor)
    if head is None:
        head = head_seq(session)
    query = _indexed_query().where(Annotation.id > after).order_by(Annotation.id).limit(limit)
    if org_id:
        query = query.where(Annotation.org_id == org_id)
    rows = session.execute(query).all()
    records = [_record(annotation, individual, annotation.change_seq) for annotation, individual in rows]
    next_cursor = f"{head}.{records[-1].embedding_id}" if len(records) == limit else None
    return EmbeddingPage(records=records, next_cursor=next_cursor, head_seq=head)


def change_page(session: Session, *, after_seq: int, limit: int, org_id: str | None = None) -> ChangePage:
    """Events after ``after_seq`` in sequence order, each resolved to its annotation's current state."""
    head = head_seq(session)
    query = select(Change).where(Change.seq > after_seq).order_by(Change.seq).limit(limit)
    if org_id:
        query = query.where(Change.org_id == org_id)
    changes = list(session.scalars(query))
    indexed = {
        annotation.id: (annotation, individual)
        for annotation, individual in session.execute(
            _indexed_query().where(Annotation.id.in_({c.embedding_id for c in changes}))
        ).all()
    }
    events = []
    for change in changes:
        current = indexed.get(change.embedding_id)
        if current is None:
            events.append(EmbeddingChange(seq=change.seq, op="delete", embedding_id=change.embedding_id))
        else:
            events.append(
                EmbeddingChange(
                    seq=change.seq,
                    op="upsert",
                    embedding_id=change.embedding_id,
                    record=_record(*current, seq=change.seq),
                )
            )
    return ChangePage(changes=events, head_seq=head)


class CatalogueChanging(Exception):
    """Writers kept changing the indexed embeddings while a summary was read: try again shortly."""


def embedding_summary(session: Session, *, attempts: int = 5) -> EmbeddingSummary:
    """Count and digest of the indexed embeddings per index key, exactly as of ``head_seq``.

    Every write that changes what is indexed logs a change, so a summary read between two equal
    readings of the head reflects exactly that head (seq numbers are handed out in commit order).
    The matcher's reconciliation compares it with its own indexes once it has applied ``head_seq``.
    """
    query = _indexed_query().with_only_columns(
        Annotation.org_id, Individual.species_key, Annotation.embedding_model, Annotation.id, Individual.id
    )
    for _ in range(attempts):
        before = head_seq(session)
        digests: dict[tuple[str, str, str], MembershipDigest] = {}
        for org_id, species, model, embedding_id, individual_id in session.execute(
            query.execution_options(yield_per=5000)
        ):
            digests.setdefault((org_id, species, model), MembershipDigest()).add(embedding_id, individual_id)
        session.rollback()  # end the read so the head below is read afresh (PostgreSQL and SQLite)
        if head_seq(session) == before:
            indexes = [
                IndexSummary(org_id=o, species_group=g, model_version=m, count=d.count, digest=d.hexdigest())
                for (o, g, m), d in sorted(digests.items())
            ]
            return EmbeddingSummary(head_seq=before, indexes=indexes)
    raise CatalogueChanging(f"the indexed embeddings changed during {attempts} readings")
