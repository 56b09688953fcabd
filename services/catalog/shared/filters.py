"""Filters by sighting that several lists share: individuals seen, encounters, identifications whose
photo was taken in a period, at a place, or without a date."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ColumnElement, func

from services.catalog.adapters.db.models import Encounter
from services.catalog.shared.problems import Invalid


def require_zone(name: str, moment: datetime | None) -> None:
    if moment is not None and moment.tzinfo is None:
        raise Invalid(f"{name} needs a time zone (e.g. 2024-07-01T00:00:00Z)", field=name)


def contains(column: ColumnElement[str | None], text: str) -> ColumnElement[bool]:
    """``column`` holds ``text``, ignoring case; ``%`` and ``_`` in it are plain characters."""
    escaped = text.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return func.lower(column).like(f"%{escaped}%", escape="\\")


def sighting_conditions(
    *, since: datetime | None = None, until: datetime | None = None, location: str | None = None,
    dated: bool | None = None,
) -> list[ColumnElement[bool]]:
    """Conditions on ``Encounter``: taken in [since, until), at a place whose name holds ``location``,
    with a date (``dated``) or without one (``dated=False``); nothing given, no condition."""
    require_zone("since", since)
    require_zone("until", until)
    conditions: list[ColumnElement[bool]] = []
    if since is not None:
        conditions.append(Encounter.occurred_at >= since)
    if until is not None:
        conditions.append(Encounter.occurred_at < until)
    if location:
        conditions.append(contains(Encounter.location_name, location))
    if dated is not None:
        conditions.append(Encounter.occurred_at.is_not(None) if dated else Encounter.occurred_at.is_(None))
    return conditions
