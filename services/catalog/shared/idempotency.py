"""Idempotent creation: how a POST that creates an organisation's data writes, commits and answers.

With an ``Idempotency-Key`` the answer is stored with the key (per organisation) in the same
transaction as what the request created, so a retry gets the first answer (``Idempotent-Replayed:
true``) and creates nothing; the same key with another request is a 422. Without a key the request
is simply written and committed.

A route declares :data:`Creation` and hands it its body and the function that writes::

    def add_comment(org_id: OrgId, payload: CommentCreate, db: DbSession, create: Creation) -> JSONResponse:
        return create(payload, lambda: CommentOut.model_validate(comments.add_comment(db, org_id, payload)))
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import Annotated, Any

from fastapi import Depends, Header, Request
from fastapi.encoders import jsonable_encoder
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from finprint.problems import Problem
from services.catalog.adapters.db.models import IdempotencyRecord
from services.catalog.shared.database import inserted
from services.catalog.shared.dependencies import DbSession, OrgId

REPLAYED_HEADER = "Idempotent-Replayed"
FINGERPRINT_HEADER = "Idempotency-Fingerprint"

IdempotencyKey = Annotated[
    str | None,
    Header(alias="Idempotency-Key", max_length=200, description="Send the same key to retry safely."),
]


class KeyReused(Problem):
    def __init__(self, key: str) -> None:
        super().__init__(
            422,
            f"Idempotency-Key {key!r} was used before for a different request; use a new key.",
            slug="idempotency-key-reused",
        )


def fingerprint(method: str, path: str, body: bytes) -> str:
    return hashlib.sha256(b"\n".join([method.encode(), path.encode(), body])).hexdigest()


def previous_answer(session: Session, org_id: str, key: str, request_sha256: str) -> IdempotencyRecord | None:
    record = session.scalar(
        select(IdempotencyRecord).where(IdempotencyRecord.org_id == org_id, IdempotencyRecord.key == key)
    )
    if record is not None and record.request_sha256 != request_sha256:
        raise KeyReused(key)
    return record


def remember(
    session: Session, org_id: str, key: str, request_sha256: str, status_code: int, response: dict[str, Any]
) -> None:
    record = IdempotencyRecord(
        org_id=org_id, key=key, request_sha256=request_sha256, status_code=status_code, response=response
    )
    inserted(session, record)


def replayed(response: JSONResponse) -> bool:
    """Whether the answer is a stored one (the request created nothing this time)."""
    return REPLAYED_HEADER in response.headers


class IdempotentCreation:
    """Writes a creating request once and commits it; a retry with the same key gets the stored answer."""

    def __init__(self, session: Session, org_id: str, key: str | None, request: Request) -> None:
        self._session = session
        self._org_id = org_id
        self._key = key
        self._method = request.method
        self._path = request.url.path
        # A caller that derives this request from its own client's request (the gateway, after detection
        # and embedding, which may differ on a retry) sends the fingerprint of the original request: that
        # identifies the request instead of the derived body.
        self._caller_fingerprint = request.headers.get(FINGERPRINT_HEADER)
        # The status the route documents, so that the answer and the OpenAPI document cannot disagree.
        self._status_code = request.scope["route"].status_code or 200

    def __call__(self, payload: BaseModel, make: Callable[[], BaseModel]) -> JSONResponse:
        """Answer with what ``make`` writes (and returns), committed, or with the first answer to this key."""
        request_sha256 = self._request_sha256(payload)
        previous = self._previous_answer(request_sha256)
        if previous is not None:
            return _replay(previous)
        body = jsonable_encoder(make())
        if self._key:
            remember(self._session, self._org_id, self._key, request_sha256, self._status_code, body)
        try:
            self._session.commit()
        except IntegrityError:
            # A unique value was taken meanwhile: by a concurrent retry of this request, whose answer
            # is then this one's; else the conflict goes on to the app's 409.
            self._session.rollback()
            previous = self._previous_answer(request_sha256)
            if previous is None:
                raise
            return _replay(previous)
        return JSONResponse(body, status_code=self._status_code)

    def _request_sha256(self, payload: BaseModel) -> str:
        identity = self._caller_fingerprint or payload.model_dump_json()
        return fingerprint(self._method, self._path, identity.encode())

    def _previous_answer(self, request_sha256: str) -> IdempotencyRecord | None:
        return previous_answer(self._session, self._org_id, self._key, request_sha256) if self._key else None


def _replay(record: IdempotencyRecord) -> JSONResponse:
    return JSONResponse(record.response, status_code=record.status_code, headers={REPLAYED_HEADER: "true"})


def idempotent_creation(
    request: Request, db: DbSession, org_id: OrgId, idempotency_key: IdempotencyKey = None
) -> IdempotentCreation:
    return IdempotentCreation(db, org_id, idempotency_key, request)


Creation = Annotated[IdempotentCreation, Depends(idempotent_creation)]
"""What a creating route declares: it adds the ``Idempotency-Key`` header to the route's contract."""
