"""The matcher app factory."""

from __future__ import annotations

from collections.abc import Mapping

import httpx
from fastapi import FastAPI

from finprint.app import create_service_app
from services.matcher.routes import router
from services.matcher.settings import MatcherSettings


def create_app(
    settings: MatcherSettings | None = None,
    transports: Mapping[str, httpx.AsyncBaseTransport] | None = None,
) -> FastAPI:
    settings = settings or MatcherSettings()
    return create_service_app("matcher", settings, title="Finprint matcher", description="", routers=[router])
