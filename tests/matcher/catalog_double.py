"""The catalog's two internal embedding endpoints over an in-memory list, for the matcher's tests.

A stand-in for a PEER service, used only because the real catalog (services/catalog) was being
built in parallel and did not serve /v1/internal/embeddings and /v1/internal/changes when these
tests were written. It implements exactly the contract in finprint/schemas/embeddings.py (pages
ordered by embedding_id with an opaque cursor, a change log with increasing seq). The same
durability properties are checked against the real catalog app in test_with_catalog.py; the
tests that still use this double should move to the real catalog (SQLite, in process) as its
public API settles.
"""

from __future__ import annotations

import numpy as np
from fastapi import FastAPI, Query

from finprint.schemas.embeddings import (
    ChangePage,
    EmbeddingChange,
    EmbeddingPage,
    EmbeddingRecord,
    encode_vector,
)


class CatalogDouble:
    def __init__(self) -> None:
        self.records: dict[str, EmbeddingRecord] = {}
        self.log: list[EmbeddingChange] = []
        self.seq = 0

    def upsert(
        self,
        embedding_id: str,
        individual_id: str | None,
        vector: np.ndarray,
        *,
        org_id: str = "org-a",
        species_group: str = "humpback_whale",
        model_version: str = "finprint_embedder:1",
    ) -> EmbeddingRecord:
        self.seq += 1
        record = EmbeddingRecord(
            org_id=org_id,
            species_group=species_group,
            model_version=model_version,
            embedding_id=embedding_id,
            individual_id=individual_id,
            vector=encode_vector(vector),
            seq=self.seq,
        )
        self.records[embedding_id] = record
        self.log.append(EmbeddingChange(seq=self.seq, op="upsert", embedding_id=embedding_id, record=record))
        return record

    def delete(self, embedding_id: str) -> None:
        self.seq += 1
        self.records.pop(embedding_id, None)
        self.log.append(EmbeddingChange(seq=self.seq, op="delete", embedding_id=embedding_id))

    def app(self) -> FastAPI:
        app = FastAPI()

        @app.get("/readyz")
        async def readyz() -> dict[str, bool]:
            return {"ready": True}

        @app.get("/v1/internal/embeddings")
        async def embeddings(cursor: str | None = None, limit: int = Query(500, ge=1)) -> EmbeddingPage:
            ordered = sorted(self.records)
            after = [e for e in ordered if cursor is None or e > cursor][:limit]
            more = bool(after) and after[-1] != ordered[-1]
            return EmbeddingPage(
                records=[self.records[e] for e in after],
                next_cursor=after[-1] if more else None,
                head_seq=self.seq,
            )

        @app.get("/v1/internal/changes")
        async def changes(after_seq: int = 0, limit: int = Query(500, ge=1)) -> ChangePage:
            return ChangePage(changes=[c for c in self.log if c.seq > after_seq][:limit], head_seq=self.seq)

        return app
