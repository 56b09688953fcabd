"""Routes of the detector service."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter(prefix="/v1")
