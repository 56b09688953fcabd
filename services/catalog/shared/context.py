"""What the routes use besides the request: built once by the app factory, hung on ``app.state.catalog``."""

from __future__ import annotations

from dataclasses import dataclass

from prometheus_client import Counter
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from finprint.objectstore import ObjectStore
from services.catalog.settings import CatalogSettings


@dataclass
class CatalogMetrics:
    media_stored: Counter
    dedup_hits: Counter
    enrolments: Counter
    change_events: Counter


@dataclass
class Catalog:
    settings: CatalogSettings
    engine: Engine
    sessions: sessionmaker[Session]
    store: ObjectStore
    metrics: CatalogMetrics
