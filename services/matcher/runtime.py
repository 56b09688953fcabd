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
from datetime import UTC, datetime
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import TypeVar

import faiss
from starlette.concurrency import run_in_threadpool

from finprint.metrics import ServiceMetrics
from finprint.objectstore import ObjectStoreError
from finprint.problems import DependencyUnavailable, Problem
from finprint.schemas.embeddings import EmbeddingRecord, EmbeddingSummary, IndexKey, MembershipDigest
from finprint.schemas.matcher import (
    DuplicatesRequest,
    DuplicatesResponse,
    IndexDifference,
    Reconciliation,
    SearchRequest,
    SearchResponse,
    SnapshotResponse,
    SyncResponse,
)
from services.matcher.adapters.catalog import CatalogEmbeddings
from services.matcher.adapters.snapshots import SnapshotStore
from services.matcher.domain.gallery import Gallery, KeyTuple, ShardOwnership, WriteOutcome, key_model
from services.matcher.domain.index import IndexPolicy
from services.matcher.domain.matching import duplicates as find_duplicates
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
        self.reconciliations = metrics.counter(
            "finprint_matcher_reconciliations_total",
            "Comparisons of the indexes with the catalogue's embeddings, by status.",
            ("status",),
        )
        self.reconciliation_differences = metrics.gauge(
            "finprint_matcher_reconciliation_differences",
            "Indexes that differed from the catalogue at the last reconciliation (before its repair).",
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
    reconcile_interval_s: float = 600.0


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
        self._snapshot_restored = False
        self._sync_lock = asyncio.Lock()
        self._snapshot_lock = asyncio.Lock()
        self._reconcile_lock = asyncio.Lock()
        self.last_reconciliation = Reconciliation(status="not_run")

    def _empty_gallery(self) -> Gallery:
        return Gallery(self.config.policy, self.placement, self.config.ownership)

    # -- start ---------------------------------------------------------------------------------

    async def load(self) -> None:
        """The initial state: snapshot + replay, or a rebuild from the catalogue."""
        await self.refresh_thresholds()
        # A retry after a failed catch-up (the catalog not up yet) keeps the snapshot it restored.
        if not self._snapshot_restored:
            restored = await self._restore_snapshot()
            if restored is not None:
                self.gallery = restored
                self._snapshot_restored = True
        if self._snapshot_restored:
            await self.sync()
        else:
            await self.rebuild()
        # A snapshot only makes the start faster; before serving, check that what it gave (plus the
        # replay) is what the catalogue holds, and rebuild when it is not.
        await self.reconcile("start")
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
                gallery.set_generations(page.generations)
                self.metrics.catalog_lag.set(0)
                return applied
            if max(change.seq for change in page.changes) <= gallery.applied_seq:
                raise Problem(502, f"catalogue answered changes at or before after_seq={gallery.applied_seq}")
            applied += await in_worker(self.config.omp_threads, gallery.replay, page.changes)
            self.metrics.changes.inc(len(page.changes))
            self.metrics.catalog_lag.set(max(0, page.head_seq - gallery.applied_seq))

    # -- reconciliation ------------------------------------------------------------------------

    async def reconcile(self, trigger: str = "request", *, attempts: int = 5) -> Reconciliation:
        """Compare every index with the catalogue's embeddings; rebuild from the catalogue when they differ.

        Both sides are compared at the same change sequence number: the gallery catches up with the
        log, then the catalogue's summary must be at exactly that head (otherwise it moved on: catch
        up and compare again, up to ``attempts`` times, then report ``inconclusive``).
        """
        async with self._reconcile_lock:
            started = time.perf_counter()
            try:
                report = await self._compare(trigger, attempts)
                if report.status == "differs":
                    log.warning(
                        "indexes differ from the catalogue; rebuilding",
                        extra={"fields": {"differences": [d.model_dump() for d in report.differences]}},
                    )
                    await self.rebuild()
                    after = await self._compare(trigger, attempts)
                    status = "repaired" if after.status == "consistent" else after.status
                    report = after.model_copy(update={"status": status, "differences": report.differences})
            except Exception as exc:  # the catalogue unreachable: report it, the next round tries again
                report = Reconciliation(status="failed", trigger=trigger, reason=f"{type(exc).__name__}: {exc}")
            report = report.model_copy(
                update={
                    "checked_at": datetime.now(UTC).isoformat(),
                    "seconds": round(time.perf_counter() - started, 3),
                }
            )
            self.last_reconciliation = report
            self.metrics.reconciliations.labels(report.status).inc()
            if report.status in {"consistent", "repaired", "differs"}:
                self.metrics.reconciliation_differences.set(len(report.differences))
            log.info(
                "reconciliation",
                extra={
                    "fields": {
                        "status": report.status,
                        "trigger": trigger,
                        "applied_seq": report.applied_seq,
                        "differences": len(report.differences),
                        "reason": report.reason,
                    }
                },
            )
            return report

    async def _compare(self, trigger: str, attempts: int) -> Reconciliation:
        catalog_head: int | None = None
        for attempt in range(attempts):
            if attempt:
                await asyncio.sleep(min(0.2 * 2**attempt, 2.0))
            async with self._sync_lock:
                await self._catch_up(self.gallery)
                applied_seq, members = await run_in_threadpool(self.gallery.members)
            try:
                theirs = await self.catalog.summary()
            except Problem as problem:
                if problem.status == 409:
                    continue  # writers kept the catalogue busy: catch up and ask again
                raise
            catalog_head = theirs.head_seq
            if theirs.head_seq == applied_seq:
                differences = await run_in_threadpool(self._differences, members, theirs)
                return Reconciliation(
                    status="differs" if differences else "consistent",
                    trigger=trigger,
                    applied_seq=applied_seq,
                    indexes_compared=len(
                        set(members)
                        | {(i.org_id, i.species_group, i.model_version) for i in theirs.indexes if self._owns(i)}
                    ),
                    embeddings=sum(len(pairs) for pairs, _ in members.values()),
                    differences=differences,
                )
        return Reconciliation(
            status="inconclusive",
            trigger=trigger,
            reason=f"the catalogue kept changing (its head {catalog_head}, ours {self.gallery.applied_seq})",
        )

    def _owns(self, key: IndexKey) -> bool:
        return self.config.ownership.owns(key.org_id, key.species_group)

    def _differences(
        self, members: dict[KeyTuple, tuple[list[tuple[str, str]], int]], theirs: EmbeddingSummary
    ) -> list[IndexDifference]:
        expected = {
            (i.org_id, i.species_group, i.model_version): (i.count, i.digest)
            for i in theirs.indexes
            if self._owns(i)
        }
        differences = []
        for key in sorted(set(expected) | set(members)):
            pairs, faiss_count = members.get(key, ([], 0))
            digest = MembershipDigest()
            for embedding_id, individual_id in pairs:
                digest.add(embedding_id, individual_id)
            catalog_count, catalog_digest = expected.get(key, (0, MembershipDigest().hexdigest()))
            if (digest.count, digest.hexdigest(), faiss_count) != (catalog_count, catalog_digest, catalog_count):
                differences.append(
                    IndexDifference(
                        **key_model(key).model_dump(),
                        matcher_count=digest.count,
                        catalog_count=catalog_count,
                        faiss_count=faiss_count,
                    )
                )
        return differences

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

    async def duplicates(self, request: DuplicatesRequest) -> DuplicatesResponse:
        """A nightly job's question, over a whole index: run with the search threads, off the event loop."""
        return await in_worker(self.config.omp_threads, find_duplicates, self.gallery, self.thresholds, request)

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
            asyncio.create_task(
                self._every(self.config.reconcile_interval_s, self._reconcile_if_loaded),
                name="matcher-reconcile",
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

    async def _reconcile_if_loaded(self) -> None:
        if self.loaded:
            await self.reconcile("timer")

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
