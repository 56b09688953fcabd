"""A bounded load test: mixed traffic at twice the system's own c=8 identify throughput.

    .venv/bin/python -m bench.bench_load [--full] [--duration 60] [--json out.json]

The five services run as SEPARATE processes on loopback (``finprint serve``) on PostgreSQL and the
S3 server (SeaweedFS), as in the end-to-end benchmark, with the deployment's DEFAULT rate limits
(``FINPRINT_GATEWAY_RATE_LIMIT`` 600/minute and ``..._IDENTIFY_RATE_LIMIT`` 120/minute per key).
A gallery of real photos (humpbacks, right whales, belugas from ../shared/data) is enrolled first.
The load generator is locust, run headless from Python (its library API, FastHttpUser), on
127.0.0.1, for a fixed duration; never an open-ended stream.

1. **c=8**: eight locust users send ``POST /v1/identify`` back to back for ``--c8-duration``
   seconds with held-out photos of the gallery's individuals: the system's identify throughput at
   concurrency 8, measured in this run (the bench page's e2e figure is printed beside it).
2. **Load**: for ``--duration`` seconds, ``--researchers`` locust users each keep a constant
   request rate (``constant_throughput``) so that all users together offer TWICE that throughput,
   in a mix of identify (with and without ``store=true``), enrolment of new photos, review
   decisions on the identifications they stored, and reads (individuals, an individual, encounters,
   the review queue, stats, a media URL, ``encounters.csv``). Each request goes out on the next of
   ``--keys`` API keys of the lab (reviewer role), so no key nears its quota. Twelve more users share
   ONE partner key and send identify at twice its quota: their 429s are the rate limiter's.

Reported per route: requests, answers by status, p50/p95/p99 of the 2xx answers, the rate. Checked:
no 5xx and no transport error or timeout; every 429 is the rate limiter's problem
(``application/problem+json``, type ``.../rate-limited``, with Retry-After); every photo stored
(enrolment 201s, identify ``store=true`` answers with a media id) is in the catalogue once (its
media count afterwards). A benchmark: it prints and writes JSON; the bench page renders it.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import itertools
import json
import os
import random
import sys
import tempfile
import time
import uuid
from collections import defaultdict
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.arguments import BenchmarkParser

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data"
HUMPBACKS = DATA / "kaggle_humpback2019"
PROBLEM_TYPE_RATE_LIMITED = "https://finprint.dev/problems/rate-limited"
PARTNER_USERS = 12
"""Users sharing the partner key, each at a twelfth of its 2x-quota rate: enough that the rate holds
while answers take up to 3 s (a user waits for its answer; once the key is over quota, 429s are fast)."""
PARTNER_QUOTA_PER_S = 120 / 60  # the default identify quota per key
PER_USER_RATE_MAX = 0.5
"""Requests/s one researcher keeps at most: more users rather than faster ones, so that the offered
rate holds while answers slow down (a user waits for its answer before its next request)."""
# Task weights of a researcher: identify is the bulk, then reads; writes are the rarer part.
MIX = {
    "identify": 6,
    "identify_store": 1,
    "enrol": 1,
    "decide": 1,
    "individuals": 2,
    "individual": 2,
    "encounters": 1,
    "review_queue": 1,
    "stats": 1,
    "media_url": 1,
    "export_csv": 1,
}
ROUTES = {
    "identify": "POST /v1/identify",
    "identify_store": "POST /v1/identify?store=true",
    "enrol": "POST /v1/encounters",
    "decide": "POST /v1/identifications/{id}:decide",
    "individuals": "GET /v1/individuals",
    "individual": "GET /v1/individuals/{ref}",
    "encounters": "GET /v1/encounters",
    "review_queue": "GET /v1/identifications",
    "stats": "GET /v1/stats",
    "media_url": "GET /v1/media/{id}/url",
    "export_csv": "GET /v1/exports/encounters.csv",
    "partner": "POST /v1/identify (partner key, 2x its quota)",
    "c8": "POST /v1/identify (c=8)",
}


# --- photos --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Photo:
    name: str
    data: bytes
    individual: str = ""


@dataclass
class Pools:
    gallery: dict[str, list[Path]]
    queries: list[Photo]
    """Held-out photos of the gallery's individuals: identify without storing (reused)."""
    enrol: list[Photo]
    """One photo each of humpbacks not in the gallery, with their code: each enrolled once."""
    store: list[Photo]
    """Unlabelled humpback photos: each identified with store=true once."""


def photo_pools(gallery_size: int, enrol_count: int, store_count: int) -> Pools:
    """Disjoint sets of real photos; no two photos of the run have the same bytes (so nothing
    the run stores is a duplicate and the media count afterwards can be checked)."""
    from bench.bench_e2e import gallery_and_queries

    gallery, query_paths = gallery_and_queries(gallery_size)
    seen: set[str] = set()

    def unique(path: Path) -> bytes | None:
        data = path.read_bytes()
        digest = hashlib.sha256(data).hexdigest()
        if digest in seen:
            return None
        seen.add(digest)
        return data

    for paths in gallery.values():
        for path in paths:
            unique(path)
    queries = [Photo(p.name, p.read_bytes()) for p in query_paths]
    used = {p for paths in gallery.values() for p in paths} | set(query_paths)
    gallery_codes = set(gallery)
    labelled: dict[str, list[Path]] = defaultdict(list)
    unlabelled: list[Path] = []
    with open(HUMPBACKS / "labels.csv", newline="") as handle:
        for row in csv.DictReader(handle):
            path = HUMPBACKS / "images" / row["image"]
            if path in used:
                continue
            (labelled[row["individual_id"]] if row["individual_id"] else unlabelled).append(path)
    rng = random.Random(20)
    enrol = []
    for individual in sorted(labelled):
        if f"HW-{individual}" in gallery_codes:
            continue
        data = unique(sorted(labelled[individual])[0])
        if data is not None:
            enrol.append(Photo(f"{individual}.jpg", data, f"LOAD-{individual}"))
    rng.shuffle(enrol)
    rng.shuffle(unlabelled)
    store = []
    for path in unlabelled:
        if len(store) >= store_count:
            break
        data = unique(path)
        if data is not None:
            store.append(Photo(path.name, data))
    if len(enrol) < enrol_count or len(store) < store_count:
        raise SystemExit(f"not enough distinct photos: {len(enrol)} to enrol, {len(store)} to store")
    return Pools(gallery, queries, enrol[:enrol_count], store)


def multipart(field_name: str, photo: Photo, **fields: str) -> tuple[bytes, str]:
    from urllib3 import encode_multipart_formdata

    body, content_type = encode_multipart_formdata(
        {field_name: (photo.name, photo.data, "image/jpeg"), **fields}
    )
    return body, content_type


# --- the deployment --------------------------------------------------------------------------------


@contextmanager
def deployment(workdir: Path) -> Iterator[tuple[dict[str, str], str]]:
    """Postgres + S3 + the five services as processes with the default rate limits; their URLs and
    an admin API key."""
    import subprocess

    from bench import SHARED_CORES_MODEL_SETTINGS
    from bench.bench_e2e import QUIET
    from finprint_testing.postgres import start_postgres
    from finprint_testing.s3 import start_s3_server
    from finprint_testing.system import separate_services

    with ExitStack() as stack:
        postgres = stack.enter_context(start_postgres())
        database_url = stack.enter_context(postgres.fresh_database())
        s3 = stack.enter_context(start_s3_server())
        storage = {"OBJECT_STORE": "s3", "S3_ENDPOINT": s3.endpoint, "S3_ACCESS_KEY": s3.access_key,
                   "S3_SECRET_KEY": s3.secret_key, "S3_BUCKET": f"bench-load-{uuid.uuid4().hex[:8]}",
                   "S3_SECURE": "false"}
        env = {
            "FINPRINT_CATALOG_DATABASE_URL": database_url,
            "FINPRINT_CATALOG_AUTO_MIGRATE": "true",
            "FINPRINT_GATEWAY_JWT_SECRET": "bench-secret-" + "x" * 32,
            **QUIET,
            **SHARED_CORES_MODEL_SETTINGS,
            **{f"FINPRINT_CATALOG_{k}": v for k, v in storage.items()},
            **{f"FINPRINT_MATCHER_{k}": v for k, v in storage.items()},
        }
        # The deployment's own rate limits: whatever the environment says, not the benchmark's.
        for name in ("FINPRINT_GATEWAY_RATE_LIMIT", "FINPRINT_GATEWAY_IDENTIFY_RATE_LIMIT"):
            os.environ.pop(name, None)
        system = stack.enter_context(separate_services(env, workdir, timeout_s=300))
        done = subprocess.run(
            [sys.executable, "-m", "finprint.cli", "apikey", "create", "--org", "bench-load", "--role", "admin",
             "--database-url", database_url],
            capture_output=True, text=True, check=True,
        )
        yield system.urls, done.stdout.strip().splitlines()[-1]


def create_keys(gateway: str, admin_key: str, count: int, role: str) -> list[str]:
    import httpx

    keys = []
    with httpx.Client(base_url=gateway, headers={"X-API-Key": admin_key}, timeout=60) as client:
        for n in range(count):
            response = client.post("/v1/api-keys", json={"name": f"load {role} {n}", "role": role})
            response.raise_for_status()
            keys.append(response.json()["key"])
    return keys


def enrol_gallery(gateway: str, key: str, gallery: dict[str, list[Path]]) -> dict[str, Any]:
    """One encounter per individual, sequentially; the media ids and codes it created."""
    import httpx

    media_ids, codes, failures = [], [], 0
    started = time.perf_counter()
    with httpx.Client(base_url=gateway, headers={"X-API-Key": key}, timeout=300) as client:
        for code, paths in gallery.items():
            response = client.post(
                "/v1/encounters",
                files=[("images", (p.name, p.read_bytes(), "image/jpeg")) for p in paths],
                data={"individual_id": code},
                headers={"Idempotency-Key": f"gallery-{code}"},
            )
            if response.status_code != 201:
                failures += 1
                continue
            codes.append(code)
            media_ids += [m["id"] for m in response.json()["media"]]
    return {"photos": len(media_ids), "individuals": len(codes), "failures": failures,
            "wall_s": time.perf_counter() - started, "media_ids": media_ids, "codes": codes}


def catalogue_media(gateway: str, key: str) -> int:
    import httpx

    return int(httpx.get(f"{gateway}/v1/stats", headers={"X-API-Key": key}, timeout=60).json()["media"])


# --- recording answers -------------------------------------------------------------------------------


@dataclass
class RouteRecord:
    statuses: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    ok_ms: list[float] = field(default_factory=list)
    limiter_429: int = 0
    other_429: int = 0
    server_errors: list[str] = field(default_factory=list)
    """The first few 5xx / transport failures: status and the start of the body."""


class Recorder:
    """Every answer by route, from locust's request event."""

    def __init__(self) -> None:
        self.routes: dict[str, RouteRecord] = defaultdict(RouteRecord)
        self.first_start: float | None = None
        self.last_end: float = 0.0
        self.stored_media: set[str] = set()
        self.enrolled_media: set[str] = set()
        self.cpu_s = 0.0
        """CPU seconds of the load generator (this process) during the phase."""

    def __call__(self, request_type: str, name: str, response_time: float, response: Any = None,
                 exception: BaseException | None = None, start_time: float | None = None, **_: Any) -> None:
        record = self.routes[name]
        now = time.time()
        self.first_start = min(self.first_start or now, start_time or now)
        self.last_end = max(self.last_end, now)
        status = getattr(response, "status_code", None) or 0
        if not status:
            kind = f"error {type(exception).__name__}" if exception else "error"
            record.statuses[kind] += 1
            if len(record.server_errors) < 5:
                record.server_errors.append(f"{kind}: {exception}"[:300])
            return
        record.statuses[str(status)] += 1
        if 200 <= status < 300:
            record.ok_ms.append(response_time)
        elif status == 429:
            if is_rate_limiter_problem(response):
                record.limiter_429 += 1
            else:
                record.other_429 += 1
        elif status >= 500 and len(record.server_errors) < 5:
            record.server_errors.append(f"{status}: {_text(response)[:300]}")

    def summary(self, wall_s: float) -> list[dict[str, Any]]:
        import numpy as np

        rows = []
        for name, record in sorted(self.routes.items()):
            ms = np.array(record.ok_ms) if record.ok_ms else None
            requests = sum(record.statuses.values())
            rows.append({
                "route": name,
                "requests": requests,
                "rate_per_s": requests / wall_s if wall_s else None,
                "by_status": dict(sorted(record.statuses.items())),
                "ok": len(record.ok_ms),
                "p50_ms": float(np.percentile(ms, 50)) if ms is not None else None,
                "p95_ms": float(np.percentile(ms, 95)) if ms is not None else None,
                "p99_ms": float(np.percentile(ms, 99)) if ms is not None else None,
                "rate_limited_429": record.limiter_429,
                "other_429": record.other_429,
                "server_errors": sum(v for k, v in record.statuses.items() if k.startswith("5")),
                "transport_errors": sum(v for k, v in record.statuses.items() if k.startswith("error")),
                "error_samples": record.server_errors,
            })
        return rows


def _text(response: Any) -> str:
    try:
        return response.text or ""
    except Exception:  # noqa: BLE001 - a body that cannot be read is reported as empty
        return ""


def is_rate_limiter_problem(response: Any) -> bool:
    """A 429 the gateway's rate limiter wrote: problem+json of its type, with Retry-After."""
    headers = response.headers
    content_type = headers.get("content-type") or headers.get("Content-Type") or ""
    retry_after = headers.get("retry-after") or headers.get("Retry-After")
    if not content_type.startswith("application/problem+json") or not retry_after:
        return False
    try:
        return json.loads(_text(response)).get("type") == PROBLEM_TYPE_RATE_LIMITED
    except ValueError:
        return False


# --- the locust users ------------------------------------------------------------------------------


@dataclass
class Plan:
    lab_keys: list[str]
    partner_key: str
    pools: Pools
    codes: list[str]
    media_ids: list[str]
    researchers: int
    per_user_rate: float
    partner_rate: float

    def __post_init__(self) -> None:
        self._keys = itertools.cycle(self.lab_keys)
        self._enrol = iter(self.pools.enrol)
        self._store = iter(self.pools.store)
        self._rng = random.Random(8)

    def key(self) -> str:
        return next(self._keys)

    def next_enrol(self) -> Photo | None:
        return next(self._enrol, None)

    def next_store(self) -> Photo | None:
        return next(self._store, None)

    def choice(self, items: list[Any]) -> Any:
        return self._rng.choice(items)


def user_classes(plan: Plan, phase: str) -> list[type]:
    """The locust user classes of a phase: ``c8`` (identify back to back) or ``load`` (the mix)."""
    from locust import FastHttpUser, constant, constant_throughput, task

    queries = [multipart("image", photo) for photo in plan.pools.queries]
    # The reads of the mix: a GET each, of a fixed path or of a path naming an item of the plan.
    reads: dict[str, Callable[[], str]] = {
        "individuals": lambda: "/v1/individuals?limit=50",
        "individual": lambda: f"/v1/individuals/{plan.choice(plan.codes)}",
        "encounters": lambda: "/v1/encounters?limit=50",
        "review_queue": lambda: "/v1/identifications?decision=pending&limit=50",
        "stats": lambda: "/v1/stats",
        "media_url": lambda: f"/v1/media/{plan.choice(plan.media_ids)}/url",
        "export_csv": lambda: "/v1/exports/encounters.csv",
    }

    class Client(FastHttpUser):
        abstract = True
        network_timeout = 180.0
        connection_timeout = 30.0
        max_retries = 0

        def send(self, method: str, path: str, task_name: str, key: str | None = None,
                 body: tuple[bytes, str] | None = None, json_body: Any = None,
                 headers: dict[str, str] | None = None) -> Any:
            headers = {"X-API-Key": key or plan.key(), **(headers or {})}
            data = None
            if body is not None:
                data, headers["Content-Type"] = body
            return self.client.request(method, path, name=ROUTES[task_name], data=data, json=json_body,
                                       headers=headers)

        def read(self, task_name: str) -> None:
            self.send("GET", reads[task_name](), task_name)

    if phase == "c8":
        class IdentifyAtC8(Client):
            fixed_count = 8
            wait_time = constant(0)

            @task
            def identify(self) -> None:
                self.send("POST", "/v1/identify", "c8", body=plan.choice(queries))

        return [IdentifyAtC8]

    class Researcher(Client):
        """A lab member at the bench: identifies, enrols, reviews what they stored, browses."""

        fixed_count = plan.researchers
        wait_time = constant_throughput(plan.per_user_rate)
        tasks = {(lambda user, name=name: user.read(name)): MIX[name] for name in reads}

        def on_start(self) -> None:
            self.to_review: list[tuple[str, str | None]] = []

        @task(MIX["identify"])
        def identify(self) -> None:
            self.send("POST", "/v1/identify", "identify", body=plan.choice(queries))

        def store(self, task_name: str, path: str, photo: Photo | None, field_name: str, **fields: str) -> Any:
            """POST a photo not sent before (a fresh idempotency key) to be stored; an identify instead
            once the plan has no photo left for it (None then)."""
            if photo is None:
                return self.identify()
            return self.send("POST", path, task_name, body=multipart(field_name, photo, **fields, location="load test"),
                             headers={"Idempotency-Key": uuid.uuid4().hex})

        @task(MIX["identify_store"])
        def identify_store(self) -> None:
            response = self.store("identify_store", "/v1/identify?store=true", plan.next_store(), "image")
            if response is not None and response.status_code == 200:
                answer = response.json()
                if answer.get("media_id"):
                    self.environment.recorder.stored_media.add(answer["media_id"])
                for result in answer.get("results", []):
                    if result.get("identification_id"):
                        top = result["candidates"][0]["individual_id"] if result["candidates"] else None
                        self.to_review.append((result["identification_id"], top))

        @task(MIX["enrol"])
        def enrol(self) -> None:
            photo = plan.next_enrol()
            response = self.store("enrol", "/v1/encounters", photo, "images",
                                  **({"individual_id": photo.individual} if photo else {}))
            if response is not None and response.status_code == 201:
                self.environment.recorder.enrolled_media.update(m["id"] for m in response.json()["media"])

        @task(MIX["decide"])
        def decide(self) -> None:
            if not self.to_review:
                return self.read("review_queue")
            identification, top = self.to_review.pop(0)
            decision = {"decision": "confirmed", "individual_id": top} if top else {"decision": "rejected"}
            self.send("POST", f"/v1/identifications/{identification}:decide", "decide", json_body=decision)

    class Partner(Client):
        """A partner platform sending identify on ONE key at twice its quota."""

        fixed_count = PARTNER_USERS
        wait_time = constant_throughput(plan.partner_rate)

        @task
        def identify(self) -> None:
            self.send("POST", "/v1/identify", "partner", key=plan.partner_key, body=plan.choice(queries))

    return [Researcher, Partner]


def run_phase(gateway: str, plan: Plan, phase: str, duration_s: float) -> tuple[Recorder, float]:
    """Run the phase's users for ``duration_s`` (each finishes the request it is in); the answers
    and the wall time from the first request to the last answer."""
    import gevent
    from locust.env import Environment

    classes = user_classes(plan, phase)
    recorder = Recorder()
    cpu = time.process_time()
    environment = Environment(user_classes=classes, host=gateway, stop_timeout=240)
    environment.recorder = recorder  # type: ignore[attr-defined]
    environment.events.request.add_listener(recorder)
    runner = environment.create_local_runner()
    users = sum(c.fixed_count for c in classes)
    runner.start(users, spawn_rate=users)
    gevent.spawn_later(duration_s, runner.quit)
    runner.greenlet.join()
    wall = recorder.last_end - (recorder.first_start or recorder.last_end)
    recorder.cpu_s = time.process_time() - cpu
    return recorder, wall


def page_c8() -> dict[str, Any] | None:
    """The newest e2e benchmark's identify/s at concurrency 8, by photo kind (the bench page's figure)."""
    found = sorted(REPO.glob("bench/results/*/e2e-*.json"), key=lambda p: p.stat().st_mtime)
    for path in reversed(found):
        try:
            levels = json.loads(path.read_text())["separate"]["levels"]
        except (KeyError, ValueError, TypeError):
            continue
        return {"file": str(path.relative_to(REPO)),
                **{lv["photos"]: lv["throughput_per_s"] for lv in levels if lv["concurrency"] == 8}}
    return None


# --- main --------------------------------------------------------------------------------------------


def parse_args() -> argparse.Namespace:
    parser = BenchmarkParser(__doc__, full="longer: 300 s of load on a 300-photo gallery")
    parser.add_size("--duration", float, quick=60.0, full=300.0, help="seconds of mixed load")
    parser.add_size("--c8-duration", float, quick=20.0, full=60.0, help="seconds of the c=8 measure")
    parser.add_size("--gallery", int, quick=90, full=300, help="photos enrolled first")
    parser.add_argument("--keys", type=int, default=32, help="the lab's API keys the researchers' requests rotate over")
    return parser.parse()


def main() -> None:
    # locust runs on gevent: patch before anything opens a socket (sockets, ssl, subprocess, threads).
    from gevent import monkey

    monkey.patch_all()
    args = parse_args()
    # Enough distinct photos for the writes of the whole run, even if every user wrote back to back.
    writes = int(args.duration * 150 * (MIX["enrol"] + MIX["identify_store"]) / sum(MIX.values()))
    pools = photo_pools(args.gallery, min(writes, 2500), min(writes, 3000))
    results: dict[str, Any] = {"mode": "full" if args.full else "quick", "cpu_cores": os.cpu_count(),
                               "duration_s": args.duration, "c8_duration_s": args.c8_duration, "mix": MIX,
                               "rate_limits": {"default": "600/minute per key",
                                               "identify and enrol": "120/minute per key"}}
    with tempfile.TemporaryDirectory(prefix="finprint-bench-load-") as tmp, deployment(Path(tmp)) as (urls, admin):
        gateway = urls["gateway"]
        print(f"services up: {', '.join(f'{k} {v}' for k, v in urls.items())}", flush=True)
        lab_keys = create_keys(gateway, admin, args.keys, "reviewer")
        [partner_key] = create_keys(gateway, admin, 1, "contributor")
        gallery = enrol_gallery(gateway, lab_keys[0], pools.gallery)
        print(f"gallery enrolled: {gallery['photos']} photos of {gallery['individuals']} individuals "
              f"in {gallery['wall_s']:.0f} s ({gallery['failures']} failed)", flush=True)
        results["gallery"] = {k: v for k, v in gallery.items() if k not in {"media_ids", "codes"}}
        plan = Plan(lab_keys, partner_key, pools, gallery["codes"], gallery["media_ids"], 1, 1.0, 1.0)
        run_phase(gateway, plan, "c8", 5)  # warm-up: connections, sessions, caches

        recorder, wall = run_phase(gateway, plan, "c8", args.c8_duration)
        [c8] = recorder.summary(wall)
        c8_rate = c8["ok"] / wall
        results["c8"] = {**c8, "wall_s": wall, "throughput_per_s": c8_rate, "page": page_c8(),
                         "load_generator_cpu_s": recorder.cpu_s}
        print(f"c=8: {c8['ok']} identify in {wall:.1f} s = {c8_rate:.1f}/s (p50 {c8['p50_ms']:.0f} ms, "
              f"p99 {c8['p99_ms']:.0f} ms, by status {c8['by_status']}); bench page: {results['c8']['page']}",
              flush=True)

        target = 2 * c8_rate
        partner_rate = 2 * PARTNER_QUOTA_PER_S / PARTNER_USERS
        lab_rate = max(target - PARTNER_USERS * partner_rate, 1.0)
        researchers = max(8, int(-(-lab_rate // PER_USER_RATE_MAX)))
        plan = Plan(lab_keys, partner_key, pools, gallery["codes"], gallery["media_ids"], researchers,
                    lab_rate / researchers, partner_rate)
        media_before = catalogue_media(gateway, admin)
        print(f"load: {target:.1f} requests/s offered for {args.duration:.0f} s: {researchers} researchers at "
              f"{plan.per_user_rate:.2f}/s each over {len(lab_keys)} keys, {PARTNER_USERS} partner users at "
              f"{partner_rate:.1f}/s on one key", flush=True)
        recorder, wall = run_phase(gateway, plan, "load", args.duration)
        routes = recorder.summary(wall)
        media_after = catalogue_media(gateway, admin)
        stored = len(recorder.enrolled_media) + len(recorder.stored_media - recorder.enrolled_media)
        answered = sum(r["requests"] for r in routes)
        results["load"] = {
            "target_rate_per_s": target,
            "achieved_rate_per_s": answered / wall,
            "wall_s": wall,
            "researchers": researchers,
            "per_researcher_rate_per_s": plan.per_user_rate,
            "lab_keys": len(lab_keys),
            "partner_users": PARTNER_USERS,
            "partner_rate_per_s": PARTNER_USERS * partner_rate,
            "requests": answered,
            "load_generator_cpu_s": recorder.cpu_s,
            "server_errors": sum(r["server_errors"] for r in routes),
            "transport_errors": sum(r["transport_errors"] for r in routes),
            "rate_limited_429": sum(r["rate_limited_429"] for r in routes),
            "other_429": sum(r["other_429"] for r in routes),
            "media": {"before": media_before, "after": media_after, "stored_by_answers": stored,
                      "expected": media_before + stored},
            "routes": routes,
        }
    print_results(results)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=2, default=str) + "\n")
        print(f"results written to {args.json}")


def print_results(results: dict[str, Any]) -> None:
    load = results["load"]
    print(f"\noffered {load['target_rate_per_s']:.1f}/s (2 x c=8 {results['c8']['throughput_per_s']:.1f}/s), "
          f"answered {load['achieved_rate_per_s']:.1f}/s over {load['wall_s']:.0f} s: {load['requests']} requests, "
          f"5xx {load['server_errors']}, transport errors {load['transport_errors']}, 429 from the rate limiter "
          f"{load['rate_limited_429']}, other 429 {load['other_429']}; media expected {load['media']['expected']}, "
          f"in the catalogue {load['media']['after']}")
    print(f"{'route':<52} {'n':>6} {'/s':>6} {'p50':>7} {'p95':>7} {'p99':>7}  statuses")
    for row in load["routes"]:
        cells = [f"{row[k]:7.0f}" if row[k] is not None else "      –" for k in ("p50_ms", "p95_ms", "p99_ms")]
        print(f"{row['route']:<52} {row['requests']:>6} {row['rate_per_s']:6.2f} {' '.join(cells)}  {row['by_status']}")
        for sample in row["error_samples"]:
            print(f"    {sample}")


if __name__ == "__main__":
    main()
