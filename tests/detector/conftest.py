"""Fixtures of the detector tests: the service on the repository's detector model."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path

import httpx
import pytest

from services.detector.app import create_app
from services.detector.settings import DetectorSettings

DetectorFactory = Callable[..., AbstractAsyncContextManager[httpx.AsyncClient]]


@pytest.fixture
def start_detector() -> DetectorFactory:
    """``async with start_detector(**settings) as client``: the detector app, started, in process."""

    @asynccontextmanager
    async def start(**settings: object) -> AsyncIterator[httpx.AsyncClient]:
        app = create_app(DetectorSettings(**settings))
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
            async with httpx.AsyncClient(transport=transport, base_url="http://detector", timeout=60) as client:
                yield client

    return start


@pytest.fixture
async def detector(start_detector: DetectorFactory) -> AsyncIterator[httpx.AsyncClient]:
    async with start_detector() as client:
        yield client


@pytest.fixture(scope="session")
def fluke_photos(shared_data: Path) -> list[Path]:
    """Full-size humpback fluke photos (Flukebook)."""
    return sorted((shared_data / "curvrank_examples" / "images").glob("fluke_*"))
