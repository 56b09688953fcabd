"""Organisation scoping: a row of another organisation is as absent as a row that does not exist."""

from __future__ import annotations

from typing import Protocol, TypeVar

from sqlalchemy import Select, select
from sqlalchemy.orm import Mapped, Session

from services.catalog.adapters.db.models import Organisation
from services.catalog.shared.problems import NotFound


class OrgScoped(Protocol):
    org_id: Mapped[str]


class OrgOwned(OrgScoped, Protocol):
    id: Mapped[str]


Row = TypeVar("Row", bound=OrgOwned)
ScopedRow = TypeVar("ScopedRow", bound=OrgScoped)


def get_organisation(session: Session, org_id: str) -> Organisation:
    organisation = session.get(Organisation, org_id)
    if organisation is None:
        raise NotFound("Organisation", org_id)
    return organisation


def get_owned(session: Session, model: type[Row], org_id: str, row_id: str, what: str) -> Row:
    """The row with ``row_id`` in organisation ``org_id``, else 404 (never revealing the other org's row)."""
    row = session.scalar(select(model).where(model.id == row_id, model.org_id == org_id))
    if row is None:
        raise NotFound(what, row_id)
    return row


def select_owned(model: type[ScopedRow], org_id: str, **equal_to: object) -> Select[tuple[ScopedRow]]:
    """The organisation's rows of ``model`` whose columns equal the values given; a value left empty
    (None) filters nothing."""
    query = select(model).where(model.org_id == org_id)
    for column, value in equal_to.items():
        if value:
            query = query.where(getattr(model, column) == value)
    return query
