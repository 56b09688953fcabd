"""Offset paging: a page of a query's rows with the count over all pages, and its ``Page`` body."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlalchemy import Select, func, select
from sqlalchemy.orm import Session


def fetch_page(session: Session, query: Select[Any], offset: int, limit: int) -> tuple[list[Any], int]:
    """The rows of one page and how many rows the query has in all."""
    rows = list(session.scalars(query.offset(offset).limit(limit)))
    total = session.scalar(select(func.count()).select_from(query.order_by(None).subquery())) or 0
    return rows, total


def paged(
    items: list[Any], total: int, offset: int, limit: int, convert: Callable[[Any], Any]
) -> dict[str, Any]:
    """A ``Page`` body of ``items`` converted to their wire schema."""
    return {"items": [convert(i) for i in items], "total": total, "offset": offset, "limit": limit}
