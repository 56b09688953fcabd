"""Routes of the embedder service."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter(prefix="/v1")
