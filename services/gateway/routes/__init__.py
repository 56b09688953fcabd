"""The public API v1, one module per area."""

from fastapi import APIRouter

from services.gateway.routes import admin, auth, catalogue, identify, ingest, models, web


def public_routers() -> list[APIRouter]:
    return [auth.router, identify.router, catalogue.router, admin.router, ingest.router, models.router, web.router]
