"""The gateway app factory."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager

import httpx
from fastapi import FastAPI

from finprint.app import create_service_app
from services.gateway.adapters.peers import Peers
from services.gateway.routes import router
from services.gateway.settings import GatewaySettings


def create_app(
    settings: GatewaySettings | None = None,
    transports: Mapping[str, httpx.AsyncBaseTransport] | None = None,
) -> FastAPI:
    settings = settings or GatewaySettings()
    peers = Peers.from_settings(settings, transports)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        yield
        await peers.aclose()

    app = create_service_app(
        "gateway",
        settings,
        title="Finprint API",
        description="Identify whales and dolphins from photos and keep the catalogue of individuals.",
        routers=[router],
        lifespan=lifespan,
    )
    app.state.peers = peers
    # The gateway is ready only when all five services are: each peer's own /readyz answers 200.
    for name, client in peers.all().items():
        app.state.service.readiness_checks[name] = client.ready
    return app
