"""Routes the matcher reads: embedding pages and their summary, and the change sequence."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from finprint.problems import Problem
from finprint.schemas.catalog import SEQ_MAX
from finprint.schemas.embeddings import ChangePage, EmbeddingPage, EmbeddingSummary
from services.catalog.internal import change_log, embeddings
from services.catalog.shared.dependencies import CatalogContext, DbSession
from services.catalog.shared.problems import Invalid

router = APIRouter(prefix="/v1/internal", tags=["internal (matcher)"])
BatchLimit = Annotated[int, Query(ge=1, le=5000)]
AfterSeq = Annotated[int, Query(ge=0, le=SEQ_MAX)]


@router.get("/embeddings", summary="Indexed embeddings, for a full rebuild")
def embedding_page(db: DbSession, cursor: str | None = None, limit: BatchLimit = 1000,
                   org_id: str | None = None) -> EmbeddingPage:
    try:
        return embeddings.embedding_page(db, cursor=cursor, limit=limit, org_id=org_id)
    except ValueError as exc:
        raise Invalid(str(exc), field="cursor") from None


@router.get("/embeddings:summary",
            summary="Count and digest of the indexed embeddings per index key (the matcher's reconciliation)")
def embedding_summary(db: DbSession) -> EmbeddingSummary:
    try:
        return embeddings.embedding_summary(db)
    except embeddings.CatalogueChanging as exc:
        raise Problem(409, f"{exc}; retry shortly.", slug="catalogue-changing") from None


@router.get("/changes", summary="Change events after a sequence number")
def change_page(
    context: CatalogContext, db: DbSession, after_seq: AfterSeq = 0, limit: BatchLimit = 1000,
    org_id: str | None = None,
) -> ChangePage:
    page = change_log.change_page(db, after_seq=after_seq, limit=limit, org_id=org_id)
    context.metrics.change_events.inc(len(page.changes))
    return page
