"""Issue 8's test: a few hundred real photos, two worker processes, one killed with SIGKILL mid-job.

The five services run as separate processes on PostgreSQL and the S3 server. The job must still
finish with every photo stored exactly once (counted in the catalogue's own tables), bad items
must fail alone with their reason, and submitting the same job again must store nothing.
"""

from __future__ import annotations

import os
import signal
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import create_engine, text

from finprint_testing.postgres import PostgresServer
from finprint_testing.s3 import S3Server
from finprint_testing.system import RunningSystem, separate_services
from tests.e2e.conftest import KeyMaker
from tests.ingest.conftest import Manifest, run_ingest_cli, worker_env, write_manifest

pytestmark = [pytest.mark.slow, pytest.mark.servers]

NAMED_INDIVIDUALS = 40  # x 3 photos each
UNNAMED = 117
FAST_LEASE = {"ingest_lease_s": "4", "ingest_batch_size": "4", "ingest_poll_s": "0.3"}
FINAL = {"done", "failed", "skipped"}


@pytest.fixture(scope="module")
def system(postgres_server: PostgresServer, s3_server: S3Server,
           tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[RunningSystem, str]]:
    tmp = tmp_path_factory.mktemp("ingest-system")
    with postgres_server.fresh_database() as database_url:
        storage = {"OBJECT_STORE": "s3", "S3_ENDPOINT": s3_server.endpoint, "S3_ACCESS_KEY": s3_server.access_key,
                   "S3_SECRET_KEY": s3_server.secret_key, "S3_BUCKET": f"ingest-{tmp.name.lower()}"[:60].replace("_", "-"),
                   "S3_SECURE": "false"}
        env = {"FINPRINT_CATALOG_DATABASE_URL": database_url, "FINPRINT_CATALOG_AUTO_MIGRATE": "true",
               **{f"FINPRINT_CATALOG_{k}": v for k, v in storage.items()},
               **{f"FINPRINT_MATCHER_{k}": v for k, v in storage.items()}}
        with separate_services(env, tmp) as running:
            yield running, database_url


@pytest.fixture(scope="module")
def manifest(humpback_photos: tuple[dict[str, list[Path]], list[Path]],
             tmp_path_factory: pytest.TempPathFactory) -> Manifest:
    """240 photos: 120 of 40 named humpbacks, 117 unnamed, one photo twice under another name, and three bad
    rows (an undecodable file, an unknown species, a latitude out of range)."""
    named, unnamed = humpback_photos
    individuals = [(code, paths) for code, paths in named.items() if len(paths) >= 3][:NAMED_INDIVIDUALS]
    rows, sources = [], {}
    for n, (_, paths) in enumerate(individuals):
        for path in paths[:3]:
            rows.append({"image": f"named/{path.name}", "observed_at": "2019-07-01T10:00:00Z", "latitude": "48.5",
                         "longitude": "-123.1", "location": "Haro Strait", "species": "humpback_whale",
                         "individual_id": f"HW-{n:03d}"})
            sources[f"named/{path.name}"] = path
    for path in unnamed[:UNNAMED]:
        rows.append({"image": f"unnamed/{path.name}", "observer": "archive"})
        sources[f"unnamed/{path.name}"] = path
    copy = individuals[0][1][0]
    rows.append({"image": "copies/same-bytes.jpg", "individual_id": "HW-000"})
    sources["copies/same-bytes.jpg"] = copy
    rows.append({"image": "bad/corrupt.jpg"})
    sources["bad/corrupt.jpg"] = b"not a photo, whatever its name says " * 100
    rows.append({"image": "bad/unknown-species.jpg", "species": "sea_serpent"})
    sources["bad/unknown-species.jpg"] = unnamed[UNNAMED]
    rows.append({"image": "bad/latitude.jpg", "latitude": "123.0", "longitude": "5.0"})
    sources["bad/latitude.jpg"] = unnamed[UNNAMED + 1]
    return write_manifest(tmp_path_factory.mktemp("manifest"), rows, sources)


def _catalogue_rows(database_url: str) -> dict[str, int]:
    engine = create_engine(database_url)
    try:
        with engine.connect() as db:
            return {table: db.execute(text(f"SELECT count(*) FROM {table}")).scalar_one()
                    for table in ("media", "annotations", "identifications", "encounters", "individuals")}
    finally:
        engine.dispose()


def _media_by_sha(database_url: str) -> Counter[str]:
    engine = create_engine(database_url)
    try:
        with engine.connect() as db:
            return Counter(db.execute(text("SELECT sha256 FROM media")).scalars())
    finally:
        engine.dispose()


def _items(database_url: str, job_id: str) -> list[dict]:
    engine = create_engine(database_url)
    try:
        with engine.connect() as db:
            return [dict(r._mapping) for r in db.execute(text(
                "SELECT id, item_key, status, error, attempts, worker_id, media_id, result FROM ingest_items "
                "WHERE job_id = :job"), {"job": job_id})]
    finally:
        engine.dispose()


def _annotations_per_media(database_url: str) -> dict[str, tuple[int, int]]:
    engine = create_engine(database_url)
    try:
        with engine.connect() as db:
            rows = db.execute(text(
                "SELECT a.media_id, count(DISTINCT a.id), count(i.id) FROM annotations a "
                "LEFT JOIN identifications i ON i.annotation_id = a.id GROUP BY a.media_id"))
            return {media_id: (annotations, identifications) for media_id, annotations, identifications in rows}
    finally:
        engine.dispose()


def _wait_until_final(database_url: str, job_id: str, at_least: int) -> None:
    """Until ``at_least`` of the job's items are final: the job is well under way."""
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        if sum(i["status"] in FINAL for i in _items(database_url, job_id)) >= at_least:
            return
        time.sleep(0.05)
    raise AssertionError(f"fewer than {at_least} items were final after 300 s")


def test_killed_worker_job_finishes_once_and_resubmission_adds_nothing(
        system: tuple[RunningSystem, str], manifest: Manifest, start_worker, request_gate) -> None:
    running, database_url = system
    api_key = KeyMaker(["--database-url", database_url])("ingest-lab", "contributor")
    created = run_ingest_cli(manifest, running.gateway_url, api_key, "--no-wait")
    job_id = created["job_id"]
    assert created["total"] == len(manifest.rows) == 241

    env = worker_env(running, **FAST_LEASE)
    # worker-a reaches the detector through a gate, so that the test knows when it is in the middle of
    # a batch: its items are recorded only once the whole batch is processed, so while one of its
    # detector calls is held it holds leases it cannot complete nor give back. Killed at any other
    # moment, it may be recording its outcomes: a complete already sent lands after the kill, and its
    # item was rightly finished by the killed worker itself, on its first attempt.
    gate = request_gate(running.urls["detector"])
    doomed = start_worker("worker-a", job_id, {**env, "FINPRINT_GATEWAY_DETECTOR_URL": gate.url})
    survivor = start_worker("worker-b", job_id, env)
    _wait_until_final(database_url, job_id, at_least=60)
    gate.hold_requests()
    gate.wait_until_a_request_is_held(300, "worker-a")
    # Its leases are renewed while it waits, so no one else has taken its batch yet.
    orphaned = {i["id"] for i in _items(database_url, job_id) if i["status"] == "running" and i["worker_id"] == "worker-a"}
    assert orphaned, "worker-a was waiting on the detector inside a batch, yet held no leased item"
    os.kill(doomed.pid, signal.SIGKILL)
    assert doomed.proc.wait(10) == -signal.SIGKILL
    assert survivor.proc.wait(400) == 0, survivor.log_tail()

    # The job finished: every item is final, and worker-a's leased items were taken over once their
    # leases expired and finished: the expired lease counts as an attempt (a release does not, and
    # worker-a released nothing), which is what lets the next worker replay an enrolment worker-a may
    # have committed instead of taking the photo for a duplicate of itself.
    items = {i["item_key"]: i for i in _items(database_url, job_id)}
    assert {i["status"] for i in items.values()} <= FINAL
    left_behind = [i for i in items.values() if i["id"] in orphaned]
    not_retried = [(i["item_key"], i["status"], i["attempts"], i["worker_id"]) for i in left_behind
                   if i["status"] not in FINAL or i["attempts"] < 2 or i["worker_id"] == "worker-a"]
    assert not not_retried, f"worker-a's items not finished on a later attempt by another worker: {not_retried}"
    with httpx.Client(base_url=running.gateway_url, headers={"X-API-Key": api_key}) as api:
        job = api.get(f"/v1/ingest/jobs/{job_id}").json()
        failed = api.get(f"/v1/ingest/jobs/{job_id}/items", params={"status": "failed", "limit": 500}).json()["items"]
    assert job["status"] == "completed"
    assert job["done"] + job["failed"] + job["duplicates"] == job["total"] == 241

    # Bad items failed alone, each with its reason; anything else failed only for want of a whale.
    reasons = {i["image"]: i["reason"] for i in failed}
    assert "not a recognised image" in reasons.pop("bad/corrupt.jpg")
    assert "unknown species 'sea_serpent'" in reasons.pop("bad/unknown-species.jpg")
    assert "latitude" in reasons.pop("bad/latitude.jpg")
    assert all(reason.startswith("no cetacean was found") for reason in reasons.values()), reasons
    assert not [key for key, item in items.items() if key.startswith("named/") and item["status"] == "failed"]
    # The same bytes under two names: one of the two is the duplicate of the other.
    pair = [items["copies/same-bytes.jpg"], items[next(r["image"] for r in manifest.rows if r["individual_id"] == "HW-000")]]
    assert sorted(i["status"] for i in pair) == ["done", "skipped"]
    assert job["duplicates"] == 1

    # Exactly once, counted in the catalogue: one media row per photo, each with its annotations once.
    done = [i for i in items.values() if i["status"] == "done"]
    by_sha = _media_by_sha(database_url)
    assert set(by_sha.values()) == {1}
    assert sorted(by_sha) == sorted(i["result"]["sha256"] for i in done)
    per_media = _annotations_per_media(database_url)
    for item in done:
        animals = len(item["result"]["animals"])
        assert per_media[item["media_id"]] == (animals, animals), item["item_key"]
    rows = _catalogue_rows(database_url)
    assert rows["media"] == len(done) == rows["encounters"]
    assert rows["individuals"] == NAMED_INDIVIDUALS

    # Submitting the same job again stores nothing: every photo is a known SHA-256 or fails again.
    again = run_ingest_cli(manifest, running.gateway_url, api_key, "--no-wait")
    assert start_worker("worker-c", again["job_id"], env).proc.wait(400) == 0
    with httpx.Client(base_url=running.gateway_url, headers={"X-API-Key": api_key}) as api:
        second = api.get(f"/v1/ingest/jobs/{again['job_id']}").json()
    assert second["status"] == "completed"
    assert (second["done"], second["duplicates"], second["failed"]) == (0, job["done"] + 1, job["failed"])
    assert _catalogue_rows(database_url) == rows

