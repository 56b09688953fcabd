"""Route of the audit log."""

from __future__ import annotations

from fastapi import APIRouter

from finprint.schemas.catalog import AuditEntryOut, Page
from services.catalog.audit import service as audit
from services.catalog.shared.dependencies import DbSession, Limit, Offset, OrgId
from services.catalog.shared.paging import paged

router = APIRouter(prefix="/v1", tags=["collaboration and jobs"])


@router.get("/orgs/{org_id}/audit", summary="The audit log, oldest first")
def list_audit(
    org_id: OrgId, db: DbSession, offset: Offset = 0, limit: Limit = 100,
    entity_type: str | None = None, entity_id: str | None = None,
) -> Page[AuditEntryOut]:
    entries = audit.select_entries(org_id, entity_type=entity_type, entity_id=entity_id)
    return paged(db, entries, offset, limit, AuditEntryOut.model_validate)
