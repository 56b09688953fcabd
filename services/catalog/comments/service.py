"""Adding a comment or a reply, and reading the thread of one subject."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from finprint.schemas.catalog import CommentCreate, CommentOut
from services.catalog.adapters.db.models import Comment, Encounter, Identification
from services.catalog.shared.database import inserted
from services.catalog.shared.problems import Invalid
from services.catalog.shared.scoping import get_owned


def add_comment(session: Session, org_id: str, request: CommentCreate) -> Comment:
    if request.encounter_id:
        get_owned(session, Encounter, org_id, request.encounter_id, "Encounter")
    if request.identification_id:
        get_owned(session, Identification, org_id, request.identification_id, "Identification")
    if request.parent_id:
        parent = get_owned(session, Comment, org_id, request.parent_id, "Comment")
        same_subject = (parent.encounter_id, parent.identification_id) == (
            request.encounter_id, request.identification_id
        )
        if not same_subject:
            raise Invalid(
                "a reply must be about the same encounter or identification as its parent", field="parent_id"
            )
    return inserted(session, Comment(org_id=org_id, **request.model_dump()))


def thread(
    session: Session, org_id: str, *, encounter_id: str | None, identification_id: str | None
) -> list[CommentOut]:
    """The comments about one subject as trees: top-level comments oldest first, replies nested."""
    if (encounter_id is None) == (identification_id is None):
        raise Invalid(
            "ask for the comments of exactly one of encounter_id and identification_id", field="encounter_id"
        )
    subject = (
        Comment.encounter_id == encounter_id
        if encounter_id
        else Comment.identification_id == identification_id
    )
    query = select(Comment).where(Comment.org_id == org_id, subject).order_by(Comment.created_at, Comment.id)
    comments = list(session.scalars(query))
    nodes = {c.id: CommentOut.model_validate(c) for c in comments}
    roots = []
    for comment in comments:
        node = nodes[comment.id]
        parent = nodes.get(comment.parent_id) if comment.parent_id else None
        (parent.replies if parent is not None else roots).append(node)
    return roots
