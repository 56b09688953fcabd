"""Every database connection in use (an overload): a request waits database_pool_timeout_s for one, then
gets a 503 problem with Retry-After, not a 500 (found by the load benchmark, 2026-12-04)."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from services.catalog.app import create_app
from services.catalog.settings import CatalogSettings

from .helpers import new_org

pytestmark = pytest.mark.servers


def test_a_request_finding_no_free_connection_is_a_503_with_retry_after(postgres_url: str, tmp_path: Path) -> None:
    settings = CatalogSettings(database_url=postgres_url, object_store="local", local_object_dir=tmp_path,
                               database_pool_size=1, database_pool_timeout_s=0.5, auto_migrate=True)
    with TestClient(create_app(settings)) as client:
        org = new_org(client)
        engine = client.app.state.catalog.engine
        held = [engine.connect() for _ in range(3)]  # the pool's 1 + its overflow of 2
        try:
            answer = client.get(f"/v1/orgs/{org}/individuals")
        finally:
            for connection in held:
                connection.close()
        assert answer.status_code == 503, answer.text
        assert answer.headers["content-type"].startswith("application/problem+json")
        assert int(answer.headers["Retry-After"]) >= 1
        assert client.get(f"/v1/orgs/{org}/individuals").status_code == 200  # and back once connections are free
