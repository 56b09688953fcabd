"""The indexed embeddings: pages of them for a full rebuild of the matcher, and a summary per index key
for its reconciliation."""

from __future__ import annotations

from sqlalchemy.orm import Session

from finprint.schemas.embeddings import EmbeddingPage, EmbeddingSummary, IndexSummary, MembershipDigest
from services.catalog.adapters.db.models import Embedding, Individual
from services.catalog.internal.change_log import head_seq
from services.catalog.internal.indexed import embedding_record, indexed_query


class CatalogueChanging(Exception):
    """Writers kept changing the indexed embeddings while a summary was read: try again shortly."""


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
    query = indexed_query().where(Embedding.id > after).order_by(Embedding.id).limit(limit)
    if org_id:
        query = query.where(Embedding.org_id == org_id)
    rows = session.execute(query).all()
    records = [embedding_record(embedding, annotation, individual, embedding.change_seq)
               for embedding, annotation, individual in rows]
    next_cursor = f"{head}.{records[-1].embedding_id}" if len(records) == limit else None
    return EmbeddingPage(records=records, next_cursor=next_cursor, head_seq=head)


def embedding_summary(session: Session, *, attempts: int = 5) -> EmbeddingSummary:
    """Count and digest of the indexed embeddings per index key, exactly as of ``head_seq``.

    Every write that changes what is indexed logs a change, so a summary read between two equal
    readings of the head reflects exactly that head (seq numbers are handed out in commit order).
    The matcher's reconciliation compares it with its own indexes once it has applied ``head_seq``.
    """
    for _ in range(attempts):
        before = head_seq(session)
        digests = _membership_digests(session)
        session.rollback()  # end the read so the head below is read afresh (PostgreSQL and SQLite)
        if head_seq(session) == before:
            indexes = [
                IndexSummary(org_id=o, species_group=g, model_version=m, count=d.count, digest=d.hexdigest())
                for (o, g, m), d in sorted(digests.items())
            ]
            return EmbeddingSummary(head_seq=before, indexes=indexes)
    raise CatalogueChanging(f"the indexed embeddings changed during {attempts} readings")


def _membership_digests(session: Session) -> dict[tuple[str, str, str], MembershipDigest]:
    """Per (organisation, species, model version): the digest of (embedding, individual) memberships."""
    query = indexed_query().with_only_columns(
        Embedding.org_id, Individual.species_key, Embedding.model_version, Embedding.id, Individual.id
    )
    digests: dict[tuple[str, str, str], MembershipDigest] = {}
    for org_id, species, model, embedding_id, individual_id in session.execute(
        query.execution_options(yield_per=5000)
    ):
        digests.setdefault((org_id, species, model), MembershipDigest()).add(embedding_id, individual_id)
    return digests
