"""The five apps in process (the embedded default's wiring) on a temporary data directory."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from finprint.embedded import BUILD_ORDER, build_embedded_apps, embedded_environment


@dataclass
class Embedded:
    gateway: httpx.AsyncClient
    catalog: httpx.AsyncClient

    async def org_with_keys(self, slug: str) -> tuple[str, dict[str, str]]:
        """A new organisation and one API key per role."""
        org = (await self.catalog.post("/v1/orgs", json={"slug": slug, "name": slug})).json()
        keys = {}
        for role in ("viewer", "contributor", "reviewer", "admin"):
            created = await self.catalog.post(f"/v1/orgs/{org['id']}/api-keys", json={"name": role, "role": role})
            keys[role] = created.json()["key"]
        return org["id"], keys


@pytest.fixture
def embedded_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    for key, value in embedded_environment(tmp_path).items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("FINPRINT_GATEWAY_JWT_SECRET", "test-secret-" + "x" * 32)
    yield tmp_path


@pytest.fixture
async def embedded(embedded_env: Path) -> AsyncIterator[Embedded]:
    async with start_embedded() as started:
        yield started


@asynccontextmanager
async def start_embedded() -> AsyncIterator[Embedded]:
    """The apps built from the environment as it is now (a test may set more settings first)."""
    apps = build_embedded_apps()
    async with AsyncExitStack() as stack:
        for name in BUILD_ORDER:
            await stack.enter_async_context(apps[name].router.lifespan_context(apps[name]))
        clients = {
            name: await stack.enter_async_context(
                httpx.AsyncClient(transport=httpx.ASGITransport(app=apps[name]), base_url=f"http://{name}"))
            for name in ("gateway", "catalog")
        }
        yield Embedded(clients["gateway"], clients["catalog"])
