"""The embedder app factory."""

from __future__ import annotations

from collections.abc import Mapping

import httpx
from fastapi import FastAPI

from finprint.app import create_service_app
from services.embedder.routes import router
from services.embedder.settings import EmbedderSettings


def create_app(
    settings: EmbedderSettings | None = None,
    transports: Mapping[str, httpx.AsyncBaseTransport] | None = None,
) -> FastAPI:
    settings = settings or EmbedderSettings()
    return create_service_app("embedder", settings, title="Finprint embedder", description="", routers=[router])
