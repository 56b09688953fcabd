"""Offset paging: one page of a query's rows, in their wire schema, with the count over all pages.

The domains' services say which rows a list holds and in which order (a query); the routes page it
with the offset and limit of the request.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from sqlalchemy import Select, func, select
from sqlalchemy.orm import Session

from finprint.schemas.catalog import Page

Row = TypeVar("Row")
Item = TypeVar("Item")


def paged(
    session: Session, query: Select[tuple[Row]], offset: int, limit: int, convert: Callable[[Row], Item]
) -> Page[Item]:
    rows = list(session.scalars(query.offset(offset).limit(limit)))
    total = session.scalar(select(func.count()).select_from(query.order_by(None).subquery())) or 0
    return Page(items=[convert(row) for row in rows], total=total, offset=offset, limit=limit)
