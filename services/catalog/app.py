"""The catalog app factory."""

from __future__ import annotations

from collections.abc import Mapping

import httpx
from fastapi import FastAPI

from finprint.app import create_service_app
from services.catalog.routes import router
from services.catalog.settings import CatalogSettings


def create_app(
    settings: CatalogSettings | None = None,
    transports: Mapping[str, httpx.AsyncBaseTransport] | None = None,
) -> FastAPI:
    settings = settings or CatalogSettings()
    return create_service_app("catalog", settings, title="Finprint catalog", description="", routers=[router])
