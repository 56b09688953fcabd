"""Fixtures of the matcher tests: vectors shaped like embeddings, a running matcher app."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
import numpy as np
import pytest
from catalog_double import CatalogDouble

from services.matcher.app import create_app
from services.matcher.settings import MatcherSettings

MODEL_THRESHOLD = 0.5
HUMPBACK_THRESHOLD = 0.6


def unit(vector: np.ndarray) -> np.ndarray:
    return (vector / np.linalg.norm(vector)).astype(np.float32)


def near(center: np.ndarray, similarity: float, rng: np.random.Generator) -> np.ndarray:
    """A unit vector whose cosine similarity to the unit ``center`` is exactly ``similarity``."""
    noise = rng.standard_normal(center.shape[0]).astype(np.float32)
    noise -= noise.dot(center) * center
    return unit(similarity * center + np.sqrt(1 - similarity**2) * unit(noise))


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(7)


@pytest.fixture
def model_repository(tmp_path: Path) -> Path:
    """A model repository holding only what the matcher reads: the embedder's finprint.json."""
    folder = tmp_path / "model_repository" / "finprint_embedder"
    folder.mkdir(parents=True)
    (folder / "finprint.json").write_text(
        json.dumps(
            {
                "new_individual_threshold": MODEL_THRESHOLD,
                "new_individual_thresholds_by_species": {"humpback_whale": HUMPBACK_THRESHOLD},
            }
        )
    )
    return folder.parent


@pytest.fixture
def settings(tmp_path: Path, model_repository: Path) -> MatcherSettings:
    return MatcherSettings(
        catalog_url="http://catalog",
        catalog_page_size=7,  # several pages even for small catalogues
        object_store="local",
        local_object_dir=tmp_path / "objects",
        model_repository=model_repository,
        sync_interval_s=3600,  # tests sync explicitly (POST /v1/sync)
        snapshot_interval_s=3600,
        snapshot_on_shutdown=False,  # a stop in these tests is a kill unless a test says otherwise
    )


@pytest.fixture
def catalog() -> CatalogDouble:
    return CatalogDouble()


@asynccontextmanager
async def running_matcher(
    settings: MatcherSettings, catalog: CatalogDouble
) -> AsyncIterator[httpx.AsyncClient]:
    """The matcher app with its lifespan running, once its initial load is done."""
    app = create_app(settings, transports={"catalog": httpx.ASGITransport(app=catalog.app())})
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://matcher") as client:
            for _ in range(500):
                if (await client.get("/readyz")).status_code == 200:
                    break
                await asyncio.sleep(0.02)
            else:
                raise AssertionError(f"matcher never ready: {(await client.get('/readyz')).json()}")
            yield client
