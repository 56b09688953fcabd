"""Public routes of the gateway (API v1)."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter(prefix="/v1")
