"""The catalog app factory: the system of record (PostgreSQL or SQLite, plus the object store).

The app is built from the domains' routers; nothing in the service imports this module.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager

import httpx
from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import JSONResponse
from sqlalchemy.exc import IntegrityError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout

from finprint.app import ServiceState, create_service_app
from finprint.objectstore import ObjectStoreError, object_store_from_settings
from finprint.problems import DependencyUnavailable, Problem, problem_response
from services.catalog.accounts import routes as accounts
from services.catalog.adapters.db import migrate
from services.catalog.adapters.db.engine import make_engine, make_session_factory, ping
from services.catalog.audit import routes as audit
from services.catalog.comments import routes as comments
from services.catalog.encounters.annotations import routes as annotations
from services.catalog.encounters.enrolment import routes as enrolment
from services.catalog.encounters.media import routes as media
from services.catalog.encounters.sightings import routes as sightings
from services.catalog.exports import routes as exports
from services.catalog.individuals import routes as individuals
from services.catalog.ingest import routes as ingest
from services.catalog.internal import routes as internal
from services.catalog.model_versions import routes as model_versions
from services.catalog.objects import routes as objects
from services.catalog.review import routes as review
from services.catalog.settings import CatalogSettings
from services.catalog.shared.context import Catalog, CatalogMetrics
from services.catalog.stats import routes as stats

log = logging.getLogger("finprint.catalog")

DESCRIPTION = """The system of record: organisations, users and API keys, species, individuals, encounters,
media (stored once per organisation by SHA-256), annotations with their embeddings, identifications,
the append-only audit log, comments, ingest jobs, the change sequence the matcher replays, and exports
(encounters CSV, organised dataset ZIP, Darwin Core Archive). Everything of an organisation lives under
`/v1/orgs/{org_id}`."""

# In the order the API reference lists them.
ROUTERS: tuple[APIRouter, ...] = (
    accounts.organisations,
    accounts.verification,
    individuals.router,
    sightings.router,
    media.router,
    annotations.router,
    review.router,
    enrolment.router,
    stats.router,
    comments.router,
    audit.router,
    ingest.job_routes,
    model_versions.router,
    exports.router,
    internal.router,
    ingest.queue_routes,
    objects.router,
)


def create_app(
    settings: CatalogSettings | None = None,
    transports: Mapping[str, httpx.AsyncBaseTransport] | None = None,
) -> FastAPI:
    settings = settings or CatalogSettings()
    engine = make_engine(settings.database_url, pool_size=settings.database_pool_size,
                         pool_timeout_s=settings.database_pool_timeout_s)
    store = object_store_from_settings(settings, local_base_url=settings.public_base_url)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if settings.auto_migrate:
            await asyncio.to_thread(migrate.upgrade, engine)
            log.info("database migrated to head")
        try:
            yield
        finally:
            engine.dispose()

    app = create_service_app(
        "catalog",
        settings,
        title="Finprint catalog",
        description=DESCRIPTION,
        routers=ROUTERS,
        lifespan=lifespan,
    )
    service: ServiceState = app.state.service
    app.state.catalog = Catalog(settings, engine, make_session_factory(engine), store, _metrics(service))

    async def database_ready() -> None:
        await asyncio.to_thread(ping, engine)

    async def object_store_ready() -> None:
        await asyncio.to_thread(store.check)

    service.readiness_checks["database"] = database_ready
    service.readiness_checks["object_store"] = object_store_ready
    _install_dependency_handlers(app, settings.retry_after_s)
    return app


def _metrics(service: ServiceState) -> CatalogMetrics:
    counter = service.metrics.counter
    return CatalogMetrics(
        media_stored=counter("finprint_catalog_media_stored_total", "Images stored (new bytes)."),
        dedup_hits=counter(
            "finprint_catalog_media_dedup_hits_total",
            "Uploads whose bytes were already stored (nothing stored).",
        ),
        enrolments=counter("finprint_catalog_enrolments_total", "Enrolments committed."),
        change_events=counter(
            "finprint_catalog_change_events_served_total", "Change events served to the matcher."
        ),
    )


def _install_dependency_handlers(app: FastAPI, retry_after_s: int) -> None:
    """A database or object store that fails is a 503 the client retries; a lost race is a 409."""

    async def database_down(request: Request, exc: Exception) -> JSONResponse:
        log.warning("database unavailable", extra={"fields": {"error": str(exc)[:300]}})
        return problem_response(DependencyUnavailable("database", type(exc).__name__, retry_after_s), request)

    async def store_down(request: Request, exc: Exception) -> JSONResponse:
        log.warning("object store unavailable", extra={"fields": {"error": str(exc)[:300]}})
        return problem_response(
            DependencyUnavailable("object store", type(exc).__name__, retry_after_s), request
        )

    async def conflict(request: Request, exc: Exception) -> JSONResponse:
        problem = Problem(
            409,
            "The request conflicts with a concurrent change (a unique value was taken "
            "meanwhile); nothing was changed. Retry it.",
            slug="conflict",
        )
        return problem_response(problem, request)

    app.add_exception_handler(OperationalError, database_down)
    # Every connection of the pool in use for database_pool_timeout_s (an overload): retry later, not a 500.
    app.add_exception_handler(PoolTimeout, database_down)
    app.add_exception_handler(InterfaceError, database_down)
    app.add_exception_handler(ObjectStoreError, store_down)
    app.add_exception_handler(IntegrityError, conflict)
