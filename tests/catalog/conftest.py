"""The catalog's tests run twice: against SQLite and against a real PostgreSQL.

Each backend gets one migrated database per run; tests keep out of each other's way by creating
their own organisations (random slugs), which is also what organisation scoping guarantees.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from services.catalog.adapters.db import migrate
from services.catalog.adapters.db.engine import make_engine
from services.catalog.app import create_app
from services.catalog.settings import CatalogSettings

from .helpers import Catalogue, MakeCatalogue, new_org


BACKENDS = ["sqlite", "postgres"]


@pytest.fixture(scope="session", params=BACKENDS)
def database_url(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> str:
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path_factory.mktemp('sqlite') / 'catalog.db'}"
    else:
        url = request.getfixturevalue("postgres_url")
    engine = make_engine(url)
    migrate.upgrade(engine)
    engine.dispose()
    return url


@pytest.fixture(scope="session")
def catalog_app(database_url: str, tmp_path_factory: pytest.TempPathFactory) -> FastAPI:
    settings = CatalogSettings(
        database_url=database_url,
        object_store="local",
        local_object_dir=tmp_path_factory.mktemp("objects"),
        auto_migrate=False,
    )
    return create_app(settings)


@pytest.fixture(scope="session")
def client(catalog_app: FastAPI) -> Iterator[TestClient]:
    with TestClient(catalog_app) as test_client:
        yield test_client


@pytest.fixture
def org(client: TestClient) -> str:
    return new_org(client, "Alpha")


@pytest.fixture
def other_org(client: TestClient) -> str:
    return new_org(client, "Beta")


@pytest.fixture
def cat(client: TestClient, org: str) -> Catalogue:
    return Catalogue(client, org)


@pytest.fixture
def make_catalogue(client: TestClient) -> MakeCatalogue:
    return lambda org_id: Catalogue(client, org_id)


@pytest.fixture(scope="session")
def objects_dir(catalog_app: FastAPI) -> Path:
    return catalog_app.state.catalog.store.root
