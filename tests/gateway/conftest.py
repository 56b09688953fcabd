"""The five apps in process (the embedded default's wiring) on a temporary data directory."""

from __future__ import annotations

import asyncio
import secrets

from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI

from finprint.embedded import BUILD_ORDER, embedded_environment
from finprint.services import app_factory
from finprint_testing.postgres import PostgresServer
from finprint_testing.s3 import S3Server

Wire = Callable[[str, httpx.AsyncBaseTransport], httpx.AsyncBaseTransport]
"""What stands between a service and its callers: (service name, its in-process transport) -> a transport."""


@dataclass
class Embedded:
    gateway: httpx.AsyncClient
    catalog: httpx.AsyncClient
    apps: dict[str, FastAPI] = field(default_factory=dict)

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


def build_apps(wire: Wire | None = None) -> dict[str, FastAPI]:
    """The embedded default's five apps, each reaching the ones built before it in process, through
    ``wire`` when given (a test watching or slowing what the gateway sends)."""
    apps: dict[str, FastAPI] = {}
    transports: dict[str, httpx.AsyncBaseTransport] = {}
    for name in BUILD_ORDER:
        apps[name] = app_factory(name)(None, transports)
        transport = httpx.ASGITransport(app=apps[name])
        transports[name] = wire(name, transport) if wire else transport
    return apps


@asynccontextmanager
async def start_embedded(wire: Wire | None = None) -> AsyncIterator[Embedded]:
    """The apps built from the environment as it is now (a test may set more settings first)."""
    apps = build_apps(wire)
    async with AsyncExitStack() as stack:
        for name in BUILD_ORDER:
            await stack.enter_async_context(apps[name].router.lifespan_context(apps[name]))
        clients = {
            name: await stack.enter_async_context(
                httpx.AsyncClient(transport=httpx.ASGITransport(app=apps[name]), base_url=f"http://{name}"))
            for name in ("gateway", "catalog")
        }
        yield Embedded(clients["gateway"], clients["catalog"], apps)


@asynccontextmanager
async def embedded_on_postgres(monkeypatch: pytest.MonkeyPatch, postgres_server: PostgresServer, s3_server: S3Server,
                               wire: Wire | None = None) -> AsyncIterator[Embedded]:
    """The five apps in process, the catalog on a fresh PostgreSQL database and both stores on the S3 server."""
    with postgres_server.fresh_database() as database_url:
        monkeypatch.setenv("FINPRINT_CATALOG_DATABASE_URL", database_url)
        storage = {"OBJECT_STORE": "s3", "S3_ENDPOINT": s3_server.endpoint, "S3_ACCESS_KEY": s3_server.access_key,
                   "S3_SECRET_KEY": s3_server.secret_key, "S3_BUCKET": f"gateway-{secrets.token_hex(4)}",
                   "S3_SECURE": "false"}
        for service in ("CATALOG", "MATCHER"):
            for key, value in storage.items():
                monkeypatch.setenv(f"FINPRINT_{service}_{key}", value)
        async with start_embedded(wire) as started:
            for _ in range(300):  # the matcher's initial load, before the first enrolment
                if (await started.gateway.get("/readyz")).status_code == 200:
                    break
                await asyncio.sleep(0.1)
            yield started


@pytest.fixture
async def on_postgres(embedded_env: Path, monkeypatch: pytest.MonkeyPatch, postgres_server: PostgresServer,
                      s3_server: S3Server) -> AsyncIterator[Embedded]:
    async with embedded_on_postgres(monkeypatch, postgres_server, s3_server) as started:
        yield started
