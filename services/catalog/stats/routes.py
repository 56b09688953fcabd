"""Route of the catalogue's figures."""

from __future__ import annotations

from fastapi import APIRouter

from finprint.schemas.catalog import CatalogueStats
from services.catalog.shared.dependencies import DbSession, OrgId
from services.catalog.stats import service as stats

router = APIRouter(prefix="/v1", tags=["catalogue"])


@router.get("/orgs/{org_id}/stats", summary="Figures for charts")
def catalogue_stats(org_id: OrgId, db: DbSession) -> CatalogueStats:
    return stats.catalogue_stats(db, org_id)
