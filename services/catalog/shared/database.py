"""New rows: how a row enters the session, so that what the database decides is known at once."""

from __future__ import annotations

from typing import TypeVar

from sqlalchemy.orm import Session

Row = TypeVar("Row")


def inserted(session: Session, row: Row) -> Row:
    """``row``, added and flushed: its id and defaults are set, and a constraint it breaks fails here
    (inside the request's transaction, which is committed once at its end)."""
    session.add(row)
    session.flush()
    return row
