"""Offset pagination helpers."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Select, func, select
from sqlalchemy.orm import Session


def page(session: Session, query: Select[Any], offset: int, limit: int) -> list[Any]:
    return list(session.scalars(query.offset(offset).limit(limit)))


def count(session: Session, query: Select[Any]) -> int:
    return session.scalar(select(func.count()).select_from(query.order_by(None).subquery())) or 0
