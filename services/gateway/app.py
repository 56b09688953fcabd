"""The gateway app factory."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from contextlib import AsyncExitStack, asynccontextmanager

import httpx
from fastapi import FastAPI

from finprint.app import create_service_app
from finprint.metrics import ServiceMetrics
from services.gateway.adapters.catalog import CatalogClient
from services.gateway.adapters.peers import Peers
from services.gateway.adapters.pipeline import Pipeline
from services.gateway.adapters.ratelimit import RateLimiter
from services.gateway.adapters.tokens import TokenIssuer
from services.gateway.application.enrolment import EnrolmentService
from services.gateway.dependencies import GatewayContext
from services.gateway.ingest.runner import background_worker
from services.gateway.routes import public_routers
from services.gateway.settings import GatewaySettings


def create_app(
    settings: GatewaySettings | None = None,
    transports: Mapping[str, httpx.AsyncBaseTransport] | None = None,
) -> FastAPI:
    settings = settings or GatewaySettings()
    peers = Peers.from_settings(settings, transports)
    metrics = ServiceMetrics("gateway")
    decode_seconds = metrics.histogram(
        "finprint_gateway_decode_seconds", "Decoding a photo into the models' input (decode_once), seconds."
    )
    secret = settings.jwt_secret.get_secret_value() if settings.jwt_secret else None
    pipeline = Pipeline.for_peers(peers, settings, decode_seconds)
    catalog = CatalogClient(peers.catalog)
    context = GatewayContext(
        settings=settings,
        peers=peers,
        pipeline=pipeline,
        catalog=catalog,
        enrolment=EnrolmentService(pipeline, catalog, settings.encounter_photo_concurrency),
        tokens=TokenIssuer(secret, settings.access_token_ttl_s, settings.refresh_token_ttl_s) if secret else None,
        limiter=RateLimiter(settings.rate_limit_storage_uri, settings.rate_limit, settings.identify_rate_limit),
        api_key_cache={},
    )

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with AsyncExitStack() as stack:
            if settings.embedded_worker:
                await stack.enter_async_context(background_worker(settings, transports, app.state.service.metrics))
            yield
        await peers.aclose()

    app = create_service_app(
        "gateway",
        settings,
        title="Finprint API",
        description="Identify whales and dolphins from photos and keep the catalogue of individuals. "
        "Authenticate with `X-API-Key` (partners, scripts) or `Authorization: Bearer <token>` from "
        "`POST /v1/auth/token` (users). Errors are `application/problem+json` (RFC 9457).",
        routers=public_routers(),
        lifespan=lifespan,
        metrics=metrics,
    )
    app.state.gateway = context
    # The gateway is ready only when all five services are: each peer's own /readyz answers 200.
    for name, client in peers.all().items():
        app.state.service.readiness_checks[name] = client.ready
    return app
