"""Re-embedding the catalogue with a new model version: images per minute with 1 and 2 workers, and
identify's latency while it runs against identify's latency idle (issue 22: p99 during <= 2x idle).

The five services run as separate processes (``finprint serve``) on loopback, on PostgreSQL and a
local object store, the embedder serving the shipped version and its int8 export beside it
(``finprint_testing.models.two_embedder_versions``). For each worker count a fresh organisation
enrols the same real photos (kaggle_humpback2019, with their individuals) with the shipped version;
then one client identifies held-out photos back to back (concurrency 1) for ``--idle-s`` seconds,
idle, and goes on while ``POST /v1/admin/model-upgrades`` re-embeds the organisation with
``finprint worker --job-id`` processes, until they exit (the job drained and the shards swapped).

    .venv/bin/python -m bench.bench_reembed [--full] [--photos 400] [--workers 1 2] [--json out.json]

A benchmark, not a test: it prints numbers and asserts nothing.
"""

from __future__ import annotations

import csv
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import defaultdict
from pathlib import Path

import httpx
import numpy as np

from bench import SHARED_CORES_MODEL_SETTINGS
from bench.arguments import BenchmarkParser
from finprint_testing.models import two_embedder_versions
from finprint_testing.postgres import start_postgres
from finprint_testing.system import separate_services

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared" / "data"
DATA = SHARED / "kaggle_humpback2019"


def photos(count: int) -> tuple[list[tuple[str, Path]], list[Path]]:
    """(individual, photo) to enrol, and photos of the same individuals held out for identify."""
    with open(DATA / "labels.csv", newline="") as handle:
        rows = [r for r in csv.DictReader(handle) if r["individual_id"]]
    by_whale: dict[str, list[Path]] = defaultdict(list)
    for row in rows:
        by_whale[row["individual_id"]].append(DATA / "images" / row["image"])
    gallery, queries = [], []
    for whale, paths in sorted(by_whale.items()):
        if len(gallery) >= count:
            break
        held_out = len(paths) > 1 and len(queries) < 40
        queries += paths[-1:] if held_out else []
        gallery += [(whale, p) for p in (paths[:-1] if held_out else paths)][: count - len(gallery)]
    return gallery, queries


def admin_key(database_url: str, slug: str) -> str:
    result = subprocess.run([sys.executable, "-m", "finprint.cli", "apikey", "create", "--org", slug, "--role",
                             "admin", "--database-url", database_url], capture_output=True, text=True, check=True)
    return result.stdout.strip().splitlines()[-1]


def enrol(api: httpx.Client, gallery: list[tuple[str, Path]]) -> None:
    for whale, path in gallery:
        response = api.post("/v1/encounters", data={"individual_id": whale[:60]},
                            files=[("images", (path.name, path.read_bytes(), "image/jpeg"))])
        if response.status_code != 201 and response.status_code != 422:  # 422: no whale found in the photo
            raise SystemExit(f"enrolment failed: {response.status_code} {response.text[:300]}")


class IdentifyClient:
    """One client identifying back to back; latencies are recorded per phase (idle, re-embedding)."""

    def __init__(self, url: str, key: str, queries: list[Path]) -> None:
        self.url, self.key, self.queries = url, key, queries
        self.phase = "idle"
        self.latencies: dict[str, list[float]] = defaultdict(list)
        self.statuses: dict[str, dict[int, int]] = defaultdict(lambda: defaultdict(int))
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> IdentifyClient:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(60)

    def _run(self) -> None:
        with httpx.Client(base_url=self.url, headers={"X-API-Key": self.key}, timeout=60) as api:
            n = 0
            while not self._stop.is_set():
                photo = self.queries[n % len(self.queries)]
                n += 1
                phase, started = self.phase, time.perf_counter()
                response = api.post("/v1/identify", files={"image": (photo.name, photo.read_bytes(), "image/jpeg")})
                self.statuses[phase][response.status_code] += 1
                if response.status_code == 200:
                    self.latencies[phase].append((time.perf_counter() - started) * 1000)


def percentiles(values: list[float]) -> dict[str, float | int | None]:
    if not values:
        return {"n": 0, "p50_ms": None, "p99_ms": None}
    return {"n": len(values), "p50_ms": round(statistics.median(values), 1),
            "p99_ms": round(float(np.percentile(values, 99)), 1)}


def run(urls: dict[str, str], database_url: str, workers: int, gallery: list[tuple[str, Path]],
        queries: list[Path], version: str, idle_s: float, settings: dict[str, str]) -> dict:
    key = admin_key(database_url, f"reembed-{workers}w-{os.getpid()}")
    api = httpx.Client(base_url=urls["gateway"], headers={"X-API-Key": key}, timeout=120)
    enrol(api, gallery)
    env = {**os.environ, "FINPRINT_GATEWAY_DETECTOR_URL": urls["detector"],
           "FINPRINT_GATEWAY_EMBEDDER_URL": urls["embedder"], "FINPRINT_GATEWAY_MATCHER_URL": urls["matcher"],
           "FINPRINT_GATEWAY_CATALOG_URL": urls["catalog"], "FINPRINT_GATEWAY_LOG_LEVEL": "WARNING", **settings}
    with IdentifyClient(urls["gateway"], key, queries) as client:
        time.sleep(idle_s)
        job = api.post("/v1/admin/model-upgrades", json={"model_version": version})
        job.raise_for_status()
        client.phase = "reembedding"
        started = time.perf_counter()
        processes = [subprocess.Popen([sys.executable, "-m", "finprint.cli", "worker", "--job-id", job.json()["id"],
                                       "--worker-id", f"reembed-{n}", "--log-level", "WARNING"],
                                      stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env)
                     for n in range(workers)]
        reports = [json.loads(p.communicate()[0].strip().splitlines()[-1]) for p in processes]
        wall_s = time.perf_counter() - started
        client.phase = "after"
    final = api.get(f"/v1/ingest/jobs/{job.json()['id']}").json()
    items = sum(r["items"] for r in reports)
    idle, during = percentiles(client.latencies["idle"]), percentiles(client.latencies["reembedding"])
    return {"workers": workers, "bulk_concurrency": int(settings["FINPRINT_GATEWAY_INGEST_BULK_CONCURRENCY"]),
            "images": final["total"], "items": items, "failed": final["failed"],
            "swapped": (final.get("model_upgrade") or {}).get("swapped"), "wall_s": round(wall_s, 2),
            "images_per_minute": round(items / wall_s * 60, 1), "identify_idle": idle, "identify_during": during,
            "p99_ratio": round(during["p99_ms"] / idle["p99_ms"], 2) if during["p99_ms"] and idle["p99_ms"] else None,
            "statuses": {phase: dict(s) for phase, s in client.statuses.items()}}


def main() -> None:
    parser = BenchmarkParser(__doc__, full="400 photos per run, 60 s of idle identify")
    parser.add_size("--photos", int, quick=60, full=400, help="photos enrolled, then re-embedded, per run")
    parser.add_size("--idle-s", float, quick=15, full=60, help="seconds of identify before the re-embedding")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--bulk-concurrency", default="1", help="FINPRINT_GATEWAY_INGEST_BULK_CONCURRENCY of the "
                        "workers: calls each keeps in flight per service (on 2 shared cores, 4 starve identify)")
    args = parser.parse()
    gallery, queries = photos(args.photos)
    settings = {"FINPRINT_GATEWAY_INGEST_BATCH_SIZE": "8", "FINPRINT_GATEWAY_INGEST_POLL_S": "0.2",
                "FINPRINT_GATEWAY_INGEST_BULK_CONCURRENCY": args.bulk_concurrency}
    results = []
    with tempfile.TemporaryDirectory() as tmp, start_postgres() as postgres, postgres.fresh_database() as url:
        folder = Path(tmp)
        _, version = two_embedder_versions(folder / "models", SHARED)
        env = {"FINPRINT_CATALOG_DATABASE_URL": url, "FINPRINT_CATALOG_AUTO_MIGRATE": "true",
               "FINPRINT_GATEWAY_RATE_LIMIT": "100000/minute", "FINPRINT_GATEWAY_IDENTIFY_RATE_LIMIT": "100000/minute",
               "FINPRINT_GATEWAY_EMBEDDED_WORKER": "false",
               "FINPRINT_CATALOG_OBJECT_STORE": "local", "FINPRINT_CATALOG_LOCAL_OBJECT_DIR": str(folder / "objects"),
               "FINPRINT_MATCHER_OBJECT_STORE": "local", "FINPRINT_MATCHER_LOCAL_OBJECT_DIR": str(folder / "objects"),
               "FINPRINT_EMBEDDER_MODEL_REPOSITORY": str(folder / "models"), "FINPRINT_EMBEDDER_MODEL_VERSION": "2",
               "FINPRINT_EMBEDDER_EXTRA_MODEL_VERSIONS": version.split(":")[1],
               **{f"FINPRINT_{s.upper()}_LOG_LEVEL": "WARNING" for s in ("catalog", "detector", "embedder",
                                                                          "matcher", "gateway")},
               **SHARED_CORES_MODEL_SETTINGS}
        with separate_services(env, folder) as system:
            for workers in args.workers:
                results.append(run(system.urls, url, workers, gallery, queries, version, args.idle_s, settings))
    print(f"re-embedding {args.photos} real photos to {version}, separate services on loopback, {os.cpu_count()} CPUs, "
          f"{args.bulk_concurrency} bulk call(s) in flight per service and worker")
    print(f"{'workers':>7} {'images':>6} {'img/min':>8} {'wall s':>7} {'idle p50':>9} {'idle p99':>9} "
          f"{'during p50':>10} {'during p99':>10} {'p99 ratio':>9}")
    for r in results:
        idle, during = r["identify_idle"], r["identify_during"]
        print(f"{r['workers']:>7} {r['items']:>6} {r['images_per_minute']:>8} {r['wall_s']:>7} {idle['p50_ms']!s:>9} "
              f"{idle['p99_ms']!s:>9} {during['p50_ms']!s:>10} {during['p99_ms']!s:>10} {r['p99_ratio']!s:>9}")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
