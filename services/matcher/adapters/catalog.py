"""The catalog's internal embedding endpoints, as the matcher reads them.

``GET /v1/internal/embeddings?cursor=&limit=`` pages through every embedding (a full rebuild);
``GET /v1/internal/changes?after_seq=&limit=`` is the change log after a sequence number;
``GET /v1/internal/embeddings:summary`` counts and digests what each index should hold (reconciliation).
Schemas: finprint/schemas/embeddings.py.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from finprint.http import ServiceClient
from finprint.schemas.embeddings import ChangePage, EmbeddingPage, EmbeddingSummary


class CatalogEmbeddings:
    def __init__(self, client: ServiceClient, page_size: int) -> None:
        self.client = client
        self.page_size = page_size

    async def pages(self) -> AsyncIterator[EmbeddingPage]:
        """Every embedding, one page at a time (a page is held in memory, never the whole catalogue)."""
        cursor: str | None = None
        while True:
            params: dict[str, str | int] = {"limit": self.page_size}
            if cursor is not None:
                params["cursor"] = cursor
            page = EmbeddingPage.model_validate(
                await self.client.get_json("/v1/internal/embeddings", params=params)
            )
            yield page
            if page.next_cursor is None:
                return
            cursor = page.next_cursor

    async def changes_after(self, after_seq: int) -> ChangePage:
        body = await self.client.get_json(
            "/v1/internal/changes", params={"after_seq": after_seq, "limit": self.page_size}
        )
        return ChangePage.model_validate(body)

    async def summary(self) -> EmbeddingSummary:
        return EmbeddingSummary.model_validate(await self.client.get_json("/v1/internal/embeddings:summary"))

    async def ready(self) -> None:
        await self.client.ready()

    async def aclose(self) -> None:
        await self.client.aclose()
