"""A model upgrade on the running system: a gallery enrolled with version A (the shipped embedder) is
re-embedded with B (its int8 export, a real second model) by `finprint worker` processes while identify
traffic continues; a worker and the matcher are killed with SIGKILL mid-job; the shard swaps to B once
the job has every photo, identify answers from B, and a rollback returns to A.

The separate processes, PostgreSQL and S3 server are the fault rig's (tests/faults/conftest.py).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import create_engine, text

from finprint_testing.faults import RestartableProcess
from finprint_testing.models import two_embedder_versions
from finprint_testing.processes import free_port
from finprint_testing.system import peer_wiring
from tests.faults.conftest import (
    CLIENT_TIMEOUT_S,
    Load,
    Rig,
    assert_matcher_equals_catalogue,
    assert_only_ok_or_503,
    done_items,
    job_items,
    wait_for,
    wait_for_job,
)

pytestmark = [pytest.mark.servers, pytest.mark.slow]
SPECIES = "humpback_whale"


@pytest.fixture(scope="module")
def versions(tmp_path_factory: pytest.TempPathFactory, shared_data: Path) -> tuple[Path, str, str]:
    repository = tmp_path_factory.mktemp("two-versions")
    a, b = two_embedder_versions(repository, shared_data)
    return repository, a, b


@pytest.fixture(scope="module")
def rig_env(versions: tuple[Path, str, str]) -> dict[str, str]:
    repository, _, b = versions
    return {
        "FINPRINT_EMBEDDER_MODEL_REPOSITORY": str(repository),
        "FINPRINT_EMBEDDER_MODEL_VERSION": "2",
        "FINPRINT_EMBEDDER_EXTRA_MODEL_VERSIONS": b.split(":")[1],
        # The re-embedding runs in `finprint worker` processes of this test, to be killed on their own.
        "FINPRINT_GATEWAY_EMBEDDED_WORKER": "false",
    }


@pytest.fixture(scope="module")
def admin_key(rig: Rig) -> str:
    with httpx.Client(base_url=rig.system.urls["catalog"], timeout=30) as catalog:
        made = catalog.post(f"/v1/orgs/{rig.gallery.id}/api-keys", json={"name": "upgrades", "role": "admin"})
        assert made.status_code == 201, made.text
        return made.json()["key"]


@pytest.fixture()
def start_worker(rig: Rig, tmp_path: Path) -> Iterator[Callable[..., RestartableProcess]]:
    """Starts a `finprint worker` process (the gateway's settings, so the same services and queue)."""
    started: list[RestartableProcess] = []

    def start(name: str, *args: str) -> RestartableProcess:
        worker = RestartableProcess(
            name, [sys.executable, "-m", "finprint.cli", "worker", "--worker-id", name, *args],
            tmp_path / f"{name}.log", ready=lambda: True, env={**os.environ, **peer_wiring(rig.system.urls), **rig.env})
        started.append(worker)
        worker.start()
        return worker

    yield start
    for worker in started:
        worker.stop()


def _identify(api: httpx.Client, photo: Path) -> dict:
    response = api.post("/v1/identify", files={"image": (photo.name, photo.read_bytes(), "image/jpeg")})
    assert response.status_code == 200, response.text
    [result] = response.json()["results"]
    return result


def _top1_hits(api: httpx.Client, rig: Rig) -> tuple[int, set[str]]:
    """Queries of the gallery's whales whose top candidate is the right whale, and the versions that answered."""
    hits, answered = 0, set()
    for n, photo in enumerate(rig.photos.queries[:8]):
        result = _identify(api, photo)
        answered.add(result["model_version"])
        hits += bool(result["candidates"]) and result["candidates"][0]["individual_id"] == f"GAL-{n}"
    return hits, answered


def _serving(rig: Rig) -> str | None:
    """What the matcher's /readyz says the gallery's humpback shard serves."""
    ready = httpx.get(f"{rig.system.urls['matcher']}/readyz", timeout=10).json()
    return ready["checks"]["indexes"].get("shards", {}).get(f"{rig.gallery.id}:{SPECIES}", {}).get("serving")


def _embeddings_by_version(rig: Rig) -> dict[str, tuple[int, int]]:
    """Per version: embeddings, and distinct annotations they belong to (equal: none stored twice)."""
    engine = create_engine(rig.database_url)
    try:
        with engine.connect() as db:
            rows = db.execute(text("SELECT model_version, count(*), count(DISTINCT annotation_id) FROM embeddings "
                                   "WHERE org_id = :o GROUP BY model_version"), {"o": rig.gallery.id})
            return {version: (n, distinct) for version, n, distinct in rows}
    finally:
        engine.dispose()


def test_mixing_model_versions_in_one_search_is_refused(rig: Rig, versions: tuple[Path, str, str]) -> None:
    _, a, b = versions
    query = {"org_id": rig.gallery.id, "species_group": SPECIES, "queries": [[0.0] * 511 + [1.0]], "k": 5}
    with httpx.Client(base_url=rig.system.urls["matcher"], timeout=30) as matcher:
        assert matcher.post("/v1/search", json={**query, "model_version": a}).status_code == 200
        refused = matcher.post("/v1/search", json={**query, "model_version": b})
    assert refused.status_code == 409, refused.text
    assert refused.json()["type"].endswith("/model-version-mismatch")
    assert refused.json()["serving_version"] == a


def test_reembed_swap_and_rollback_under_identify_traffic(
        rig: Rig, versions: tuple[Path, str, str], admin_key: str,
        start_worker: Callable[..., RestartableProcess]) -> None:
    _, a, b = versions
    admin = httpx.Client(base_url=rig.url, headers={"X-API-Key": admin_key}, timeout=CLIENT_TIMEOUT_S)
    hits_a, answered = _top1_hits(admin, rig)
    assert answered == {a}
    before = _embeddings_by_version(rig)
    assert set(before) == {a}

    not_served = admin.post("/v1/admin/model-upgrades", json={"model_version": "finprint_embedder:9"})
    assert not_served.status_code == 422, not_served.text

    with Load(rig, rig.gallery, [], identify_threads=2, max_requests=2000) as load:
        job = admin.post("/v1/admin/model-upgrades", json={"model_version": b})
        assert job.status_code == 201, job.text
        job_id, total = job.json()["id"], job.json()["total"]
        assert total == before[a][1]
        again = admin.post("/v1/admin/model-upgrades", json={"model_version": b})
        assert again.json()["id"] == job_id  # asking twice is the same job

        first = start_worker("reembed-worker-1")
        wait_for(lambda: done_items(rig, job_id) >= 3 or None, "three photos re-embedded")
        first.kill()  # SIGKILL mid-job: its leased items come back when their leases expire
        done_at_kill = done_items(rig, job_id)
        assert done_at_kill < total, "the job finished before the worker was killed: kill it earlier"
        rig.system.kill("matcher")
        assert _serving_during_outage(admin, rig) == {503}
        rig.system.restart("matcher")
        metrics_port = free_port()
        start_worker("reembed-worker-2", "--metrics-port", str(metrics_port))
        finished = wait_for_job(rig, rig.gallery, job_id)
        load.stop()
    metrics = httpx.get(f"http://127.0.0.1:{metrics_port}/metrics", timeout=10).text
    done_by_second = _sample(metrics, 'finprint_ingest_items_total{kind="reembed",status="done"}')
    assert done_by_second >= total - done_at_kill - 4  # at most the first worker's leased items went elsewhere
    assert _sample(metrics, 'finprint_ingest_stage_seconds_count{kind="reembed",stage="embedder"}') == done_by_second

    statuses = assert_only_ok_or_503(load.answers)
    attempts = Counter(item["attempts"] for item in job_items(rig, job_id))
    print(f"\nre-embedded {total} photos; worker killed after {done_at_kill}; item attempts {dict(attempts)}; "
          f"identify answers {dict(statuses)}; top-1 of 8 queries: {a} {hits_a}")
    assert statuses[("identify", 200)] > 0
    assert finished["status"] == "completed" and finished["failed"] == 0, finished
    assert finished["model_upgrade"]["swapped"] is True, finished
    after = _embeddings_by_version(rig)
    assert after == {a: before[a], b: before[a]}  # every photo once per version: nothing lost, nothing twice

    wait_for(lambda: _serving(rig) == b or None, f"the matcher serving {b}")
    model = admin.get("/v1/model").json()
    assert model["shards"][SPECIES]["generations"] == {"serving": b, "previous": a}
    hits_b, answered = _top1_hits(admin, rig)
    assert answered == {b}
    print(f"top-1 of 8 queries: {b} {hits_b}")
    assert hits_b >= hits_a - 1, (hits_a, hits_b)
    assert_matcher_equals_catalogue(rig)

    # A photo enrolled now is stored under both versions the shard keeps, so a rollback loses it neither.
    photo = rig.photos.named[0][1][0]
    enrolled = admin.post("/v1/encounters", data={"individual_id": "AFTER-SWAP"},
                          files=[("images", (photo.name, photo.read_bytes(), "image/jpeg"))])
    assert enrolled.status_code == 201, enrolled.text
    assert _embeddings_by_version(rig) == {a: (before[a][0] + 1,) * 2, b: (before[a][0] + 1,) * 2}

    rolled = subprocess.run([sys.executable, "-m", "finprint.cli", "models", "rollback", "--url", rig.url,
                             "--api-key", admin_key], capture_output=True, text=True, timeout=120)
    assert rolled.returncode == 0, rolled.stderr
    assert json.loads(rolled.stdout.splitlines()[-1])["shards"] == [f"{SPECIES}: {b} -> {a}"]
    wait_for(lambda: _serving(rig) == a or None, f"the matcher serving {a} again")
    _, answered = _top1_hits(admin, rig)
    assert answered == {a}
    assert_matcher_equals_catalogue(rig)
    admin.close()


def _sample(metrics: str, series: str) -> float:
    """The value of one series in a Prometheus text exposition (0 when absent)."""
    return next((float(line.rsplit(" ", 1)[1]) for line in metrics.splitlines() if line.startswith(series + " ")), 0.0)


def _serving_during_outage(api: httpx.Client, rig: Rig) -> set[int]:
    photo = rig.photos.queries[0]
    response = api.post("/v1/identify", files={"image": (photo.name, photo.read_bytes(), "image/jpeg")})
    return {response.status_code}
