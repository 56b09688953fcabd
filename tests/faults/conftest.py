"""The running system with parts to break: the five services as separate processes on a PostgreSQL
cluster and an S3 server of this module's own (so stopping them harms no other test), the matcher's
snapshots on a small tmpfs that a test can fill, and a bounded load of real photos.

What every fault test checks, whatever it broke:

- callers get 200, or a 503 problem+json with Retry-After (never a 500, never a hang past the client's
  timeout);
- once the part is back, requests succeed again without restarting anything else;
- an ingest job running meanwhile finishes with every photo stored exactly once (counted in the
  catalogue's own tables), and an enrolling client that retries its 503s with its idempotency key
  stores each photo exactly once;
- the matcher's indexes equal the catalogue's embeddings, counted here from the database and by the
  matcher's own reconciliation.
"""

from __future__ import annotations

import csv
import io
import itertools
import queue
import threading
import time
import zipfile
from collections import Counter
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
from sqlalchemy import create_engine, text

from finprint.objectstore import S3ObjectStore
from finprint_testing.faults import (
    FaultableSystem,
    PrivatePostgres,
    PrivateS3,
    faultable_services,
    private_postgres,
    private_s3,
    tiny_filesystem,
)
from tests.photos import labelled_photos

CLIENT_TIMEOUT_S = 60.0
"""The load's client timeout: a request still unanswered after it is a hang (the test fails)."""
ENROL_DEADLINE_S = 150.0
SNAPSHOT_FS_BYTES = 24 * 1024 * 1024
FAST_INGEST = {"INGEST_LEASE_S": "2", "INGEST_MAX_ATTEMPTS": "3", "INGEST_BATCH_SIZE": "4", "INGEST_POLL_S": "0.2"}
"""Leases of 2 s instead of 60 and 3 attempts instead of 5: the same protocol on a faster clock, where a
10 s outage outlasts the attempts an item has (as a 6-minute outage does with the defaults). Attempts are
for workers that die; an outage of a service must not use them up."""
MANIFEST_COLUMNS = ["image", "observed_at", "latitude", "longitude", "location", "observer", "species",
                    "individual_id"]


@dataclass
class Rig:
    system: FaultableSystem
    postgres: PrivatePostgres
    s3: PrivateS3
    database_url: str
    snapshot_dir: Path
    gallery: Org
    photos: Photos
    no_tiny_fs: str | None = None
    """Why the snapshot folder is not a small filesystem of its own (None: it is)."""
    env: dict[str, str] = field(default_factory=dict)
    """The settings the services run with (peer URLs aside)."""
    _orgs: itertools.count = field(default_factory=itertools.count)

    @property
    def url(self) -> str:
        return self.system.gateway_url

    def new_org(self, slug: str) -> Org:
        return make_org(self.system, f"{slug}-{next(self._orgs)}")


@dataclass(frozen=True)
class Org:
    id: str
    slug: str
    key: str


@dataclass(frozen=True)
class Photos:
    """Real humpback photos (never copied into the repository), split by use."""

    gallery: list[tuple[str, list[Path]]]  # (code, photos) enrolled once into the gallery organisation
    queries: list[Path]  # other photos of the gallery's whales: the identify load
    named: list[tuple[str, list[Path]]]  # per test: ingested with their individual's code
    unnamed: list[Path]  # per test: ingested and enrolled without a code


def make_org(system: FaultableSystem, slug: str) -> Org:
    """An organisation and a contributor key, made through the catalog's API as an operator would."""
    with httpx.Client(base_url=system.urls["catalog"], timeout=30) as catalog:
        created = catalog.post("/v1/orgs", json={"slug": slug, "name": slug})
        assert created.status_code == 201, created.text
        org_id = created.json()["id"]
        key = catalog.post(f"/v1/orgs/{org_id}/api-keys", json={"name": "faults", "role": "contributor"})
        assert key.status_code == 201, key.text
    return Org(org_id, slug, key.json()["key"])


@pytest.fixture(scope="session")
def fault_photos(shared_data: Path) -> Photos:
    by_whale, unnamed = labelled_photos(shared_data)
    whales = [paths for paths in by_whale.values() if len(paths) >= 4]
    gallery = [(f"GAL-{n}", paths[:2]) for n, paths in enumerate(whales[:8])]
    queries = [paths[2] for paths in whales[:8]] + [paths[3] for paths in whales[:8]]
    named = [(f"ING-{n}", paths[:2]) for n, paths in enumerate(whales[8:12])]
    return Photos(gallery, queries, named, sorted(unnamed)[:12])


@pytest.fixture(scope="module")
def rig_env() -> dict[str, str]:
    """More settings for the system of a test module (a module overrides this fixture)."""
    return {}


@pytest.fixture(scope="module")
def rig(tmp_path_factory: pytest.TempPathFactory, fault_photos: Photos, rig_env: dict[str, str]) -> Iterator[Rig]:
    logs = tmp_path_factory.mktemp("fault-logs")
    with (
        private_postgres() as postgres,
        private_s3() as s3,
        _snapshot_folder(tmp_path_factory) as (snapshot_dir, no_tiny_fs),
        postgres.server.fresh_database() as database_url,
    ):
        s3_settings = {"OBJECT_STORE": "s3", "S3_ENDPOINT": s3.server.endpoint,
                       "S3_ACCESS_KEY": s3.server.access_key, "S3_SECRET_KEY": s3.server.secret_key,
                       "S3_BUCKET": "faults", "S3_SECURE": "false", "S3_TIMEOUT_S": "5"}
        env = {
            "FINPRINT_CATALOG_DATABASE_URL": database_url,
            "FINPRINT_CATALOG_AUTO_MIGRATE": "true",
            **{f"FINPRINT_CATALOG_{k}": v for k, v in s3_settings.items()},
            # The matcher keeps its snapshots on its own (small) disk.
            "FINPRINT_MATCHER_OBJECT_STORE": "local",
            "FINPRINT_MATCHER_LOCAL_OBJECT_DIR": str(snapshot_dir),
            "FINPRINT_MATCHER_SYNC_INTERVAL_S": "1",
            "FINPRINT_MATCHER_SNAPSHOT_INTERVAL_S": "3",
            "FINPRINT_GATEWAY_JWT_SECRET": "faults-" + "x" * 40,
            "FINPRINT_GATEWAY_RATE_LIMIT": "100000/minute",
            "FINPRINT_GATEWAY_IDENTIFY_RATE_LIMIT": "100000/minute",
            "FINPRINT_GATEWAY_EMBEDDED_WORKER": "true",
            **{f"FINPRINT_GATEWAY_{k}": v for k, v in FAST_INGEST.items()},
            **rig_env,
        }
        with faultable_services(env, logs) as system:
            gallery = make_org(system, "gallery")
            with httpx.Client(base_url=system.gateway_url, headers={"X-API-Key": gallery.key},
                              timeout=CLIENT_TIMEOUT_S) as api:
                for code, paths in fault_photos.gallery:
                    response = api.post("/v1/encounters", data={"individual_id": code},
                                        files=[("images", (p.name, p.read_bytes(), "image/jpeg")) for p in paths])
                    assert response.status_code == 201, response.text
            yield Rig(system, postgres, s3, database_url, snapshot_dir, gallery, fault_photos, no_tiny_fs, env)


@contextmanager
def _snapshot_folder(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, str | None]]:
    """A small tmpfs for the matcher's snapshots; where mounting is not allowed (not root), a plain folder
    and the reason, so that only the full-disk test fails, saying why, and the other faults still run."""
    with ExitStack() as stack:
        try:
            folder, reason = stack.enter_context(tiny_filesystem(SNAPSHOT_FS_BYTES)), None
        except RuntimeError as exc:
            folder, reason = tmp_path_factory.mktemp("matcher-snapshots"), str(exc)
        yield folder, reason


# -- the load -----------------------------------------------------------------------------------------


@dataclass
class Answer:
    kind: str
    status: int | None  # None: the client gave up (a hang) or could not connect
    retry_after: str | None
    content_type: str
    problem_type: str | None
    error: str | None = None
    body: dict | None = field(default=None, repr=False)
    seconds: float = 0.0
    at: float = field(default_factory=time.monotonic)

    @property
    def dependency(self) -> str | None:
        return self.body.get("dependency") if self.status == 503 and isinstance(self.body, dict) else None


class Load:
    """A few client threads sending a bounded number of requests: identifies of the gallery's whales,
    and an enrolling client that retries a 503 with the same idempotency key (as clients should).

    Each thread stops when told to or at its cap; every answer is recorded.
    """

    def __init__(self, rig: Rig, org: Org, enrol: list[Path], *, identify_threads: int = 2,
                 max_requests: int = 400) -> None:
        self.rig = rig
        self.org = org
        self.answers: list[Answer] = []
        self.enrolled: dict[str, dict] = {}
        self._enrol = enrol
        self._queue: queue.Queue[Path] = queue.Queue()
        self._handed = 0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._max = max_requests
        self._threads = [threading.Thread(target=self._identify, args=(n,), daemon=True)
                         for n in range(identify_threads)]
        self._threads.append(threading.Thread(target=self._enrol_all, daemon=True))

    def __enter__(self) -> Load:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(CLIENT_TIMEOUT_S * 3)

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(CLIENT_TIMEOUT_S * 3)
        assert not any(t.is_alive() for t in self._threads), "a load thread is stuck"

    def _record(self, kind: str, response: httpx.Response | None, error: str | None = None,
                started: float | None = None) -> Answer:
        if response is None:
            answer = Answer(kind, None, None, "", None, error)
        else:
            problem, body = None, None
            if response.headers.get("content-type", "").startswith(("application/problem+json", "application/json")):
                body = response.json()
                problem = body.get("type") if isinstance(body, dict) else None
            answer = Answer(kind, response.status_code, response.headers.get("Retry-After"),
                            response.headers.get("content-type", ""), problem, body=body)
        if started is not None:
            answer.seconds = answer.at - started
        with self._lock:
            self.answers.append(answer)
        return answer

    def _send(self, client: httpx.Client, kind: str, method: str, path: str, **kwargs: object) -> Answer:
        started = time.monotonic()
        try:
            return self._record(kind, client.request(method, path, **kwargs), started=started)  # type: ignore[arg-type]
        except httpx.TimeoutException as exc:
            return self._record(kind, None, f"timed out after {CLIENT_TIMEOUT_S}s: {type(exc).__name__}", started)
        except httpx.TransportError as exc:
            return self._record(kind, None, f"{type(exc).__name__}: {exc}", started)

    def _identify(self, thread: int) -> None:
        photos = self.rig.photos.queries
        with httpx.Client(base_url=self.rig.url, headers={"X-API-Key": self.rig.gallery.key},
                          timeout=CLIENT_TIMEOUT_S) as client:
            for n in range(self._max):
                if self._stop.is_set():
                    return
                photo = photos[(n * 2 + thread) % len(photos)]
                self._send(client, "identify", "POST", "/v1/identify",
                           files={"image": (photo.name, photo.read_bytes(), "image/jpeg")})

    def enrol(self, count: int) -> None:
        """Hand the enrolling client its next ``count`` photos (it sends them one after the other)."""
        for _ in range(count):
            self._queue.put(self._enrol[self._handed])
            self._handed += 1

    def _enrol_all(self) -> None:
        """Enrol each photo handed over (a new individual each), retrying a 503 with the same idempotency
        key, as a client should; gives up only at its deadline (the assertions then say so)."""
        deadline = time.monotonic() + ENROL_DEADLINE_S
        with httpx.Client(base_url=self.rig.url, headers={"X-API-Key": self.org.key},
                          timeout=CLIENT_TIMEOUT_S) as client:
            while time.monotonic() < deadline:
                try:
                    photo = self._queue.get(timeout=0.1)
                except queue.Empty:
                    if self._stop.is_set():
                        return
                    continue
                n = self._enrol.index(photo)
                key = f"fault-enrol-{self.org.slug}-{n}"
                while time.monotonic() < deadline:
                    answer = self._send(client, "enrol", "POST", "/v1/encounters",
                                        headers={"Idempotency-Key": key}, data={"individual_id": f"EN-{n}"},
                                        files=[("images", (photo.name, photo.read_bytes(), "image/jpeg"))])
                    if answer.status == 201:
                        self.enrolled[photo.name] = answer.body or {}
                        break
                    if answer.status not in {None, 503}:
                        break  # recorded; the assertions name it
                    time.sleep(min(float(answer.retry_after or 1), 0.5))

    # -- reading the answers ---------------------------------------------------------------------

    def successes_since(self, since: float, kind: str = "identify") -> int:
        with self._lock:
            return sum(a.kind == kind and a.status in {200, 201} and a.at >= since for a in self.answers)

    def count(self, kind: str | None = None) -> int:
        with self._lock:
            return sum(kind is None or a.kind == kind for a in self.answers)


def assert_only_ok_or_503(answers: list[Answer]) -> Counter:
    """Every answer a 2xx, or a 503 problem+json with a Retry-After of at least one second."""
    statuses: Counter = Counter((a.kind, a.status) for a in answers)
    bad = [a for a in answers if a.status not in {200, 201, 503}]
    assert not bad, f"answers other than 2xx/503: {bad[:5]} (all: {dict(statuses)})"
    for answer in answers:
        if answer.status == 503:
            assert answer.content_type.startswith("application/problem+json"), answer
            assert answer.retry_after is not None and int(answer.retry_after) >= 1, answer
    return statuses


# -- ingestion ------------------------------------------------------------------------------------------


def ingest_archive(rig: Rig, org: Org, named: list[tuple[str, list[Path]]], unnamed: list[Path]) -> dict:
    """A ZIP with its manifest: photos naming their individual, and photos for review."""
    rows, buffer = [], io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for code, paths in named:
            for path in paths:
                archive.write(path, f"named/{path.name}")
                rows.append({"image": f"named/{path.name}", "species": "humpback_whale", "individual_id": code,
                             "observed_at": "2019-07-01T10:00:00Z"})
        for path in unnamed:
            archive.write(path, f"unnamed/{path.name}")
            rows.append({"image": f"unnamed/{path.name}", "observer": "archive"})
        manifest = io.StringIO()
        writer = csv.DictWriter(manifest, MANIFEST_COLUMNS)
        writer.writeheader()
        writer.writerows(rows)
        archive.writestr("manifest.csv", manifest.getvalue())
    with httpx.Client(base_url=rig.url, headers={"X-API-Key": org.key}, timeout=CLIENT_TIMEOUT_S) as api:
        response = api.post("/v1/ingest/jobs", data={"name": f"{org.slug}-archive"},
                            files={"archive": ("archive.zip", buffer.getvalue(), "application/zip")})
    assert response.status_code == 201, response.text
    job = response.json()
    assert job["total"] == len(rows)
    return job


def wait_for(condition, what: str, timeout_s: float = 120.0, interval_s: float = 0.2):  # noqa: ANN001, ANN201
    """Poll ``condition`` until it returns something truthy; fail naming ``what`` after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    last: object = None
    while time.monotonic() < deadline:
        try:
            last = condition()
        except (httpx.HTTPError, OSError) as exc:
            last = exc
        else:
            if last:
                return last
        time.sleep(interval_s)
    raise AssertionError(f"{what}: not after {timeout_s:.0f}s (last: {last!r})")


def job_items(rig: Rig, job_id: str) -> list[dict]:
    with _engine(rig) as db:
        return [dict(r._mapping) for r in db.execute(text(
            "SELECT id, item_key, status, error, attempts, media_id FROM ingest_items WHERE job_id = :job"),
            {"job": job_id})]


def done_items(rig: Rig, job_id: str) -> int:
    return sum(i["status"] in {"done", "failed", "skipped"} for i in job_items(rig, job_id))


def wait_for_job(rig: Rig, org: Org, job_id: str, timeout_s: float = 150.0) -> dict:
    def finished() -> dict | None:
        with httpx.Client(base_url=rig.url, headers={"X-API-Key": org.key}, timeout=10) as api:
            response = api.get(f"/v1/ingest/jobs/{job_id}")
        return response.json() if response.status_code == 200 and response.json()["status"] == "completed" else None

    return wait_for(finished, f"ingest job {job_id} completed", timeout_s)


class _engine:
    def __init__(self, rig: Rig) -> None:
        self.engine = create_engine(rig.database_url)

    def __enter__(self):  # noqa: ANN204
        self.connection = self.engine.connect()
        return self.connection

    def __exit__(self, *exc: object) -> None:
        self.connection.close()
        self.engine.dispose()


def catalogue_rows(rig: Rig, org_id: str) -> dict[str, object]:
    """What the catalogue holds for an organisation, counted in its own tables."""
    with _engine(rig) as db:
        media = Counter(db.execute(text("SELECT sha256 FROM media WHERE org_id = :o"), {"o": org_id}).scalars())
        encounters = db.execute(text("SELECT count(*) FROM encounters WHERE org_id = :o"), {"o": org_id}).scalar_one()
        orphans = db.execute(text(
            "SELECT count(*) FROM media WHERE org_id = :o AND encounter_id IS NULL"), {"o": org_id}).scalar_one()
        individuals = db.execute(text(
            "SELECT count(*) FROM individuals WHERE org_id = :o"), {"o": org_id}).scalar_one()
    return {"media": media, "encounters": encounters, "unlinked_media": orphans, "individuals": individuals}


def indexed_in_catalogue(rig: Rig) -> dict[tuple[str, str, str], int]:
    """Embeddings the matcher should hold, per (org, species, model): counted from the database here."""
    with _engine(rig) as db:
        rows = db.execute(text(
            "SELECT e.org_id, i.species_key, e.model_version, count(*) FROM embeddings e "
            "JOIN annotations a ON a.id = e.annotation_id "
            "JOIN individuals i ON i.id = a.individual_id JOIN species s ON s.key = i.species_key "
            "WHERE i.status = 'active' AND s.is_cetacean GROUP BY e.org_id, i.species_key, e.model_version"))
        return {(o, g, m): n for o, g, m, n in rows}


def assert_matcher_equals_catalogue(rig: Rig) -> dict:
    """The matcher's indexes hold exactly the catalogue's embeddings: sizes against the database's own
    count, and the matcher's reconciliation (ids and individuals) finding nothing to repair."""
    matcher = rig.system.urls["matcher"]
    with httpx.Client(base_url=matcher, timeout=60) as client:
        assert client.post("/v1/sync").status_code == 200
        expected = indexed_in_catalogue(rig)
        indexes = client.get("/v1/indexes").json()["indexes"]
        held = {(i["org_id"], i["species_group"], i["model_version"]): i["size"] for i in indexes if i["size"]}
        assert held == expected
        report = client.post("/v1/reconcile").json()
    assert report["status"] == "consistent", report
    assert report["embeddings"] == sum(expected.values())
    return report


def assert_stored_once(rig: Rig, org: Org, job: dict, load: Load, named: list[tuple[str, list[Path]]],
                       enrol: list[Path]) -> None:
    """Every photo of the job and every photo the client enrolled is in the catalogue exactly once."""
    items = job_items(rig, job["id"])
    assert {i["status"] for i in items} <= {"done", "failed", "skipped"}
    failed = {i["item_key"]: i["error"] for i in items if i["status"] == "failed"}
    # A dependency that failed must never cost a photo: only photos with no whale in them may fail.
    assert all(error.startswith("no cetacean was found") for error in failed.values()), failed
    assert not [key for key in failed if key.startswith("named/")], failed
    assert job["done"] + job["failed"] + job["duplicates"] == job["total"]
    assert job["duplicates"] == 0, [i for i in items if i["status"] == "skipped"]
    assert set(load.enrolled) == {p.name for p in enrol}, "the enrolling client did not finish"
    rows = catalogue_rows(rig, org.id)
    done = sum(i["status"] == "done" for i in items)
    assert set(rows["media"].values()) <= {1}, "a photo stored twice"
    assert sum(rows["media"].values()) == done + len(enrol) == rows["encounters"]
    assert rows["unlinked_media"] == 0
    assert rows["individuals"] == len(named) + len(enrol)
    # Staged uploads are removed once their item is done (a failed one stays for a look).
    staged = set(S3ObjectStore(rig.s3.server.endpoint, rig.s3.server.access_key, rig.s3.server.secret_key,
                               "faults", secure=False).list(f"ingest/{org.id}/{job['id']}/"))
    assert staged == {f"ingest/{org.id}/{job['id']}/{i['id']}" for i in items if i["status"] == "failed"}
