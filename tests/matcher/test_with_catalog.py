"""The matcher against the REAL catalog app (SQLite, local object store, in process): photos
enrolled in the catalogue become searchable, and a restart from a snapshot equals a rebuild."""

from __future__ import annotations

import asyncio
import io
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
import numpy as np
import pytest
from conftest import near, unit
from PIL import Image

from finprint.schemas.embeddings import encode_vector
from services.catalog.app import create_app as create_catalog_app
from services.catalog.settings import CatalogSettings
from services.matcher.app import create_app as create_matcher_app
from services.matcher.settings import MatcherSettings

MODEL = "finprint_embedder:1"


def jpeg(seed: int) -> bytes:
    pixels = np.random.default_rng(seed).integers(0, 255, (48, 64, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, "JPEG", quality=90)
    return buffer.getvalue()


class Catalogue:
    """Enough of the catalog's public API to add identified photos with embeddings."""

    def __init__(self, client: httpx.AsyncClient) -> None:
        self.client = client
        self.org_id = ""
        self._photos = 0

    async def create_org(self) -> None:
        response = await self.client.post("/v1/orgs", json={"slug": "matcher-lab", "name": "Matcher lab"})
        assert response.status_code == 201, response.text
        self.org_id = response.json()["id"]

    async def individual(self, code: str) -> str:
        response = await self.client.post(
            f"/v1/orgs/{self.org_id}/individuals", json={"catalogue_code": code, "species": "humpback_whale"}
        )
        assert response.status_code == 201, response.text
        return response.json()["id"]

    async def add_photo(self, individual_id: str, vector: np.ndarray) -> str:
        self._photos += 1
        media = await self.client.post(
            f"/v1/orgs/{self.org_id}/media", files={"file": ("fluke.jpg", jpeg(self._photos), "image/jpeg")}
        )
        assert media.status_code in (200, 201), media.text
        response = await self.client.post(
            f"/v1/orgs/{self.org_id}/annotations",
            json={
                "media_id": media.json()["media"]["id"],
                "box": {"x": 2, "y": 2, "width": 40, "height": 30},
                "view": "fluke",
                "species": "humpback_whale",
                "individual_id": individual_id,
                "embedding": {"model_version": MODEL, "vector": encode_vector(vector)},
            },
        )
        assert response.status_code == 201, response.text
        return response.json()["id"]

    async def merge(self, target_id: str, source_id: str) -> None:
        response = await self.client.post(
            f"/v1/orgs/{self.org_id}/individuals:merge",
            json={"target_id": target_id, "source_ids": [source_id]},
        )
        assert response.status_code == 200, response.text

    async def delete_annotation(self, annotation_id: str) -> None:
        response = await self.client.delete(f"/v1/orgs/{self.org_id}/annotations/{annotation_id}")
        assert response.status_code == 204, response.text


@asynccontextmanager
async def running_catalog(tmp_path: Path) -> AsyncIterator[tuple[Catalogue, httpx.ASGITransport]]:
    app = create_catalog_app(
        CatalogSettings(
            database_url=f"sqlite:///{tmp_path / 'catalog.db'}",
            object_store="local",
            local_object_dir=tmp_path / "catalog-objects",
            auto_migrate=True,
        )
    )
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://catalog") as client:
            catalogue = Catalogue(client)
            await catalogue.create_org()
            yield catalogue, transport


@asynccontextmanager
async def running_matcher(
    settings: MatcherSettings, catalog: httpx.ASGITransport
) -> AsyncIterator[httpx.AsyncClient]:
    app = create_matcher_app(settings, transports={"catalog": catalog})
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=transport, base_url="http://matcher") as client,
    ):
        while not app.state.matcher.loaded:
            await asyncio.sleep(0.02)
        yield client


async def search(client: httpx.AsyncClient, org_id: str, queries: list[np.ndarray]) -> dict:
    response = await client.post(
        "/v1/search",
        json={
            "org_id": org_id,
            "species_group": "humpback_whale",
            "model_version": MODEL,
            "queries": [q.tolist() for q in queries],
            "k": 3,
        },
    )
    assert response.status_code == 200, response.text
    return response.json()


@pytest.fixture
def matcher_settings(settings: MatcherSettings) -> MatcherSettings:
    return settings.model_copy(update={"catalog_page_size": 2})


async def test_enrolled_photos_are_found_and_a_restart_replays_what_followed(
    tmp_path: Path, matcher_settings: MatcherSettings, rng: np.random.Generator
) -> None:
    centers = [unit(rng.standard_normal(512)) for _ in range(4)]
    async with running_catalog(tmp_path) as (catalogue, transport):
        individuals = [await catalogue.individual(f"HW-{i}") for i in range(3)]
        annotations = [
            [await catalogue.add_photo(individual_id, near(center, 0.8, rng)) for _ in range(2)]
            for individual_id, center in zip(individuals, centers)
        ]
        queries = [near(c, 0.75, rng) for c in centers]

        async with running_matcher(matcher_settings, transport) as client:
            first = await search(client, catalogue.org_id, queries)
            snapshot = (await client.post("/v1/snapshot")).json()
            late = await catalogue.individual("HW-late")
            await catalogue.add_photo(late, near(centers[3], 0.9, rng))
            await catalogue.merge(individuals[0], individuals[1])  # HW-1 was HW-0 all along
            await catalogue.delete_annotation(annotations[2][0])
            synced = (await client.post("/v1/sync")).json()
            after_sync = await search(client, catalogue.org_id, queries)

        async with running_matcher(matcher_settings, transport) as client:  # snapshot + replay
            replayed = await search(client, catalogue.org_id, queries)
        rebuilt_settings = matcher_settings.model_copy(update={"local_object_dir": tmp_path / "empty"})
        async with running_matcher(rebuilt_settings, transport) as client:  # full rebuild
            rebuilt = await search(client, catalogue.org_id, queries)

    assert [r["candidates"][0]["individual_id"] for r in first["results"][:3]] == individuals
    assert first["index"]["size"] == 6 and first["index"]["individuals"] == 3
    assert synced["applied_seq"] > snapshot["applied_seq"]
    assert after_sync["results"][3]["candidates"][0]["individual_id"] == late
    assert after_sync["results"][1]["candidates"][0]["individual_id"] == individuals[0]  # merged
    assert after_sync["index"]["size"] == 6 and after_sync["index"]["individuals"] == 3
    assert replayed == rebuilt == after_sync
