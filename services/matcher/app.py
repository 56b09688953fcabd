"""The matcher app factory."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager

import httpx
from fastapi import FastAPI
from starlette.concurrency import run_in_threadpool

from finprint.app import create_service_app
from finprint.http import make_client
from finprint.objectstore import object_store_from_settings
from services.matcher.adapters.catalog import CatalogEmbeddings
from services.matcher.adapters.model_metadata import load_model_thresholds
from services.matcher.adapters.snapshots import SnapshotStore
from services.matcher.domain.gallery import ShardOwnership
from services.matcher.domain.index import IndexPolicy
from services.matcher.domain.placement import Placement
from services.matcher.domain.thresholds import ThresholdBook
from services.matcher.routes import router
from services.matcher.runtime import MatcherMetrics, MatcherRuntime, RuntimeConfig
from services.matcher.settings import MatcherSettings

DESCRIPTION = (
    "FAISS k-NN over the catalogue's embeddings, one index per (organisation, species group, model "
    "version): candidate individuals ranked by their best image, and the probability of a new individual."
)


def index_policy(settings: MatcherSettings) -> IndexPolicy:
    return IndexPolicy(
        approximate_min_size=settings.approximate_index_min_size,
        ivf_nlist=settings.ivf_nlist,
        ivf_nprobe=settings.ivf_nprobe,
        ivf_train_points_per_list=settings.ivf_train_points_per_list,
        ivf_retrain_growth=settings.ivf_retrain_growth,
    )


def shard_ownership(settings: MatcherSettings) -> ShardOwnership:
    explicit = None
    if settings.shard_keys is not None:
        explicit = frozenset(tuple(key.split(":", 1)) for key in settings.shard_keys)
    return ShardOwnership(settings.shard_index, settings.shard_count, explicit)  # type: ignore[arg-type]


def create_app(
    settings: MatcherSettings | None = None,
    transports: Mapping[str, httpx.AsyncBaseTransport] | None = None,
) -> FastAPI:
    settings = settings or MatcherSettings()
    ownership = shard_ownership(settings)
    catalog = CatalogEmbeddings(
        make_client(
            "catalog",
            settings.catalog_url,
            timeout_s=settings.request_timeout_s,
            retry_after_s=settings.retry_after_s,
            transports=transports,
        ),
        page_size=settings.catalog_page_size,
    )
    snapshots = SnapshotStore(object_store_from_settings(settings), ownership.name)
    thresholds = ThresholdBook(
        load_model_thresholds(
            settings.model_repository,
            settings.fallback_new_individual_threshold,
            settings.new_individual_temperature,
        )
    )
    config = RuntimeConfig(
        policy=index_policy(settings),
        ownership=ownership,
        sync_interval_s=settings.sync_interval_s,
        snapshot_interval_s=settings.snapshot_interval_s,
        threshold_refresh_interval_s=settings.threshold_refresh_interval_s,
        snapshot_on_shutdown=settings.snapshot_on_shutdown,
        retry_after_s=settings.retry_after_s,
        omp_threads=settings.omp_threads or os.cpu_count() or 1,
        reconcile_interval_s=settings.reconcile_interval_s,
    )

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        try:
            async with runtime.running():
                yield
        finally:
            await catalog.aclose()

    app = create_service_app(
        "matcher",
        settings,
        title="Finprint matcher",
        description=DESCRIPTION,
        routers=[router],
        lifespan=lifespan,
    )
    runtime = MatcherRuntime(
        config,
        catalog,
        snapshots,
        thresholds,
        Placement.choose(settings.use_gpu),
        MatcherMetrics(app.state.service.metrics),
    )
    app.state.matcher = runtime

    async def indexes_loaded() -> dict[str, object]:
        if not runtime.loaded:
            raise RuntimeError(
                "the initial load (snapshot + replay, or rebuild from the catalogue) is not finished"
            )
        return {"shards": runtime.gallery.shard_versions()}

    async def object_store_answers() -> None:
        await run_in_threadpool(snapshots.store.check)

    app.state.service.readiness_checks["indexes"] = indexes_loaded
    app.state.service.readiness_checks["catalog"] = catalog.ready
    app.state.service.readiness_checks["object_store"] = object_store_answers
    return app
