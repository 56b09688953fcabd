"""Routes of comments."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from finprint.schemas.catalog import CommentCreate, CommentOut
from services.catalog.comments import service as comments
from services.catalog.shared.dependencies import DbSession, OrgId
from services.catalog.shared.idempotency import Creation

router = APIRouter(prefix="/v1", tags=["collaboration and jobs"])


@router.post(
    "/orgs/{org_id}/comments", response_model=CommentOut, status_code=201, summary="Comment or reply"
)
def add_comment(org_id: OrgId, payload: CommentCreate, db: DbSession, create: Creation) -> JSONResponse:
    return create(payload, lambda: CommentOut.model_validate(comments.add_comment(db, org_id, payload)))


@router.get("/orgs/{org_id}/comments", summary="The threaded comments on an encounter or an identification")
def list_comments(org_id: OrgId, db: DbSession, encounter_id: str | None = None,
                  identification_id: str | None = None) -> list[CommentOut]:
    return comments.thread(db, org_id, encounter_id=encounter_id, identification_id=identification_id)
