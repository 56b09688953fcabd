"""The detector app factory."""

from __future__ import annotations

from collections.abc import Mapping

import httpx
from fastapi import FastAPI

from finprint.app import create_service_app
from services.detector.routes import router
from services.detector.settings import DetectorSettings


def create_app(
    settings: DetectorSettings | None = None,
    transports: Mapping[str, httpx.AsyncBaseTransport] | None = None,
) -> FastAPI:
    settings = settings or DetectorSettings()
    return create_service_app("detector", settings, title="Finprint detector", description="", routers=[router])
