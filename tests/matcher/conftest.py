"""Fixtures of the matcher tests: vectors shaped like embeddings, the real catalog app, a running matcher.

The matcher reads the catalogue from the REAL catalog app (SQLite in the test's tmp dir, local
object store, in process over httpx.ASGITransport), and tests write to that catalogue through
the catalog's public API only: organisations, individuals, media, annotations with embeddings,
reassignments, merges and deletions.
"""

from __future__ import annotations

import asyncio
import base64
import io
import json
import shutil
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import numpy as np
import pytest
from PIL import Image

from finprint.schemas.embeddings import encode_vector
from services.catalog.adapters.db import migrate
from services.catalog.adapters.db.engine import make_engine
from services.catalog.app import create_app as create_catalog_app
from services.catalog.settings import CatalogSettings
from services.matcher.app import create_app as create_matcher_app
from services.matcher.settings import MatcherSettings

MODEL = "finprint_embedder:1"
MODEL_THRESHOLD = 0.5
HUMPBACK_THRESHOLD = 0.6
PHOTO_SIZE = (64, 48)
CROP_BOX = {"x": 2, "y": 2, "width": 40, "height": 30}


def with_model_card(settings: MatcherSettings, tmp_path: Path, **card: object) -> MatcherSettings:
    """The settings with a model repository whose card for MODEL holds ``card`` (calibrations, scoring)."""
    folder = tmp_path / "calibrated" / "finprint_embedder"
    folder.mkdir(parents=True)
    name, version = MODEL.split(":")
    folder.joinpath("finprint.json").write_text(json.dumps(
        {"name": name, "version": version, "new_individual_threshold": 0.5, **card}))
    return settings.model_copy(update={"model_repository": folder.parent})


def unit(vector: np.ndarray) -> np.ndarray:
    return (vector / np.linalg.norm(vector)).astype(np.float32)


def near(center: np.ndarray, similarity: float, rng: np.random.Generator) -> np.ndarray:
    """A unit vector whose cosine similarity to the unit ``center`` is exactly ``similarity``."""
    noise = rng.standard_normal(center.shape[0]).astype(np.float32)
    noise -= noise.dot(center) * center
    return unit(similarity * center + np.sqrt(1 - similarity**2) * unit(noise))


def jpeg(seed: int) -> bytes:
    pixels = np.random.default_rng(seed).integers(0, 255, (PHOTO_SIZE[1], PHOTO_SIZE[0], 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, "JPEG", quality=90)
    return buffer.getvalue()


def closed_port() -> int:
    """A port on 127.0.0.1 that nothing listens on: bound by the OS for us, then released."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@dataclass
class Sighting:
    """An animal in an enrolled photo: its crop's embedding and who it is."""

    vector: np.ndarray
    new_individual: str | None = None  # the catalogue code of an individual the enrolment creates
    species: str = "humpback_whale"


def _enrolled_annotation(sighting: Sighting) -> dict:
    annotation = {
        "box": CROP_BOX,
        "view": "fluke",
        "species": sighting.species,
        "embedding": {"model_version": MODEL, "vector": encode_vector(sighting.vector)},
    }
    if sighting.new_individual:
        individual = {"catalogue_code": sighting.new_individual, "species": sighting.species}
        annotation |= {"decision": "new_individual", "new_individual": individual, "decided_by": "tests"}
    return annotation


@dataclass
class Enrolled:
    annotation_id: str  # the embedding's id in the matcher
    individual_id: str | None


class Catalogue:
    """The catalog's public API, as far as these tests write to it.

    Every method asserts the catalog's answer, so a test fails where the catalogue refused a write.
    Each organisation gets one uploaded photo that its annotations share (boxes in one image): the
    matcher only sees the annotations, and one upload per annotation would only slow the tests.
    """

    def __init__(self, client: httpx.AsyncClient, transport: httpx.ASGITransport) -> None:
        self.client = client
        self.transport = transport  # what the matcher reaches the catalog through
        self.org_id = ""
        self._photo_of_org: dict[str, str] = {}
        self._photos = 0

    async def organisation(self, slug: str) -> str:
        response = await self.client.post("/v1/orgs", json={"slug": slug, "name": slug.title()})
        assert response.status_code == 201, response.text
        return response.json()["id"]

    async def individual(self, code: str, species: str = "humpback_whale", *, org_id: str = "") -> str:
        response = await self.client.post(
            f"/v1/orgs/{org_id or self.org_id}/individuals", json={"catalogue_code": code, "species": species}
        )
        assert response.status_code == 201, response.text
        return response.json()["id"]

    async def add_photo(
        self,
        individual_id: str | None,
        vector: np.ndarray,
        species: str = "humpback_whale",
        *,
        org_id: str = "",
    ) -> str:
        """Annotate a crop with its embedding, identified as ``individual_id`` (or not yet: None).

        Returns the annotation's id, which is the embedding's id in the matcher.
        """
        org_id = org_id or self.org_id
        response = await self.client.post(
            f"/v1/orgs/{org_id}/annotations",
            json={
                "media_id": await self._photo(org_id),
                "box": CROP_BOX,
                "view": "fluke",
                "species": species,
                "individual_id": individual_id,
                "embedding": {"model_version": MODEL, "vector": encode_vector(vector)},
            },
        )
        assert response.status_code == 201, response.text
        return response.json()["id"]

    async def enrol(self, sightings: list[Sighting]) -> list[Enrolled]:
        """Enrol one photo with all these sightings in one transaction (as the gateway does).

        Sightings naming the same new individual's code become one individual; those naming none
        stay pending: unidentified, so not indexed.
        """
        annotations = [_enrolled_annotation(sighting) for sighting in sightings]
        image = base64.b64encode(self._new_photo()).decode("ascii")
        response = await self.client.post(
            f"/v1/orgs/{self.org_id}/enrolments",
            json={
                "encounter": {},
                "photos": [{"image": {"content_base64": image}, "annotations": annotations}],
            },
        )
        assert response.status_code == 201, response.text
        return [Enrolled(a["id"], a["individual_id"]) for a in response.json()["annotations"]]

    async def identify(self, annotation_id: str, individual_id: str) -> None:
        response = await self.client.patch(
            f"/v1/orgs/{self.org_id}/annotations/{annotation_id}", json={"individual_id": individual_id}
        )
        assert response.status_code == 200, response.text

    async def merge(self, target_id: str, source_id: str) -> None:
        response = await self.client.post(
            f"/v1/orgs/{self.org_id}/individuals:merge",
            json={"target_id": target_id, "source_ids": [source_id]},
        )
        assert response.status_code == 200, response.text

    async def delete_annotation(self, annotation_id: str) -> None:
        response = await self.client.delete(f"/v1/orgs/{self.org_id}/annotations/{annotation_id}")
        assert response.status_code == 204, response.text

    async def head_seq(self) -> int:
        """The catalogue's latest change sequence number, as the matcher reads it."""
        response = await self.client.get("/v1/internal/changes", params={"after_seq": 0, "limit": 1})
        assert response.status_code == 200, response.text
        return response.json()["head_seq"]

    async def _photo(self, org_id: str) -> str:
        if org_id not in self._photo_of_org:
            response = await self.client.post(
                f"/v1/orgs/{org_id}/media",
                files={"file": ("fluke.jpg", self._new_photo(), "image/jpeg")},
            )
            assert response.status_code == 201, response.text
            self._photo_of_org[org_id] = response.json()["media"]["id"]
        return self._photo_of_org[org_id]

    def _new_photo(self) -> bytes:
        """A JPEG unlike the ones before (the catalog stores equal bytes once per organisation)."""
        self._photos += 1
        return jpeg(self._photos)


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(7)


@pytest.fixture(scope="session")
def migrated_catalog_database(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An empty catalog database at the latest schema; each test gets a copy of it."""
    path = tmp_path_factory.mktemp("catalog-template") / "catalog.db"
    engine = make_engine(f"sqlite:///{path}")
    migrate.upgrade(engine)
    engine.dispose()  # the last connection closing folds the WAL back into the file
    return path


@asynccontextmanager
async def running_catalog(database: Path, object_dir: Path) -> AsyncIterator[Catalogue]:
    app = create_catalog_app(
        CatalogSettings(
            database_url=f"sqlite:///{database}",
            object_store="local",
            local_object_dir=object_dir,
            auto_migrate=False,
        )
    )
    transport = httpx.ASGITransport(app=app)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=transport, base_url="http://catalog") as client,
    ):
        catalogue = Catalogue(client, transport)
        catalogue.org_id = await catalogue.organisation("matcher-lab")
        yield catalogue


@pytest.fixture
async def catalog(tmp_path: Path, migrated_catalog_database: Path) -> AsyncIterator[Catalogue]:
    """The real catalog app on its own SQLite database, with one organisation (``catalog.org_id``)."""
    database = tmp_path / "catalog.db"
    shutil.copyfile(migrated_catalog_database, database)
    async with running_catalog(database, tmp_path / "catalog-objects") as catalogue:
        yield catalogue


@pytest.fixture
def key(catalog: Catalogue) -> dict[str, str]:
    """The index key of the catalogue's organisation for humpback whales."""
    return {"org_id": catalog.org_id, "species_group": "humpback_whale", "model_version": MODEL}


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


@asynccontextmanager
async def running_matcher(settings: MatcherSettings, catalog: Catalogue) -> AsyncIterator[httpx.AsyncClient]:
    """The matcher app with its lifespan running, reading ``catalog``, once its initial load is done."""
    app = create_matcher_app(settings, transports={"catalog": catalog.transport})
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
