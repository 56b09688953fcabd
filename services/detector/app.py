"""The detector app factory."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager

import httpx
from fastapi import FastAPI

from finprint.app import create_service_app
from finprint.metrics import ServiceMetrics
from services.detector.dependencies import DetectorRuntime
from services.detector.routes import router
from services.detector.settings import DetectorSettings

DESCRIPTION = """Finds the cetacean in a photo: its box, its view (fluke, dorsal fin, head, other) and
the detection score, or a clear "no cetacean" answer. Photos are checked (type sniffed from the
bytes, size and pixel limits) before anything is decoded."""


def create_app(
    settings: DetectorSettings | None = None,
    transports: Mapping[str, httpx.AsyncBaseTransport] | None = None,
) -> FastAPI:
    settings = settings or DetectorSettings()
    metrics = ServiceMetrics("detector")
    runtime = DetectorRuntime(settings, metrics)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        await runtime.load()
        try:
            yield
        finally:
            runtime.close()

    app = create_service_app(
        "detector", settings, title="Finprint detector", description=DESCRIPTION, routers=[router],
        lifespan=lifespan, metrics=metrics,
    )
    app.state.detector = runtime
    app.state.service.readiness_checks["model"] = runtime.check_ready
    return app
