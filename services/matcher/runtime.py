"""The matcher's life: load at start, follow the catalogue, snapshot, answer searches.

At start: load the shard's last snapshot from the object store and replay the catalogue's
changes after its sequence number, or, without a usable snapshot, rebuild from the catalogue's
pages. Then poll the change log every ``sync_interval_s`` and snapshot every
``snapshot_interval_s`` when something changed. A killed matcher loses nothing: whatever it had
not snapshotted is still in the catalogue's log. CPU work (FAISS, serialisation) runs in worker
threads so the event loop keeps answering.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import TypeVar

import faiss
from starlette.concurrency import run_in_threadpool

from finprint.metrics import ServiceMetrics
from finprint.objectstore import ObjectStoreError
from finprint.problems import DependencyUnavailable, Problem
from finprint.schemas.embeddings import EmbeddingRecord
from finprint.schemas.matcher import SearchRequest, SearchResponse, SnapshotResponse, SyncResponse
from services.matcher.adapters.catalog import CatalogEmbeddings
from services.matcher.adapters.snapshots import SnapshotStore
from services.matcher.domain.gallery import Gallery, ShardOwnership, WriteOutcome
from services.matcher.domain.index import IndexPolicy
from services.matcher.domain.matching import identify
from services.matcher.domain.placement import Placement
from services.matcher.domain.thresholds import ThresholdBook

log = logging.getLogger("finprint.matcher")

T = TypeVar("T")
SEARCH_BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0)


class MatcherMetrics:
    def __init__(self, metrics: ServiceMetrics) -> None:
        self.index_size = metrics.gauge(
            "finprint_matcher_index_size",
            "Embeddings per index.",
            ("org_id", "species_group", "model_version", "kind"),
        )
        self.embeddings = metrics.gauge("finprint_matcher_embeddings", "Embeddings held by this shard.")
        self.search_seconds = metrics.histogram(
            "finprint_matcher_search_seconds",
            "Time to answer a search request (all its queries).",
            ("kind",),
            buckets=SEARCH_BUCKETS,
        )
        self.queries = metrics.counter("finprint_matcher_queries_total", "Query embeddings searched.")
        self.syncs = metrics.counter(
            "finprint_matcher_syncs_total", "Change-log polls, by outcome.", ("outcome",)
        )
        self.changes = metrics.counter("finprint_matcher_changes_applied_total", "Catalogue changes applied.")
        self.loads = metrics.counter(
            "finprint_matcher_loads_total",
            "Full loads, by source (snapshot or catalog rebuild).",
            ("source",),
        )
        self.snapshots = metrics.counter(
            "finprint_matcher_snapshots_total", "Snapshots written, by outcome.", ("outcome",)
        )
        self.applied_seq = metrics.gauge(
            "finprint_matcher_applied_seq", "Catalogue sequence number reflected."
        )
        self.catalog_lag = metrics.gauge(
            "finprint_matcher_catalog_lag",
            "Catalogue changes not yet applied at the last poll (head_seq - applied).",
        )
        self.snapshot_seq = metrics.gauge(
            "finprint_matcher_snapshot_seq", "Sequence number of the last snapshot."
        )


@dataclass
class RuntimeConfig:
    policy: IndexPolicy
    ownership: ShardOwnership
    sync_interval_s: float
    snapshot_interval_s: float
    threshold_refresh_interval_s: float
    snapshot_on_shutdown: bool
    retry_after_s: int
    omp_threads: int


async def in_worker(threads: int, work: Callable[..., T], *args: object) -> T:
    """Run FAISS work in a worker thread with ``threads`` OpenMP threads.

    OpenMP's thread count is per calling thread: set in the worker itself, not once at start. A
    single query uses one (IVF parallelises over queries, and waiting for a second OpenMP thread
    on a busy machine costs more than it saves); batches, writes and training use them all.
    """

    def call() -> T:
        faiss.omp_set_num_threads(threads)
        return work(*args)

    return await run_in_threadpool(call)


class MatcherRuntime:
    def __init__(
        self,
        config: RuntimeConfig,
        catalog: CatalogEmbeddings,
        snapshots: SnapshotStore,
        thresholds: ThresholdBook,
        placement: Placement,
        metrics: MatcherMetrics,
    ) -> None:
        self.config = config
        self.catalog = catalog
        self.snapshots = snapshots
        self.thresholds = thresholds
        self.placement = placement
        self.metrics = metrics
        self.gallery = self._empty_gallery()
        self.loaded = False
        self._snapshot_seq: int | None = None
        self._sync_lock = asyncio.Lock()
        self._snapshot_lock = asyncio.Lock()

    def _empty_gallery(self) -> Gallery:
        return Gallery(self.config.policy, self.placement, self.config.ownership)

    # -- start ---------------------------------------------------------------------------------

    async def load(self) -> None:
        """The initial state: snapshot + replay, or a rebuild from the catalogue."""
        await self.refresh_thresholds()
        restored = await self._restore_snapshot()
        if restored is None:
            await self.rebuild()
        else:
            self.gallery = restored
            await self.sync()
        self.loaded = True

    async def _restore_snapshot(self) -> Gallery | None:
        """The last snapshot as a gallery; None when there is none or it cannot be read (then rebuild:
        the catalogue is the truth, a snapshot only makes the start faster)."""
        try:
            snapshot = await run_in_threadpool(self.snapshots.load)
            if snapshot is None:
                return None
            gallery = await in_worker(
                self.config.omp_threads,
                Gallery.restore,
                snapshot,
                self.config.policy,
                self.placement,
                self.config.ownership,
            )
        except Exception as exc:  # unreadable, half-deleted or from an incompatible faiss: rebuild instead
            log.warning(
                "snapshot unusable; rebuilding from the catalogue",
                extra={"fields": {"reason": f"{type(exc).__name__}: {exc}"}},
            )
            return None
        self._snapshot_seq = snapshot.applied_seq
        self.metrics.loads.labels("snapshot").inc()
        log.info(
            "snapshot loaded",
            extra={"fields": {"applied_seq": snapshot.applied_seq, "embeddings": gallery.size}},
        )
        return gallery

    async def rebuild(self) -> None:
        """Stream every embedding from the catalogue into a new gallery, catch up, then swap it in.

        Searches keep using the current gallery until the new one is complete.
        """
        started = time.perf_counter()
        fresh = self._empty_gallery()
        head_seq: int | None = None
        skipped = 0
        async for page in self.catalog.pages():
            head_seq = page.head_seq if head_seq is None else head_seq
            skipped += await in_worker(self.config.omp_threads, fresh.load_records, page.records)
        fresh.advance(head_seq or 0)
        async with self._sync_lock:
            await self._catch_up(fresh)
            self.gallery = fresh
        self.metrics.loads.labels("catalog").inc()
        self._observe()
        log.info(
            "rebuilt from the catalogue",
            extra={
                "fields": {
                    "applied_seq": fresh.applied_seq,
                    "embeddings": fresh.size,
                    "skipped_invalid": skipped,
                    "seconds": round(time.perf_counter() - started, 2),
                }
            },
        )

    # -- following the catalogue ---------------------------------------------------------------

    async def sync(self) -> SyncResponse:
        """Apply every change the catalogue logged after ``applied_seq`` (POST /v1/sync, and the poll)."""
        async with self._sync_lock:
            try:
                applied = await self._catch_up(self.gallery)
            except Problem as problem:
                self.metrics.syncs.labels("failed").inc()
                if problem.status in {409, 410}:  # the log no longer reaches back to our seq
                    log.warning(
                        "change log cannot be replayed; rebuilding",
                        extra={"fields": {"reason": str(problem)}},
                    )
                else:
                    raise
            else:
                self.metrics.syncs.labels("ok").inc()
                self._observe()
                return SyncResponse(applied_seq=self.gallery.applied_seq, changes_applied=applied)
        await self.rebuild()
        return SyncResponse(applied_seq=self.gallery.applied_seq, changes_applied=0)

    async def _catch_up(self, gallery: Gallery) -> int:
        applied = 0
        while True:
            page = await self.catalog.changes_after(gallery.applied_seq)
            if page.head_seq < gallery.applied_seq:
                # The catalogue is behind what we hold (restored from a backup): only a rebuild is truthful.
                raise Problem(409, f"catalogue head {page.head_seq} is behind applied {gallery.applied_seq}")
            if not page.changes:
                gallery.advance(page.head_seq)
                self.metrics.catalog_lag.set(0)
                return applied
            if max(change.seq for change in page.changes) <= gallery.applied_seq:
                raise Problem(502, f"catalogue answered changes at or before after_seq={gallery.applied_seq}")
            applied += await in_worker(self.config.omp_threads, gallery.replay, page.changes)
            self.metrics.changes.inc(len(page.changes))
            self.metrics.catalog_lag.set(max(0, page.head_seq - gallery.applied_seq))

    # -- snapshots -----------------------------------------------------------------------------

    async def snapshot(self) -> SnapshotResponse:
        """Write every index to the object store (POST /v1/snapshot, the timer, a clean stop)."""
        async with self._snapshot_lock:
            exported = await run_in_threadpool(self.gallery.export)
            try:
                manifest = await run_in_threadpool(self.snapshots.save, exported)
            except ObjectStoreError as exc:
                self.metrics.snapshots.labels("failed").inc()
                raise DependencyUnavailable("object store", str(exc), self.config.retry_after_s) from exc
            self._snapshot_seq = exported.applied_seq
            self.metrics.snapshots.labels("ok").inc()
            self.metrics.snapshot_seq.set(exported.applied_seq)
            log.info(
                "snapshot written",
                extra={"fields": {"applied_seq": exported.applied_seq, "indexes": len(exported.indexes)}},
            )
            return SnapshotResponse(
                applied_seq=exported.applied_seq, indexes=len(exported.indexes), manifest=manifest
            )

    async def snapshot_if_changed(self) -> None:
        if self.loaded and self._snapshot_seq != self.gallery.applied_seq:
            await self.snapshot()

    async def refresh_thresholds(self) -> None:
        self.thresholds.replace_all(await run_in_threadpool(self.snapshots.load_thresholds))

    # -- searching -----------------------------------------------------------------------------

    async def search(self, request: SearchRequest) -> SearchResponse:
        started = time.perf_counter()
        threads = 1 if request.count == 1 else self.config.omp_threads
        response = await in_worker(threads, identify, self.gallery, self.thresholds, request)
        self.metrics.search_seconds.labels(response.index.kind).observe(time.perf_counter() - started)
        self.metrics.queries.inc(request.count)
        return response

    async def upsert(self, records: Sequence[EmbeddingRecord]) -> list[WriteOutcome]:
        """Direct writes (the gateway's push); the change log brings the same changes again, harmlessly."""
        outcomes = await in_worker(self.config.omp_threads, self.gallery.upsert, records)
        self._observe()
        return outcomes

    async def delete(self, embedding_id: str, seq: int | None) -> WriteOutcome:
        outcome = await in_worker(self.config.omp_threads, self.gallery.delete, embedding_id, seq)
        self._observe()
        return outcome

    def _observe(self) -> None:
        self.metrics.applied_seq.set(self.gallery.applied_seq)
        self.metrics.embeddings.set(self.gallery.size)
        self.metrics.index_size.clear()
        for info in self.gallery.infos():
            self.metrics.index_size.labels(
                info.org_id, info.species_group, info.model_version, info.kind
            ).set(info.size)

    # -- background ----------------------------------------------------------------------------

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[None]:
        """Load and follow the catalogue in the background while the app serves; stop cleanly."""
        tasks = [
            asyncio.create_task(self._follow(), name="matcher-follow"),
            asyncio.create_task(
                self._every(self.config.snapshot_interval_s, self.snapshot_if_changed),
                name="matcher-snapshot",
            ),
            asyncio.create_task(
                self._every(self.config.threshold_refresh_interval_s, self.refresh_thresholds),
                name="matcher-thresholds",
            ),
        ]
        try:
            yield
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            if self.config.snapshot_on_shutdown:
                with contextlib.suppress(Exception):  # the log still holds everything; never block shutdown
                    await self.snapshot_if_changed()

    async def _follow(self) -> None:
        while not self.loaded:
            try:
                await self.load()
            except Exception as exc:  # keep retrying: readiness reports it meanwhile
                log.warning(
                    "initial load failed; retrying",
                    extra={"fields": {"reason": f"{type(exc).__name__}: {exc}"}},
                )
                await asyncio.sleep(self.config.sync_interval_s)
        await self._every(self.config.sync_interval_s, self.sync)

    @staticmethod
    async def _every(interval_s: float, action: Callable[[], Awaitable[object]]) -> None:
        while True:
            await asyncio.sleep(interval_s)
            try:
                await action()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # a failed round is logged; the next one tries again
                log.warning(
                    "background round failed",
                    extra={
                        "fields": {
                            "action": getattr(action, "__name__", str(action)),
                            "reason": f"{type(exc).__name__}: {exc}",
                        }
                    },
                )
