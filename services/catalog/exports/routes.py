"""Routes of the exports: encounters CSV, organised dataset ZIP, Darwin Core Archive."""

from __future__ import annotations

from datetime import date
from typing import Annotated

from fastapi import APIRouter, Query, Response
from fastapi.responses import PlainTextResponse, StreamingResponse

from services.catalog.exports import service as exports
from services.catalog.shared.dependencies import CatalogContext, DbSession, OrgId

router = APIRouter(prefix="/v1/orgs/{org_id}/exports", tags=["exports"])
CC_BY = "http://creativecommons.org/licenses/by/4.0/legalcode"
LicenseUrl = Annotated[str, Query(alias="license", max_length=300)]


def _attachment(filename: str) -> dict[str, str]:
    return {"Content-Disposition": f'attachment; filename="{filename}"'}


@router.get("/encounters.csv", response_class=PlainTextResponse, summary="Encounters as CSV")
def export_encounters(org_id: OrgId, db: DbSession) -> Response:
    csv = exports.encounters_csv(db, org_id)
    return Response(csv, media_type="text/csv; charset=utf-8", headers=_attachment("encounters.csv"))


@router.get("/dataset.zip", response_class=StreamingResponse,
            summary="The organised dataset: a folder of images per individual, and labels.csv")
def export_dataset(context: CatalogContext, org_id: OrgId, db: DbSession) -> StreamingResponse:
    archive = exports.dataset_zip(db, context.store, org_id)
    chunks = exports.iter_file(archive)
    return StreamingResponse(chunks, media_type="application/zip", headers=_attachment("dataset.zip"))


@router.get("/dwca.zip", response_class=Response,
            summary="A Darwin Core Archive (occurrence.txt, meta.xml, eml.xml) for GBIF/OBIS")
def export_darwin_core(org_id: OrgId, db: DbSession, license_url: LicenseUrl = CC_BY) -> Response:
    data = exports.darwin_core_archive(db, org_id, license_url=license_url, published=date.today())
    return Response(data, media_type="application/zip", headers=_attachment("dwca.zip"))
