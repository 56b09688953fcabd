"""Idempotency keys: the answer to a creating POST is stored with its key, in the same
transaction as what it created, so a retried request gets the same answer and creates nothing."""

from __future__ import annotations

import hashlib
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from finprint.problems import Problem
from services.catalog.adapters.db.models import IdempotencyRecord


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
    session.add(
        IdempotencyRecord(
            org_id=org_id, key=key, request_sha256=request_sha256, status_code=status_code, response=response
        )
    )
    session.flush()
