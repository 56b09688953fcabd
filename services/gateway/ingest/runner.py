"""Building and running a worker from the gateway's settings (the CLI and the embedded gateway)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Mapping

import httpx

from finprint.metrics import ServiceMetrics
from services.gateway.adapters.catalog import CatalogClient
from services.gateway.adapters.peers import Peers
from services.gateway.adapters.pipeline import Pipeline
from services.gateway.ingest.priority import bulk_transports
from services.gateway.ingest.queue import IngestQueue
from services.gateway.ingest.worker import Worker, WorkerMetrics
from services.gateway.settings import GatewaySettings

log = logging.getLogger("finprint.ingest")


@contextlib.asynccontextmanager
async def worker_from_settings(
    settings: GatewaySettings, *, job_id: str | None = None, worker_id: str | None = None,
    transports: Mapping[str, httpx.AsyncBaseTransport] | None = None, metrics: ServiceMetrics | None = None,
) -> AsyncIterator[Worker]:
    """A worker with its own clients of the four services, every call marked and limited as bulk;
    its items and stage times go to ``metrics`` when given (the gateway's /metrics, or the CLI's)."""
    urls = [settings.detector_url, settings.embedder_url, settings.catalog_url,
            *(settings.matcher_url.replace("{shard}", str(n)) for n in range(settings.matcher_shard_count))]
    peers = Peers.from_settings(settings, bulk_transports(urls, settings.ingest_bulk_concurrency, transports))
    try:
        yield Worker(settings, Pipeline.for_peers(peers, settings), CatalogClient(peers.catalog),
                     IngestQueue(peers.catalog), worker_id=worker_id, job_id=job_id,
                     metrics=WorkerMetrics(metrics) if metrics is not None else None)
    finally:
        await peers.aclose()


@contextlib.asynccontextmanager
async def background_worker(settings: GatewaySettings, transports: Mapping[str, httpx.AsyncBaseTransport] | None,
                            metrics: ServiceMetrics) -> AsyncIterator[None]:
    """One worker inside the gateway's process (the embedded default), stopped with the app."""
    stop = asyncio.Event()
    async with worker_from_settings(settings, transports=transports, metrics=metrics) as worker:
        task = asyncio.create_task(_run_forever(worker, stop), name="ingest-worker")
        try:
            yield
        finally:
            stop.set()
            await task


async def _run_forever(worker: Worker, stop: asyncio.Event) -> None:
    """A crash of the loop (a bug, a peer answering garbage) restarts it rather than ending ingestion."""
    while not stop.is_set():
        try:
            await worker.run(stop)
        except Exception:  # logged; the items in hand come back when their leases expire
            log.exception("ingest worker crashed; restarting")
            await asyncio.sleep(worker.settings.ingest_poll_s)
