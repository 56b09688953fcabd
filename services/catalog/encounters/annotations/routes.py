"""Routes of annotations."""

from __future__ import annotations

from fastapi import APIRouter, Response
from fastapi.responses import JSONResponse

from finprint.schemas.catalog import AnnotationCreate, AnnotationOut, AnnotationUpdate, Page
from services.catalog.encounters.annotations import service as annotations
from services.catalog.shared.dependencies import DbSession, Limit, Offset, OrgId
from services.catalog.shared.idempotency import Creation
from services.catalog.shared.paging import paged

router = APIRouter(prefix="/v1", tags=["catalogue"])


@router.post("/orgs/{org_id}/annotations", response_model=AnnotationOut, status_code=201,
             summary="Annotate an animal in an image (box, view, species, embedding)")
def create_annotation(org_id: OrgId, payload: AnnotationCreate, db: DbSession, create: Creation,
                      actor: str | None = None) -> JSONResponse:
    return create(
        payload, lambda: annotations.annotation_out(annotations.create_annotation(db, org_id, payload, actor))
    )


@router.get("/orgs/{org_id}/annotations", summary="Browse annotations")
def list_annotations(org_id: OrgId, db: DbSession, offset: Offset = 0, limit: Limit = 100,
                     media_id: str | None = None, individual_id: str | None = None) -> Page[AnnotationOut]:
    found = annotations.select_annotations(org_id, media_id=media_id, individual_id=individual_id)
    return paged(db, found, offset, limit, annotations.annotation_out)


@router.get("/orgs/{org_id}/annotations/{annotation_id}", summary="An annotation")
def get_annotation(org_id: OrgId, annotation_id: str, db: DbSession) -> AnnotationOut:
    return annotations.annotation_out(annotations.get_annotation(db, org_id, annotation_id))


@router.patch("/orgs/{org_id}/annotations/{annotation_id}", summary="Edit or reassign an annotation")
def update_annotation(
    org_id: OrgId, annotation_id: str, payload: AnnotationUpdate, db: DbSession
) -> AnnotationOut:
    annotation = annotations.update_annotation(db, org_id, annotation_id, payload)
    db.commit()
    return annotations.annotation_out(annotation)


@router.delete("/orgs/{org_id}/annotations/{annotation_id}", status_code=204, summary="Delete an annotation")
def delete_annotation(org_id: OrgId, annotation_id: str, db: DbSession, actor: str | None = None) -> Response:
    annotations.delete_annotation(db, org_id, annotation_id, actor)
    db.commit()
    return Response(status_code=204)
