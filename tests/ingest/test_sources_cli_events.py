"""The embedded default ingests out of the box (its gateway runs a worker): the CLI contract, the
server-sent events, archive and S3 jobs, failures listed with reasons, the results export, roles."""

from __future__ import annotations

import csv
import io
import json
import threading
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from minio import Minio

from finprint_testing.s3 import S3Server
from finprint_testing.system import RunningSystem, embedded_system
from tests.e2e.conftest import KeyMaker
from tests.ingest.conftest import run_ingest_cli, write_manifest

pytestmark = [pytest.mark.slow, pytest.mark.servers]
FINISHED = {"completed", "failed", "cancelled"}


@pytest.fixture(scope="module")
def embedded(tmp_path_factory: pytest.TempPathFactory,
             s3_server: S3Server) -> Iterator[tuple[RunningSystem, KeyMaker]]:
    tmp = tmp_path_factory.mktemp("embedded-ingest")
    # The test's S3 server is on loopback, which the outbound guard refuses unless allowed.
    env = {"FINPRINT_GATEWAY_INGEST_POLL_S": "0.2", "FINPRINT_GATEWAY_OUTBOUND_ALLOW": s3_server.endpoint}
    with embedded_system(tmp / "data", tmp, env=env) as system:
        yield system, KeyMaker(["--data-dir", str(tmp / "data")])


@pytest.fixture(scope="module")
def photos(humpback_photos: tuple[dict[str, list[Path]], list[Path]]) -> list[Path]:
    _, unnamed = humpback_photos
    return unnamed[200:212]


def _wait_finished(api: httpx.Client, job_id: str) -> dict:
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        job = api.get(f"/v1/ingest/jobs/{job_id}").json()
        if job["status"] in FINISHED:
            return job
        time.sleep(0.2)
    raise AssertionError(f"job {job_id} did not finish: {job}")


def test_cli_uploads_follows_and_prints_the_summary_last(embedded, photos: list[Path], tmp_path: Path) -> None:
    system, keys = embedded
    rows = [{"image": p.name, "latitude": "-33.9", "longitude": "18.4"} for p in photos[:6]]
    rows.append({"image": "broken.jpg"})
    rows.append({"image": "never-there.jpg"})
    manifest = write_manifest(tmp_path, rows, {**{p.name: p for p in photos[:6]}, "broken.jpg": b"\x00" * 900})
    summary = run_ingest_cli(manifest, system.gateway_url, keys("cli-lab", "contributor"))
    assert {"job_id", "total", "done", "failed", "duplicates"} <= set(summary)
    assert summary["status"] == "completed" and summary["total"] == 8
    assert summary["done"] + summary["failed"] + summary["duplicates"] == 8
    assert summary["failed"] >= 2  # the broken file and the one never uploaded, at least


def test_events_stream_progress_then_end(embedded, photos: list[Path]) -> None:
    system, keys = embedded
    chosen = photos[6:10]
    manifest = "image,observer\n" + "".join(f"{p.name},sse\n" for p in chosen)
    with httpx.Client(base_url=system.gateway_url, headers={"X-API-Key": keys("sse-lab", "contributor")},
                      timeout=60) as api:
        job = api.post("/v1/ingest/jobs", files={"manifest": ("m.csv", manifest.encode(), "text/csv")}).json()
        assert job["status"] == "pending" and job["total"] == 4
        events: list[tuple[str, dict]] = []

        def listen() -> None:
            with api.stream("GET", f"/v1/ingest/jobs/{job['id']}/events") as stream:
                name = None
                for line in stream.iter_lines():
                    if line.startswith("event:"):
                        name = line.split(":", 1)[1].strip()
                    elif line.startswith("data:") and name:
                        events.append((name, json.loads(line.split(":", 1)[1])))
                        if name == "end":
                            return

        listener = threading.Thread(target=listen)
        listener.start()
        for path in chosen:
            assert api.put(f"/v1/ingest/jobs/{job['id']}/files/{path.name}", content=path.read_bytes()).status_code == 200
        api.post(f"/v1/ingest/jobs/{job['id']}:start")
        listener.join(300)
    assert not listener.is_alive()
    names = [name for name, _ in events]
    assert names[0] == "progress" and names[-1] == "end" and names.count("end") == 1
    assert events[0][1]["status"] == "pending"
    finished = [e["done"] + e["failed"] + e["duplicates"] for _, e in events]
    assert finished == sorted(finished) and finished[-1] == 4
    assert events[-1][1]["status"] == "completed" and events[-1][1]["images_per_second"] > 0


def test_zip_archive_with_manifest_and_results_export(embedded, photos: list[Path]) -> None:
    system, keys = embedded
    chosen = photos[10:12]
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as zipped:
        for path in chosen:
            zipped.write(path, f"trip/{path.name}")
        zipped.writestr("manifest.csv", "image,individual_id,species\n" + "".join(
            f"trip/{p.name},ZA-{n},humpback_whale\n" for n, p in enumerate(chosen)))
    with httpx.Client(base_url=system.gateway_url, headers={"X-API-Key": keys("zip-lab", "contributor")},
                      timeout=60) as api:
        job = api.post("/v1/ingest/jobs", files={"archive": ("trip.zip", archive.getvalue(), "application/zip")})
        assert job.status_code == 201, job.text
        final = _wait_finished(api, job.json()["id"])
        exported = api.get(f"/v1/ingest/jobs/{final['id']}/results.csv")
        codes = {i["catalogue_code"] for i in api.get("/v1/individuals").json()["items"]}
    assert final["done"] == 2  # named photos are taken whole even where the detector sees nothing
    rows = list(csv.DictReader(io.StringIO(exported.text)))
    assert sorted(r["image"] for r in rows) == sorted(f"trip/{p.name}" for p in chosen)
    assert {r["individual_id"] for r in rows} == {"ZA-0", "ZA-1"} == codes
    assert {"candidate_1", "candidate_5_score", "new_individual"} <= set(rows[0])


def test_s3_prefix_job(embedded, photos: list[Path], s3_server: S3Server) -> None:
    system, keys = embedded
    client = Minio(s3_server.endpoint, access_key=s3_server.access_key, secret_key=s3_server.secret_key, secure=False)
    bucket = "ingest-archive"
    if not client.bucket_exists(bucket):
        client.make_bucket(bucket)
    for path in photos[:3]:
        client.fput_object(bucket, f"2019/{path.name}", str(path))
    client.put_object(bucket, "2019/notes.txt", io.BytesIO(b"not a photo"), 11)
    source = {"endpoint": s3_server.endpoint, "bucket": bucket, "prefix": "2019/", "secure": False,
              "access_key": s3_server.access_key, "secret_key": s3_server.secret_key}
    with httpx.Client(base_url=system.gateway_url, headers={"X-API-Key": keys("s3-lab", "contributor")},
                      timeout=60) as api:
        created = api.post("/v1/ingest/jobs", json={"name": "bucket", "s3": source})
        assert created.status_code == 201, created.text
        assert created.json()["total"] == 3 and "secret_key" not in created.json()["s3"]
        final = _wait_finished(api, created.json()["id"])
    assert final["status"] == "completed" and final["done"] + final["failed"] == 3


def test_viewers_read_contributors_create(embedded, photos: list[Path]) -> None:
    system, keys = embedded
    manifest = {"manifest": ("m.csv", b"image\na.jpg\n", "text/csv")}
    with httpx.Client(base_url=system.gateway_url, headers={"X-API-Key": keys("roles-lab", "viewer")}) as viewer:
        assert viewer.post("/v1/ingest/jobs", files=manifest).status_code == 403
        assert viewer.get("/v1/ingest/jobs").status_code == 200
    with httpx.Client(base_url=system.gateway_url, headers={"X-API-Key": keys("roles-lab", "contributor")}) as api:
        refused = api.post("/v1/ingest/jobs", files={"manifest": ("m.csv", b"photo\na.jpg\n", "text/csv")})
        assert refused.status_code == 422 and "image" in refused.json()["detail"]
        job = api.post("/v1/ingest/jobs", files=manifest).json()
    with httpx.Client(base_url=system.gateway_url, headers={"X-API-Key": keys("other-lab", "admin")}) as other:
        assert other.get(f"/v1/ingest/jobs/{job['id']}").status_code == 404
