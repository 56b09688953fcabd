"""Appending to the audit log and reading it back (the ORM refuses updates and deletes of its rows)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Select
from sqlalchemy.orm import Session

from services.catalog.adapters.db.models import AuditEntry
from services.catalog.shared.database import inserted
from services.catalog.shared.scoping import select_owned


def append(
    session: Session,
    org_id: str,
    entity_type: str,
    entity_id: str,
    action: str,
    actor: str | None,
    **details: Any,
) -> AuditEntry:
    entry = AuditEntry(
        org_id=org_id, entity_type=entity_type, entity_id=entity_id, action=action, actor=actor,
        details=details,
    )
    return inserted(session, entry)


def select_entries(
    org_id: str, *, entity_type: str | None = None, entity_id: str | None = None
) -> Select[tuple[AuditEntry]]:
    """The organisation's entries, oldest first, of one entity type or one entity when given."""
    query = select_owned(AuditEntry, org_id, entity_type=entity_type, entity_id=entity_id)
    return query.order_by(AuditEntry.id)
