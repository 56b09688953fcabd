"""The change sequence: written with every change to what is indexed, read by the matcher in order.

Sequence numbers come from the ``changes`` table's auto-increment key. On PostgreSQL two
transactions could take numbers 10 and 11 and commit 11 first; a reader that saw 11 would then
skip 10 forever. Writers therefore serialise on a transaction-scoped advisory lock taken before
the insert, so numbers are handed out in commit order (SQLite serialises writers by itself).

Events are resolved at read time: each carries the annotation's *current* state (upsert when it
is indexed now, delete otherwise). Replaying them in order converges to the current catalogue.
"""

from __future__ import annotations

from sqlalchemy import func, select, text
from sqlalchemy.orm import Session

from finprint.schemas.embeddings import ChangePage, EmbeddingChange
from services.catalog.adapters.db.models import Annotation, Change, Embedding
from services.catalog.internal.indexed import IndexedRow, embedding_record, indexed_query, is_indexed
from services.catalog.model_versions.generations import generations as shard_generations
from services.catalog.shared.database import inserted

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
) -> list[Change]:
    """Write the events for an annotation whose index entries may have changed: one per embedding
    (one per model version). Annotations without an embedding were never indexed and get none."""
    return [record_embedding_change(session, embedding, reason, deleted=deleted)
            for embedding in annotation.embeddings]


def record_embedding_change(session: Session, embedding: Embedding, reason: str, *,
                            deleted: bool = False) -> Change:
    """Write the event for one embedding whose index entry may have changed."""
    _lock_change_log(session)
    session.flush()  # the embedding's new state first, so is_indexed() sees it
    op = "upsert" if not deleted and is_indexed(session, embedding) else "delete"
    change = Change(org_id=embedding.org_id, embedding_id=embedding.id, op=op, reason=reason)
    inserted(session, change)
    if not deleted:
        embedding.change_seq = change.seq
    return change


def head_seq(session: Session) -> int:
    return session.scalar(select(func.max(Change.seq))) or 0


def change_page(session: Session, *, after_seq: int, limit: int, org_id: str | None = None) -> ChangePage:
    """Events after ``after_seq`` in sequence order, each resolved to its embedding's current state, and the
    model generations. These are read before the head: a swap commits after every embedding of the new
    generation, so a matcher that has applied the changes up to the head holds all of them."""
    generations = shard_generations(session, org_id)
    head = head_seq(session)
    query = select(Change).where(Change.seq > after_seq).order_by(Change.seq).limit(limit)
    if org_id:
        query = query.where(Change.org_id == org_id)
    changes = list(session.scalars(query))
    rows = session.execute(indexed_query().where(Embedding.id.in_({c.embedding_id for c in changes})))
    indexed = {embedding.id: (embedding, annotation, individual) for embedding, annotation, individual in rows.all()}
    return ChangePage(changes=[_resolve(change, indexed.get(change.embedding_id)) for change in changes],
                      head_seq=head, generations=generations)


def _resolve(change: Change, current: IndexedRow | None) -> EmbeddingChange:
    """The event as the matcher applies it: the embedding's record if it is indexed now, else a delete."""
    if current is None:
        return EmbeddingChange(seq=change.seq, op="delete", embedding_id=change.embedding_id)
    record = embedding_record(*current, seq=change.seq)
    return EmbeddingChange(seq=change.seq, op="upsert", embedding_id=change.embedding_id, record=record)
