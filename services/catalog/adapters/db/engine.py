"""Engine and sessions from ``FINPRINT_CATALOG_DATABASE_URL`` (PostgreSQL or SQLite)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker


def make_engine(database_url: str, *, pool_size: int = 5, pool_timeout_s: float = 30.0) -> Engine:
    """An engine with the settings each backend needs.

    SQLite: foreign keys on (off by default there), a 30 s busy timeout so concurrent writers
    wait instead of failing, WAL so readers do not block the writer, and connections usable from
    FastAPI's worker threads. PostgreSQL: a pre-pinged pool so a restarted server is survived.
    """
    url = make_url(database_url)
    if url.get_backend_name() == "sqlite":
        if url.database and url.database != ":memory:":
            Path(url.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})
        event.listen(engine, "connect", _configure_sqlite)
        return engine
    return create_engine(url, pool_pre_ping=True, pool_size=pool_size, max_overflow=2 * pool_size,
                         pool_timeout=pool_timeout_s)


def _configure_sqlite(dbapi_connection: Any, _record: object) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.close()


def make_session_factory(engine: Engine) -> sessionmaker[Session]:
    # expire_on_commit=False: routes build their response from objects after committing.
    return sessionmaker(engine, expire_on_commit=False)


def ping(engine: Engine) -> None:
    """Raise when the database does not answer (readiness)."""
    with engine.connect() as connection:
        connection.execute(text("SELECT 1"))
