"""The embedder app factory."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager

import httpx
from fastapi import FastAPI

from finprint.app import create_service_app
from finprint.metrics import ServiceMetrics
from services.embedder.dependencies import EmbedderRuntime
from services.embedder.routes import router
from services.embedder.settings import EmbedderSettings

DESCRIPTION = """Species probabilities and the L2-normalised re-identification embedding of each crop,
with the model name and version that produced them. The model runs in process (onnxruntime, CUDA
when available) or on a Triton Inference Server, chosen by the `backend` setting."""


def create_app(
    settings: EmbedderSettings | None = None,
    transports: Mapping[str, httpx.AsyncBaseTransport] | None = None,
) -> FastAPI:
    settings = settings or EmbedderSettings()
    metrics = ServiceMetrics("embedder")
    runtime = EmbedderRuntime(settings, metrics)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        await runtime.start()
        try:
            yield
        finally:
            await runtime.close()

    app = create_service_app(
        "embedder", settings, title="Finprint embedder", description=DESCRIPTION, routers=[router],
        lifespan=lifespan, metrics=metrics,
    )
    app.state.embedder = runtime
    app.state.service.readiness_checks["model"] = runtime.check_ready
    return app
