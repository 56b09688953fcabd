"""Bulk ingestion throughput: images per minute with 1 and 2 workers, and the time per stage.

The five services run as separate processes (``finprint serve``) on loopback, on PostgreSQL and a
local object store; each run ingests the same real photos into a fresh organisation (so nothing
is a duplicate) from a CSV manifest (every third photo names its individual, which enrols it),
with ``finprint worker --job-id`` processes doing the work. The upload (``finprint ingest
--no-wait``) is timed apart; the rate is the job's, from the workers' start to the last one's exit.

    .venv/bin/python -m bench.bench_ingest [--images 2000] [--workers 1 2] [--json out.json]

Stages, in ms per image summed over the workers (they overlap within a batch, so their sum exceeds
the wall time per image): decode = reading the staged photo and its SHA-256; detector, embedder,
matcher = the model calls; catalog = duplicate check, candidate codes and the enrolment. A
benchmark, not a test: it prints numbers and asserts nothing.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench import SHARED_CORES_MODEL_SETTINGS
from bench.arguments import BenchmarkParser
from finprint_testing.postgres import start_postgres
from finprint_testing.system import separate_services

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data" / "kaggle_humpback2019"
STAGES = ("decode", "detector", "embedder", "matcher", "catalog")


def write_manifest(folder: Path, count: int) -> Path:
    with open(DATA / "labels.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))[:count]
    path = folder / "manifest.csv"
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["image", "observed_at", "species", "individual_id"])
        for n, row in enumerate(rows):
            named = n % 3 == 0 and row["individual_id"]
            writer.writerow([row["image"], "2019-07-01T10:00:00Z", row["species"] if named else "",
                             row["individual_id"] if named else ""])
    return path


def cli(*args: str) -> str:
    result = subprocess.run([sys.executable, "-m", "finprint.cli", *args], capture_output=True, text=True,
                            check=False)
    if result.returncode:
        raise SystemExit(f"finprint {args[0]} failed:\n{result.stderr[-2000:]}")
    return result.stdout.strip().splitlines()[-1]


def run(system_urls: dict[str, str], database_url: str, manifest: Path, workers: int, settings: dict[str, str]) -> dict:
    key = cli("apikey", "create", "--org", f"bench-{workers}w-{os.getpid()}", "--role", "contributor",
              "--database-url", database_url)
    started = time.perf_counter()
    job = json.loads(cli("ingest", "--manifest", str(manifest), "--images", str(DATA / "images"),
                         "--url", system_urls["gateway"], "--api-key", key, "--no-wait"))
    upload_s = time.perf_counter() - started
    env = {**os.environ, "FINPRINT_GATEWAY_DETECTOR_URL": system_urls["detector"],
           "FINPRINT_GATEWAY_EMBEDDER_URL": system_urls["embedder"], "FINPRINT_GATEWAY_MATCHER_URL": system_urls["matcher"],
           "FINPRINT_GATEWAY_CATALOG_URL": system_urls["catalog"], "FINPRINT_GATEWAY_LOG_LEVEL": "WARNING", **settings}
    started = time.perf_counter()
    processes = [subprocess.Popen([sys.executable, "-m", "finprint.cli", "worker", "--job-id", job["job_id"],
                                   "--worker-id", f"bench-{n}", "--log-level", "WARNING"],
                                  stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env)
                 for n in range(workers)]
    reports = [json.loads(p.communicate()[0].strip().splitlines()[-1]) for p in processes]
    wall_s = time.perf_counter() - started
    items = sum(r["items"] for r in reports)
    stage_ms = {s: sum(r["stage_ms"].get(s, 0.0) for r in reports) / max(items, 1) for s in STAGES}
    return {"workers": workers, "images": job["total"], "items": items, "wall_s": round(wall_s, 2),
            "upload_s": round(upload_s, 2), "images_per_minute": round(items / wall_s * 60, 1),
            "stage_ms_per_image": {s: round(v, 1) for s, v in stage_ms.items()}}


def print_table(results: list[dict]) -> None:
    header = f"{'workers':>7} {'images':>6} {'img/min':>8} {'wall s':>7} {'upload s':>8} " + " ".join(
        f"{s + ' ms':>12}" for s in STAGES)
    print(header)
    for r in results:
        print(f"{r['workers']:>7} {r['items']:>6} {r['images_per_minute']:>8} {r['wall_s']:>7} {r['upload_s']:>8} "
              + " ".join(f"{r['stage_ms_per_image'][s]:>12}" for s in STAGES))
    if len(results) > 1:
        base = results[0]["images_per_minute"]
        for r in results[1:]:
            print(f"{r['workers']} workers / {results[0]['workers']}: x{r['images_per_minute'] / base:.2f}")


def main() -> None:
    parser = BenchmarkParser(__doc__)
    parser.add_argument("--images", type=int, default=2000)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--batch-size", default="8", help="FINPRINT_GATEWAY_INGEST_BATCH_SIZE of the workers")
    args = parser.parse()
    settings = {"FINPRINT_GATEWAY_INGEST_BATCH_SIZE": args.batch_size, "FINPRINT_GATEWAY_INGEST_POLL_S": "0.2"}
    results = []
    with tempfile.TemporaryDirectory() as tmp, start_postgres() as postgres, postgres.fresh_database() as url:
        folder = Path(tmp)
        manifest = write_manifest(folder, args.images)
        env = {"FINPRINT_CATALOG_DATABASE_URL": url, "FINPRINT_GATEWAY_RATE_LIMIT": "100000/minute", "FINPRINT_CATALOG_AUTO_MIGRATE": "true",
               "FINPRINT_CATALOG_OBJECT_STORE": "local", "FINPRINT_CATALOG_LOCAL_OBJECT_DIR": str(folder / "objects"),
               "FINPRINT_MATCHER_OBJECT_STORE": "local", "FINPRINT_MATCHER_LOCAL_OBJECT_DIR": str(folder / "objects"),
               **{f"FINPRINT_{s.upper()}_LOG_LEVEL": "WARNING" for s in ("catalog", "detector", "embedder",
                                                                          "matcher", "gateway")},
               **SHARED_CORES_MODEL_SETTINGS}
        with separate_services(env, folder) as system:
            for workers in args.workers:
                results.append(run(system.urls, url, manifest, workers, settings))
    print(f"bulk ingestion, {args.images} real photos (kaggle_humpback2019), separate services on loopback, "
          f"{os.cpu_count()} CPUs")
    print_table(results)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
