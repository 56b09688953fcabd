"""The ingest queue in the catalog, on SQLite and on PostgreSQL: leases, take-over, exactly one owner."""

from __future__ import annotations

import secrets
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from services.catalog.adapters.db import migrate
from services.catalog.adapters.db.engine import make_engine
from services.catalog.app import create_app
from services.catalog.settings import CatalogSettings

pytestmark = pytest.mark.servers
CLAIM = "/v1/internal/ingest-items:claim"


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def catalog(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    tmp = tmp_path_factory.mktemp("queue")
    if request.param == "sqlite":
        url = f"sqlite:///{tmp / 'catalog.db'}"
        yield from _client(url, tmp)
        return
    with request.getfixturevalue("postgres_server").fresh_database() as url:
        yield from _client(url, tmp)


def _client(url: str, tmp: Path) -> Iterator[TestClient]:
    engine = make_engine(url)
    migrate.upgrade(engine)
    engine.dispose()
    settings = CatalogSettings(database_url=url, object_store="local", local_object_dir=tmp / "objects",
                               auto_migrate=False)
    with TestClient(create_app(settings)) as client:
        yield client


def _job(catalog: TestClient, n: int, *, staged: bool = True) -> tuple[str, str]:
    """A started job of ``n`` items (staged from bytes, as the gateway does); returns (org, job)."""
    org = catalog.post("/v1/orgs", json={"slug": f"q-{secrets.token_hex(4)}", "name": "Q"}).json()["id"]
    job = catalog.post(f"/v1/orgs/{org}/ingest-jobs", json={"name": "archive"}).json()["id"]
    items = [{"item_key": f"photos/{i:04d}.jpg", "payload": {"observer": "x"}} for i in range(n)]
    assert catalog.post(f"/v1/orgs/{org}/ingest-jobs/{job}/items:add", json={"items": items}).json()["added"] == n
    if staged:
        for item in items:
            response = catalog.put(f"/v1/orgs/{org}/ingest-jobs/{job}/content/{item['item_key']}", content=b"bytes")
            assert response.status_code == 200, response.text
    started = catalog.post(f"/v1/orgs/{org}/ingest-jobs/{job}:start").json()
    assert started["status"] == ("running" if staged else "completed")  # nothing to do without files
    return org, job


def _claim(catalog: TestClient, worker: str, job: str, limit: int = 5, lease_s: float = 60,
           max_attempts: int = 5) -> list[dict]:
    response = catalog.post(CLAIM, json={"worker_id": worker, "job_id": job, "limit": limit, "lease_s": lease_s,
                                         "max_attempts": max_attempts})
    assert response.status_code == 200, response.text
    return response.json()["items"]


def test_concurrent_claims_never_share_an_item(catalog: TestClient) -> None:
    _, job = _job(catalog, 60)
    with ThreadPoolExecutor(6) as pool:
        batches = list(pool.map(lambda n: _claim(catalog, f"w{n % 6}", job, limit=4), range(30)))
    ids = [item["id"] for batch in batches for item in batch]
    assert len(ids) == len(set(ids)) == 60
    assert all(item["attempts"] == 1 for batch in batches for item in batch)


def test_an_expired_lease_is_taken_over_and_the_late_worker_cannot_complete(catalog: TestClient) -> None:
    _, job = _job(catalog, 2)
    first = _claim(catalog, "dead", job, limit=1, lease_s=0.2)
    assert _claim(catalog, "alive", job, limit=5) and not _claim(catalog, "alive", job)  # the other one only
    time.sleep(0.3)
    [again] = _claim(catalog, "alive", job)
    assert (again["id"], again["attempts"]) == (first[0]["id"], 2)
    late = catalog.post(f"/v1/internal/ingest-items/{again['id']}:complete", json={"worker_id": "dead", "status": "done"})
    assert late.status_code == 409
    renewed = catalog.post("/v1/internal/ingest-items:renew",
                           json={"worker_id": "alive", "item_ids": [again["id"]], "lease_s": 60}).json()
    assert renewed["renewed"] == [again["id"]]


def test_completing_every_item_completes_the_job(catalog: TestClient) -> None:
    org, job = _job(catalog, 3)
    for item in _claim(catalog, "w", job):
        status = "failed" if item["item_key"].endswith("0.jpg") else "done"
        response = catalog.post(f"/v1/internal/ingest-items/{item['id']}:complete",
                                json={"worker_id": "w", "status": status, "error": "bad" if status == "failed" else None})
        assert response.status_code == 200, response.text
    state = catalog.get(f"/v1/orgs/{org}/ingest-jobs/{job}").json()
    assert state["status"] == "completed" and state["finished_at"]
    assert state["counts"] == {"done": 2, "failed": 1}
    assert catalog.post(CLAIM, json={"worker_id": "w", "job_id": job}).json() == {"items": [], "remaining": 0}


def test_an_item_whose_workers_keep_dying_fails_with_that_reason(catalog: TestClient) -> None:
    org, job = _job(catalog, 1)
    for _ in range(2):
        assert _claim(catalog, "w", job, lease_s=0.1, max_attempts=2)
        time.sleep(0.2)
    assert _claim(catalog, "w", job, max_attempts=2) == []
    [item] = catalog.get(f"/v1/orgs/{org}/ingest-jobs/{job}/items").json()["items"]
    assert item["status"] == "failed" and "gave up after 2 attempts" in item["error"]


def test_starting_fails_the_items_never_uploaded_and_files_are_refused_afterwards(catalog: TestClient) -> None:
    org, job = _job(catalog, 2, staged=False)
    items = catalog.get(f"/v1/orgs/{org}/ingest-jobs/{job}/items").json()["items"]
    assert {(i["status"], i["error"]) for i in items} == {("failed", "the file was never uploaded")}
    late = catalog.put(f"/v1/orgs/{org}/ingest-jobs/{job}/content/photos/0000.jpg", content=b"bytes")
    assert late.status_code == 409
    assert catalog.get(f"/v1/orgs/{org}/ingest-jobs/{job}").json()["status"] == "completed"


def test_a_pending_job_is_not_worked_on(catalog: TestClient) -> None:
    org = catalog.post("/v1/orgs", json={"slug": f"q-{secrets.token_hex(4)}", "name": "Q"}).json()["id"]
    job = catalog.post(f"/v1/orgs/{org}/ingest-jobs", json={"name": "uploading"}).json()["id"]
    catalog.post(f"/v1/orgs/{org}/ingest-jobs/{job}/items:add", json={"items": [{"item_key": "a.jpg"}]})
    catalog.put(f"/v1/orgs/{org}/ingest-jobs/{job}/content/a.jpg", content=b"bytes")
    assert _claim(catalog, "w", job) == []


def test_a_job_whose_last_items_give_up_is_completed(catalog: TestClient) -> None:
    org, job = _job(catalog, 2)
    [done, doomed] = _claim(catalog, "w", job, lease_s=0.1, max_attempts=1)
    assert catalog.post(f"/v1/internal/ingest-items/{done['id']}:complete",
                        json={"worker_id": "w", "status": "done"}).status_code == 200
    time.sleep(0.2)
    assert _claim(catalog, "w", job, max_attempts=1) == []  # the last open item gives up here
    state = catalog.get(f"/v1/orgs/{org}/ingest-jobs/{job}").json()
    assert state["status"] == "completed" and state["finished_at"], state
    assert state["counts"] == {"done": 1, "failed": 1}


def test_released_items_come_back_without_using_an_attempt(catalog: TestClient) -> None:
    org, job = _job(catalog, 2)
    held = _claim(catalog, "w", job, max_attempts=2)
    for _ in range(3):  # three outages in a row: more than max_attempts
        released = catalog.post("/v1/internal/ingest-items:release",
                                json={"worker_id": "w", "item_ids": [i["id"] for i in held],
                                      "reason": "matcher is unavailable"})
        assert released.status_code == 200, released.text
        assert sorted(released.json()["released"]) == sorted(i["id"] for i in held)
        pending = catalog.get(f"/v1/orgs/{org}/ingest-jobs/{job}/items", params={"status": "pending"}).json()
        assert {i["error"] for i in pending["items"]} == {"postponed: matcher is unavailable"}
        held = _claim(catalog, "w", job, max_attempts=2)
        assert [i["attempts"] for i in held] == [1, 1]
    # Only the worker holding the lease can give an item back.
    other = catalog.post("/v1/internal/ingest-items:release",
                         json={"worker_id": "other", "item_ids": [held[0]["id"]], "reason": "x"})
    assert other.json()["released"] == []
