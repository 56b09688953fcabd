"""The ingest queue's calls to the catalog (claim, renew, complete, content, duplicates)."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from finprint.http import ServiceClient
from finprint.problems import Problem
from services.gateway.adapters.catalog import segment


class IngestQueue:
    def __init__(self, catalog: ServiceClient) -> None:
        self.catalog = catalog

    async def claim(self, worker_id: str, limit: int, lease_s: float, max_attempts: int,
                    job_id: str | None) -> dict[str, Any]:
        body = {"worker_id": worker_id, "limit": limit, "lease_s": lease_s, "max_attempts": max_attempts,
                "job_id": job_id}
        # Not retried: a lost answer's items come back when their lease expires.
        return await self.catalog.post_json("/v1/internal/ingest-items:claim", body, idempotent=False)

    async def renew(self, worker_id: str, item_ids: list[str], lease_s: float) -> list[str]:
        body = {"worker_id": worker_id, "item_ids": item_ids, "lease_s": lease_s}
        return (await self.catalog.post_json("/v1/internal/ingest-items:renew", body, idempotent=True))["renewed"]

    async def release(self, worker_id: str, item_ids: list[str], reason: str) -> list[str]:
        """Give items back untried (a dependency failed before anything was stored): the attempt is not counted."""
        body = {"worker_id": worker_id, "item_ids": item_ids, "reason": reason[:2000]}
        return (await self.catalog.post_json("/v1/internal/ingest-items:release", body, idempotent=True))["released"]

    async def complete(self, item_id: str, worker_id: str, status: str, *, media_id: str | None = None,
                       result: dict[str, Any] | None = None, error: str | None = None) -> None:
        body = {"worker_id": worker_id, "status": status, "media_id": media_id, "result": result or {},
                "error": error}
        await self.catalog.post_json(f"/v1/internal/ingest-items/{segment(item_id)}:complete", body, idempotent=True)

    async def staged_content(self, org_id: str, job_id: str, item_id: str) -> bytes:
        response = await self.catalog.request(
            "GET", f"/v1/orgs/{org_id}/ingest-jobs/{segment(job_id)}/items/{segment(item_id)}/content")
        return response.content

    async def stage_content(self, org_id: str, job_id: str, item_key: str, data: bytes, content_type: str) -> None:
        await self.catalog.request(
            "PUT", f"/v1/orgs/{org_id}/ingest-jobs/{segment(job_id)}/content/{quote(item_key)}", content=data,
            headers={"Content-Type": content_type})

    async def media_by_sha256(self, org_id: str, sha256: str) -> dict[str, Any] | None:
        try:
            return await self.catalog.get_json(f"/v1/orgs/{org_id}/media-by-sha256/{sha256}")
        except Problem as problem:
            if problem.status == 404:
                return None
            raise

    async def species_keys(self) -> set[str]:
        return {s["key"] for s in await self.catalog.get_json("/v1/species")}

    async def create_job(self, org_id: str, body: dict[str, Any], idempotency_key: str | None) -> dict[str, Any]:
        headers = {"Idempotency-Key": idempotency_key} if idempotency_key else {}
        return await self.catalog.post_json(f"/v1/orgs/{org_id}/ingest-jobs", body, headers=headers,
                                            idempotent=idempotency_key is not None)

    async def add_items(self, org_id: str, job_id: str, items: list[dict[str, Any]]) -> None:
        for start in range(0, len(items), 5000):
            await self.catalog.post_json(f"/v1/orgs/{org_id}/ingest-jobs/{segment(job_id)}/items:add",
                                         {"items": items[start:start + 5000]}, idempotent=True)

    async def start(self, org_id: str, job_id: str) -> dict[str, Any]:
        return await self.catalog.post_json(f"/v1/orgs/{org_id}/ingest-jobs/{segment(job_id)}:start", {}, idempotent=True)

    async def job(self, org_id: str, job_id: str) -> dict[str, Any]:
        return await self.catalog.get_json(f"/v1/orgs/{org_id}/ingest-jobs/{segment(job_id)}")

    async def items(self, org_id: str, job_id: str, *, status: str | None, offset: int, limit: int) -> dict[str, Any]:
        params: dict[str, Any] = {"offset": offset, "limit": limit}
        if status:
            params["status"] = status
        return await self.catalog.get_json(f"/v1/orgs/{org_id}/ingest-jobs/{segment(job_id)}/items", params=params)
