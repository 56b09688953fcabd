"""Fault injection on the running system (issue 20): each part is broken while an identify load, an
enrolling client and an ingest job run, then brought back; nothing else is restarted.

- kill -9 of the detector, the embedder, the matcher and the catalog, each restarted on its port with
  its storage;
- PostgreSQL stopped for 10 s (fast shutdown), then started again;
- the S3 server killed for 10 s, then started again on its data;
- the matcher's disk full, so its snapshots cannot be written.

See tests/faults/conftest.py for what every case checks, and docs/operations.md for what each fault
does to a caller.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from finprint_testing.faults import fill
from tests.faults.conftest import (
    Load,
    Rig,
    assert_matcher_equals_catalogue,
    assert_only_ok_or_503,
    assert_stored_once,
    done_items,
    ingest_archive,
    job_items,
    wait_for,
    wait_for_job,
)

pytestmark = [pytest.mark.slow, pytest.mark.servers]

KILL_OUTAGE_S = 3.0
STOP_OUTAGE_S = 10.0


def _gateway_readiness(rig: Rig) -> dict[str, bool]:
    response = httpx.get(f"{rig.url}/readyz", timeout=30)
    checks = {name: check["ready"] for name, check in response.json()["checks"].items()}
    assert (response.status_code == 200) == all(checks.values()), response.text
    return checks


def _exercise(rig: Rig, slug: str, break_part: Callable[[], None], restore_part: Callable[[], None],
              outage_s: float, *, expect_503: set[str], blamed: str | None) -> dict:
    """Break a part under load, hold the outage, bring the part back; check everything afterwards.

    ``blamed``: the service the gateway's 503s and its /readyz name meanwhile (None: nothing fails). The
    matcher's own readiness includes the catalog answering, so a catalog-side fault names both.
    """
    unready = {blamed, "matcher"} if blamed == "catalog" else {blamed} - {None}
    org = rig.new_org(slug)
    named, unnamed, enrol = rig.photos.named, rig.photos.unnamed[:6], rig.photos.unnamed[6:12]
    starts = {name: service.starts for name, service in rig.system.services.items()}
    job = ingest_archive(rig, org, named, unnamed)
    with Load(rig, org, enrol) as load:
        load.enrol(2)
        wait_for(lambda: load.successes_since(0) >= 4 and len(load.enrolled) == 2
                 and done_items(rig, job["id"]) >= 2, "the load and the job under way before the fault")
        left_at_fault = job["total"] - done_items(rig, job["id"])
        broken_at = time.monotonic()
        break_part()
        load.enrol(2)
        readiness = wait_for(lambda: (r := _gateway_readiness(rig)) and {n for n, ok in r.items() if not ok} == unready
                             and r, f"the gateway's /readyz naming {unready}", timeout_s=outage_s)
        time.sleep(max(0.0, outage_s - (time.monotonic() - broken_at)))
        restore_part()
        restored_at = time.monotonic()
        load.enrol(2)
        first_success = wait_for(
            lambda: min((a.at for a in load.answers if a.kind == "identify" and a.status == 200
                         and a.at >= restored_at), default=None),
            "an identify answered 200 after the part came back", timeout_s=90)
        wait_for(lambda: load.successes_since(restored_at) >= 4, "identifies succeeding again", timeout_s=90)
        load.stop()
    finished = wait_for_job(rig, org, job["id"])

    statuses = assert_only_ok_or_503(load.answers)
    assert left_at_fault > 0, "the job had finished before the fault: it tested nothing"
    before = [a for a in load.answers if a.at < broken_at]
    assert before and all(a.status in {200, 201} for a in before), "failures before the fault"
    seen = {a.kind for a in load.answers if a.at >= broken_at and a.status == 503}
    assert expect_503 <= seen, f"no 503 seen by {expect_503 - seen} during the fault: {dict(statuses)}"
    assert {a.dependency for a in load.answers if a.status == 503} <= {blamed}
    assert {name for name, ready in readiness.items() if not ready} == unready
    assert all(_gateway_readiness(rig).values()), "the gateway not ready after the part came back"
    assert_stored_once(rig, org, finished, load, named, enrol)
    assert_matcher_equals_catalogue(rig)
    restarted = {name for name, service in rig.system.services.items() if service.starts != starts[name]}
    retry_after = sorted({a.retry_after for a in load.answers if a.status == 503})
    attempts = Counter(item["attempts"] for item in job_items(rig, job["id"]))
    slowest = max((a.seconds for a in load.answers if a.status == 503), default=0.0)
    summary = {"statuses": dict(statuses), "retry_after": retry_after, "item_attempts": dict(attempts),
               "slowest_503_s": round(slowest, 2),
               "recovery_s": round(first_success - restored_at, 2), "restarted": restarted}
    print(f"\n{slug}: {summary}")
    return summary


@pytest.mark.parametrize("service", ["detector", "embedder", "matcher", "catalog"])
def test_a_killed_service_is_a_503_then_comes_back(rig: Rig, service: str) -> None:
    summary = _exercise(rig, f"kill-{service}", lambda: rig.system.kill(service),
                        lambda: rig.system.restart(service), KILL_OUTAGE_S, expect_503={"identify", "enrol"},
                        blamed=service)
    assert summary["restarted"] == {service}


def test_postgres_stopped_for_ten_seconds(rig: Rig) -> None:
    summary = _exercise(rig, "postgres", rig.postgres.stop, rig.postgres.start, STOP_OUTAGE_S,
                        expect_503={"identify", "enrol"}, blamed="catalog")
    assert summary["restarted"] == set()


def test_s3_stopped_for_ten_seconds(rig: Rig) -> None:
    # Identify reads nothing from S3 (its answers stay 200); storing a photo needs it.
    summary = _exercise(rig, "s3", rig.s3.kill, rig.s3.start, STOP_OUTAGE_S, expect_503={"enrol"},
                        blamed="catalog")
    assert summary["restarted"] == set()


def test_a_full_disk_fails_the_matchers_snapshots_not_its_callers(rig: Rig) -> None:
    if rig.no_tiny_fs:
        pytest.fail(f"the matcher's disk cannot be filled here: {rig.no_tiny_fs}")
    matcher = rig.system.urls["matcher"]
    ballast: list[Path] = []

    def fill_disk() -> None:
        ballast.append(fill(rig.snapshot_dir))

    # Under load, with the disk full throughout: the matcher's timer fails to snapshot, callers see nothing
    # of it, the job finishes.
    summary = _exercise(rig, "disk", fill_disk, lambda: None, STOP_OUTAGE_S / 2, expect_503=set(), blamed=None)
    assert summary["statuses"].get(("identify", 503), 0) == 0
    with httpx.Client(base_url=matcher, timeout=30) as client:
        applied = client.get("/v1/indexes").json()["applied_seq"]
        snapshot = client.post("/v1/snapshot")
        threshold = client.put(f"/v1/orgs/{rig.gallery.id}/threshold", json={"threshold": 0.6})
        ready = client.get("/readyz")
        for refused in (snapshot, threshold):
            assert refused.status_code == 503, refused.text
            assert refused.headers["content-type"].startswith("application/problem+json")
            assert int(refused.headers["Retry-After"]) >= 1
            assert refused.json()["dependency"] == "object store"
        assert ready.status_code == 200, ready.text  # searches and writes still work: it stays in service

        # Room again: the matcher's own timer writes the snapshot.
        ballast.pop().unlink()
        wait_for(lambda: _manifest_seq(rig.snapshot_dir) >= applied, "the timer's snapshot once the disk has room")

        # Room for the largest of the snapshot's objects, not for all of them: a write that fails half-way
        # leaves nothing behind.
        sizes = sorted((rig.snapshot_dir / o).stat().st_size for o in _manifest_objects(rig.snapshot_dir))
        assert len(sizes) >= 2 and sum(sizes) > sizes[-1] + 16384, sizes
        fill(rig.snapshot_dir, leave_bytes=sizes[-1] + 8192)
        try:
            half_way = client.post("/v1/snapshot")
            partial = _objects_outside_manifest(rig.snapshot_dir)
        finally:
            (rig.snapshot_dir / "ballast").unlink()
    assert half_way.status_code == 503, half_way.text
    assert partial == [], f"objects of the failed snapshot left behind: {partial}"

    # A matcher killed now starts from that snapshot, and its start-up reconciliation agrees.
    rig.system.kill("matcher")
    rig.system.restart("matcher")
    with httpx.Client(base_url=matcher, timeout=30) as client:
        report = client.get("/v1/reconciliation").json()
    assert report["status"] == "consistent" and report["trigger"] == "start", report
    assert_matcher_equals_catalogue(rig)


def _manifest(snapshot_dir: Path) -> dict:
    manifest = snapshot_dir / "matcher" / "shard-0-of-1" / "manifest.json"
    return json.loads(manifest.read_text()) if manifest.exists() else {"applied_seq": -1, "indexes": []}


def _manifest_seq(snapshot_dir: Path) -> int:
    return int(_manifest(snapshot_dir)["applied_seq"])


def _manifest_objects(snapshot_dir: Path) -> set[str]:
    return {entry["object"] for entry in _manifest(snapshot_dir)["indexes"]}


def _objects_outside_manifest(snapshot_dir: Path) -> list[str]:
    """Snapshot objects on the matcher's disk that its manifest does not name."""
    named = _manifest_objects(snapshot_dir)
    stored = {p.relative_to(snapshot_dir).as_posix() for p in (snapshot_dir / "matcher").rglob("*.npz")}
    return sorted(stored - named)
