"""Appending to the audit log and reading it back (the ORM refuses updates and deletes of its rows)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from services.catalog.adapters.db.models import AuditEntry
from services.catalog.shared.paging import fetch_page


def append(
    session: Session, org_id: str, entity_type: str, entity_id: str, action: str, actor: str | None, **details: Any
) -> AuditEntry:
    entry = AuditEntry(org_id=org_id, entity_type=entity_type, entity_id=entity_id, action=action, actor=actor,
                       details=details)
    session.add(entry)
    session.flush()
    return entry


def entries(
    session: Session,
    org_id: str,
    *,
    entity_type: str | None = None,
    entity_id: str | None = None,
    offset: int = 0,
    limit: int = 100,
) -> tuple[list[AuditEntry], int]:
    """The entries of an organisation, oldest first, optionally of one entity type or entity."""
    query = select(AuditEntry).where(AuditEntry.org_id == org_id)
    if entity_type:
        query = query.where(AuditEntry.entity_type == entity_type)
    if entity_id:
        query = query.where(AuditEntry.entity_id == entity_id)
    return fetch_page(session, query.order_by(AuditEntry.id), offset, limit)
