"""The public API v1, one module per resource."""

from fastapi import APIRouter

from services.gateway.routes import auth, identify


def public_routers() -> list[APIRouter]:
    return [auth.router, identify.router]
