"""Gateway commands of the ``finprint`` CLI: bulk ingestion, and the possible-duplicates scan.

    finprint worker [--job-id ID] [--worker-id NAME]
        An ingest worker. It reaches the services through the gateway's settings (FINPRINT_GATEWAY_*:
        detector, embedder, matcher and catalog URLs), so any number run on any machine. With
        --job-id it exits 0 once that job has no item left; otherwise it runs until SIGTERM/SIGINT,
        finishing the items in hand first.

    finprint duplicates [--org SLUG ...] [--species KEY ...]
        The possible-duplicates scan (the nightly CronJob, deploy/k8s/jobs/duplicates-cronjob.yaml): for
        every organisation (or those named), individuals of each species whose galleries are closer than
        the model card's cut are filed into the review queue. Reaches the services through the gateway's
        settings, as the worker does; prints one JSON line per organisation, and exits 1 if any failed.

    finprint ingest --manifest FILE.csv --images DIR --url URL --api-key KEY
        Creates a job from the manifest, uploads the photos it names (relative to DIR), shows a
        progress bar until the job ends, and prints the job's summary as its LAST line: one JSON
        object with job_id, status, total, done, failed, duplicates.

    finprint models status|reembed --to VERSION|rollback [--species S] --url URL --api-key KEY
        Model upgrades (docs/model-upgrades.md): the versions each species' index serves; re-embed the
        catalogue with VERSION (a job on the ingest queue, progress bar, then the swap); return to the
        previous version. The LAST line printed is one JSON object (the job's summary and the shards).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import mimetypes
import os
import signal
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
from prometheus_client import start_http_server
from tqdm import tqdm

from finprint.logs import configure_logging
from finprint.metrics import ServiceMetrics
from finprint.problems import Problem
from services.gateway.adapters.catalog import CatalogClient
from services.gateway.adapters.peers import Peers
from services.gateway.adapters.pipeline import Pipeline
from services.gateway.application import duplicates
from services.gateway.ingest.manifest import read_manifest
from services.gateway.ingest.progress import job_progress, summary
from services.gateway.ingest.runner import worker_from_settings
from services.gateway.settings import GatewaySettings

UPLOAD_ATTEMPTS = 4
FINISHED = {"completed", "failed", "cancelled"}


# --- finprint worker ----------------------------------------------------------------------------

async def _work(job_id: str | None, worker_id: str | None, metrics_port: int | None) -> int:
    settings = GatewaySettings()
    metrics = ServiceMetrics("worker")
    if metrics_port is not None:  # Prometheus scrapes the worker's items and stage times here
        start_http_server(metrics_port, registry=metrics.registry)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    async with worker_from_settings(settings, job_id=job_id, worker_id=worker_id, metrics=metrics) as worker:
        started = time.perf_counter()
        await worker.run(stop)
        elapsed = time.perf_counter() - started
    print(json.dumps({"worker_id": worker.worker_id, "job_id": job_id, "items": worker.processed,
                      "seconds": round(elapsed, 2), "stage_ms": worker.totals.as_ms()}), flush=True)
    return 0


def _cmd_worker(args: argparse.Namespace) -> int:
    configure_logging(args.log_level)
    job_id = Path(args.job_id_file).read_text().strip() if args.job_id_file else args.job_id
    return asyncio.run(_work(job_id, args.worker_id, args.metrics_port))


# --- finprint duplicates ------------------------------------------------------------------------

DUPLICATES_ACTOR = "duplicates-scan"


async def scan_duplicates(slugs: list[str], species: list[str] | None,
                          transports: Mapping[str, httpx.AsyncBaseTransport] | None = None) -> int:
    """The scan of every organisation (or those of ``slugs``); ``transports``: the services in process."""
    settings = GatewaySettings()
    peers = Peers.from_settings(settings, transports)
    failures = 0
    try:
        catalog = CatalogClient(peers.catalog)
        pipeline = Pipeline.for_peers(peers, settings)
        organisations = await catalog.forward("GET", "/v1/orgs")
        if slugs:
            organisations = [o for o in organisations if o["slug"] in slugs]
            missing = sorted(set(slugs) - {o["slug"] for o in organisations})
            if missing:
                print(json.dumps({"error": f"unknown organisations: {', '.join(missing)}"}), flush=True)
                failures += 1
        for organisation in organisations:
            try:
                found = await duplicates.scan(pipeline, catalog, organisation["id"], DUPLICATES_ACTOR, species)
                print(json.dumps({"org": organisation["slug"], **found.model_dump()}), flush=True)
            except Problem as problem:  # one organisation's failure does not stop the others' scans
                failures += 1
                print(json.dumps({"org": organisation["slug"], "error": problem.detail}), flush=True)
    finally:
        await peers.aclose()
    return 1 if failures else 0


def _cmd_duplicates(args: argparse.Namespace) -> int:
    configure_logging(args.log_level)
    return asyncio.run(scan_duplicates(args.org or [], args.species))


# --- finprint ingest ----------------------------------------------------------------------------

class Api:
    """The few public API calls the ingest command makes, retrying what is safe to retry."""

    def __init__(self, url: str, api_key: str) -> None:
        self.http = httpx.Client(base_url=url.rstrip("/"), headers={"X-API-Key": api_key}, timeout=120.0)

    def call(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        """One call; retried on connection errors and 502/503/504 (a few times) and on 429 (as told)."""
        failures = 0
        while True:
            try:
                response = self.http.request(method, path, **kwargs)
            except httpx.TransportError:
                response = None
            if response is not None and response.status_code == 429:
                # Over the key's rate limit (a big manifest is many uploads): wait as the server says.
                time.sleep(float(response.headers.get("Retry-After", "1")))
                continue
            if response is not None and response.status_code not in {502, 503, 504}:
                break
            failures += 1
            if failures == UPLOAD_ATTEMPTS:
                if response is None:
                    raise SystemExit(f"finprint: {method} {path}: the server does not answer")
                break
            time.sleep(float(2**failures))
        if response.status_code >= 400:
            raise SystemExit(f"finprint: {method} {path} answered {response.status_code}: {response.text}")
        return response.json()


def _upload(api: Api, job_id: str, images: Path, keys: list[str]) -> list[str]:
    """Upload each listed photo found under ``images``; returns the keys not found (they will fail)."""
    missing = []
    for key in tqdm(keys, desc="upload", unit="img", file=sys.stderr):
        path = images / key
        if not path.is_file():
            missing.append(key)
            continue
        content_type = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
        api.call("PUT", f"/v1/ingest/jobs/{job_id}/files/{quote(key)}", content=path.read_bytes(),
                 headers={"Content-Type": content_type})
    return missing


def _follow(api: Api, job_id: str, poll_s: float, desc: str = "ingest") -> dict[str, Any]:
    """Poll the job with a progress bar until it ends; returns its last state."""
    job = api.call("GET", f"/v1/ingest/jobs/{job_id}")
    with tqdm(total=job["total"], desc=desc, unit="img", file=sys.stderr) as bar:
        while True:
            bar.n = job["done"] + job["failed"] + job["duplicates"]
            bar.set_postfix(failed=job["failed"], duplicates=job["duplicates"], refresh=False)
            bar.refresh()
            if job["status"] in FINISHED:
                return job
            time.sleep(poll_s)
            job = api.call("GET", f"/v1/ingest/jobs/{job_id}")


def _cmd_ingest(args: argparse.Namespace) -> int:
    manifest = Path(args.manifest).read_bytes()
    keys = [item.item_key for item in read_manifest(manifest)]
    api = Api(args.url, args.api_key)
    job = api.call("POST", "/v1/ingest/jobs", files={"manifest": (Path(args.manifest).name, manifest, "text/csv")},
                   data={"name": args.name or Path(args.manifest).stem})
    print(f"ingest job {job['id']}: {len(keys)} photos", file=sys.stderr)
    if job["status"] == "pending":
        missing = _upload(api, job["id"], Path(args.images), keys)
        if missing:
            print(f"{len(missing)} photos listed in the manifest are not under {args.images}; they will fail",
                  file=sys.stderr)
        job = api.call("POST", f"/v1/ingest/jobs/{job['id']}:start")
    if not args.no_wait:
        job = _follow(api, job["id"], args.poll_s)
    progress = job_progress({**job, "counts": {"done": job["done"], "failed": job["failed"],
                                               "skipped": job["duplicates"], "pending": job["pending"],
                                               "running": job["running"]}})
    print(json.dumps(summary(progress)), flush=True)
    return 0 if job["status"] != "failed" else 1


# --- finprint models ----------------------------------------------------------------------------

def _cmd_models(args: argparse.Namespace) -> int:
    if not args.api_key:
        raise SystemExit("finprint models: an admin's API key is needed (--api-key or FINPRINT_API_KEY)")
    api = Api(args.url, args.api_key)
    if args.action == "reembed":
        if not args.to:
            raise SystemExit("finprint models reembed: --to VERSION is required (e.g. finprint_embedder:3)")
        job = api.call("POST", "/v1/admin/model-upgrades", json={"model_version": args.to})
        print(f"re-embedding job {job['id']}: {job['total']} annotations to {args.to}", file=sys.stderr)
        if args.job_id_file:
            Path(args.job_id_file).write_text(job["id"] + "\n")
        if args.no_wait:
            print(json.dumps({"job_id": job["id"], "status": job["status"]}), flush=True)
            return 0
        job = _follow(api, job["id"], args.poll_s, desc="re-embed")
        model = api.call("GET", "/v1/model")
        print(json.dumps({"job_id": job["id"], "status": job["status"], "done": job["done"],
                          "failed": job["failed"], "shards": model["shards"]}), flush=True)
        return 0 if job["status"] == "completed" and not job["failed"] else 1
    if args.action == "rollback":
        body = {"species_group": args.species} if args.species else {}
        print(json.dumps(api.call("POST", "/v1/admin/model-rollback", json=body)), flush=True)
        return 0
    print(json.dumps(api.call("GET", "/v1/model")), flush=True)
    return 0


def add_commands(subparsers: argparse._SubParsersAction) -> None:
    worker = subparsers.add_parser("worker", help="run a bulk-ingestion worker (settings: FINPRINT_GATEWAY_*)")
    worker.add_argument("--job-id", default=None, help="work on this job only, and exit 0 when it has no item left")
    worker.add_argument("--job-id-file", default=None, help="read --job-id from this file (written by "
                        "`finprint models reembed --job-id-file`)")
    worker.add_argument("--worker-id", default=None, help="name in the leases (default: host:pid)")
    worker.add_argument("--metrics-port", type=int, default=None,
                        help="serve Prometheus metrics (items, seconds per stage) on this port")
    worker.add_argument("--log-level", default="INFO")
    worker.set_defaults(func=_cmd_worker)

    scan = subparsers.add_parser("duplicates", help="file possible duplicate individuals for review "
                                 "(settings: FINPRINT_GATEWAY_*)")
    scan.add_argument("--org", action="append", help="an organisation's slug (repeat; default: every organisation)")
    scan.add_argument("--species", action="append", help="a species key (repeat; default: every species)")
    scan.add_argument("--log-level", default="INFO")
    scan.set_defaults(func=_cmd_duplicates)

    ingest = subparsers.add_parser("ingest", help="ingest the photos a CSV manifest lists (bulk job)")
    ingest.add_argument("--manifest", required=True, help="CSV: image (required), observed_at, latitude, "
                        "longitude, location, observer, species, individual_id")
    ingest.add_argument("--images", required=True, help="folder the manifest's image paths are relative to")
    ingest.add_argument("--url", required=True, help="the Finprint API, e.g. http://127.0.0.1:8000")
    ingest.add_argument("--api-key", required=True, help="a contributor's API key")
    ingest.add_argument("--name", default=None, help="the job's name (default: the manifest's file name)")
    ingest.add_argument("--poll-s", type=float, default=1.0, help="how often to refresh the progress bar")
    ingest.add_argument("--no-wait", action="store_true", help="print the job and return once it has started")
    ingest.set_defaults(func=_cmd_ingest)

    models = subparsers.add_parser("models", help="model versions: status, re-embed the catalogue, roll back")
    models.add_argument("action", choices=["status", "reembed", "rollback"])
    models.add_argument("--to", default=None, help="reembed: the version, e.g. finprint_embedder:3")
    models.add_argument("--species", default=None, help="rollback: one species' shard only")
    models.add_argument("--url", required=True, help="the Finprint API, e.g. http://127.0.0.1:8000")
    models.add_argument("--api-key", default=os.environ.get("FINPRINT_API_KEY"),
                        help="an admin's API key (default: $FINPRINT_API_KEY)")
    models.add_argument("--poll-s", type=float, default=1.0, help="how often to refresh the progress bar")
    models.add_argument("--no-wait", action="store_true", help="reembed: return once the job has started")
    models.add_argument("--job-id-file", default=None, help="reembed: write the job's id to this file")
    models.set_defaults(func=_cmd_models)
