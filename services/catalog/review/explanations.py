"""Explanations of candidates, kept in the object store: computed once (by the embedder, through the
gateway), then served to every reviewer who opens the same pair. Keyed by the identification and the
candidate individual; the model version is recorded, so a re-embedded catalogue knows it is stale."""

from __future__ import annotations

import base64
import binascii
import json
from datetime import UTC, datetime, timedelta

from sqlalchemy.orm import Session

from finprint.objectstore import ObjectNotFound, ObjectStore
from finprint.schemas.catalog import ExplainedPhoto, ExplanationCreate, ExplanationOut
from services.catalog.review.service import get_identification
from services.catalog.shared.problems import Invalid, NotFound

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
SIDES = ("query", "candidate")


def _prefix(org_id: str, identification_id: str, individual_id: str) -> str:
    return f"explanations/{org_id}/{identification_id}/{individual_id}"


def _png(text: str, side: str) -> bytes:
    try:
        data = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        data = b""
    if not data.startswith(PNG_SIGNATURE):
        raise Invalid(f"the {side} overlay is not base64 of a PNG", field=f"{side}.overlay_png_base64")
    return data


def _candidate_of(session: Session, org_id: str, identification_id: str, individual_id: str) -> None:
    """404 unless the individual is one of the identification's candidates (in this organisation)."""
    identification = get_identification(session, org_id, identification_id)
    if all(c.get("individual_id") != individual_id for c in identification.candidates):
        raise NotFound("Candidate", individual_id)


def save_explanation(session: Session, store: ObjectStore, org_id: str, identification_id: str,
                     individual_id: str, request: ExplanationCreate, expires_s: int) -> ExplanationOut:
    _candidate_of(session, org_id, identification_id, individual_id)
    prefix = _prefix(org_id, identification_id, individual_id)
    overlays = {side: _png(getattr(request, side).overlay_png_base64, side) for side in SIDES}
    for side, data in overlays.items():
        store.put(f"{prefix}/{side}.png", data, "image/png")
    record = request.model_dump(exclude={"query": {"overlay_png_base64"}, "candidate": {"overlay_png_base64"}})
    # Written last: an explanation is there only once both overlays are.
    store.put(f"{prefix}/explanation.json", json.dumps(record).encode(), "application/json")
    return _out(store, prefix, identification_id, individual_id, record, expires_s)


def get_explanation(session: Session, store: ObjectStore, org_id: str, identification_id: str,
                    individual_id: str, expires_s: int) -> ExplanationOut:
    _candidate_of(session, org_id, identification_id, individual_id)
    prefix = _prefix(org_id, identification_id, individual_id)
    try:
        record = json.loads(store.get(f"{prefix}/explanation.json"))
    except ObjectNotFound:
        raise NotFound("Explanation", f"{identification_id}/{individual_id}") from None
    return _out(store, prefix, identification_id, individual_id, record, expires_s)


def _out(store: ObjectStore, prefix: str, identification_id: str, individual_id: str, record: dict,
         expires_s: int) -> ExplanationOut:
    photos = {side: ExplainedPhoto(media_id=record[side]["media_id"], heatmap=record[side]["heatmap"],
                                   overlay_url=store.presigned_get_url(f"{prefix}/{side}.png", expires_s))
              for side in SIDES}
    return ExplanationOut(identification_id=identification_id, individual_id=individual_id,
                          model_version=record["model_version"], similarity=record["similarity"], grid=record["grid"],
                          window=record["window"], expires_at=datetime.now(UTC) + timedelta(seconds=expires_s),
                          **photos)
