"""Storing images once per organisation, and the encounter their EXIF data describes.

The object key is derived from the content (``media/<org>/<sha256>``), so a retried upload
rewrites nothing and an object written before a failed commit is simply found again next time.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import timedelta, timezone
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from finprint.imaging import ImageLimits
from finprint.objectstore import ObjectStore
from finprint.schemas.catalog import EncounterCreate
from services.catalog.adapters.db.models import Media
from services.catalog.encounters.media.image_facts import read_image_facts
from services.catalog.shared.database import inserted
from services.catalog.shared.problems import NotFound
from services.catalog.shared.scoping import get_owned


@dataclass(frozen=True)
class StoredMedia:
    media: Media
    duplicate: bool


def object_key(org_id: str, sha256: str) -> str:
    return f"media/{org_id}/{sha256[:2]}/{sha256}"


def get_media(session: Session, org_id: str, media_id: str) -> Media:
    return get_owned(session, Media, org_id, media_id, "Media")


def find_by_sha256(session: Session, org_id: str, sha256: str) -> Media | None:
    return session.scalar(select(Media).where(Media.org_id == org_id, Media.sha256 == sha256))


def store_media(
    session: Session,
    store: ObjectStore,
    org_id: str,
    data: bytes,
    *,
    filename: str | None,
    uploaded_by: str | None,
    limits: ImageLimits,
    encounter_id: str | None = None,
) -> StoredMedia:
    """Store an image once per organisation: the same bytes again return the stored media."""
    sha256 = hashlib.sha256(data).hexdigest()
    existing = find_by_sha256(session, org_id, sha256)
    if existing is not None:
        return StoredMedia(existing, duplicate=True)
    facts = read_image_facts(data, limits)
    key = object_key(org_id, sha256)
    if not store.exists(key):
        store.put(key, data, facts.content_type)
    media = Media(
        org_id=org_id,
        encounter_id=encounter_id,
        object_key=key,
        sha256=sha256,
        content_type=facts.content_type,
        size_bytes=len(data),
        width=facts.width,
        height=facts.height,
        original_filename=filename,
        exif_taken_at=facts.taken_at,
        exif_utc_offset_minutes=facts.utc_offset_minutes,
        exif_latitude=facts.latitude,
        exif_longitude=facts.longitude,
        uploaded_by=uploaded_by,
    )
    return StoredMedia(inserted(session, media), duplicate=False)


def store_media_alone(
    session: Session, store: ObjectStore, org_id: str, data: bytes, **kwargs: Any
) -> StoredMedia:
    """:func:`store_media` as its own transaction, committed; a concurrent upload of the same bytes
    (the unique key refuses the second row) answers with the media the other one stored."""
    try:
        stored = store_media(session, store, org_id, data, **kwargs)
        session.commit()
        return stored
    except IntegrityError:
        session.rollback()
        existing = find_by_sha256(session, org_id, hashlib.sha256(data).hexdigest())
        if existing is None:
            raise
        return StoredMedia(existing, duplicate=True)


def encounter_prefill(media: Media) -> EncounterCreate:
    """What the image's EXIF data says about the encounter it belongs to."""
    occurred_at = media.exif_taken_at
    if occurred_at is not None and media.exif_utc_offset_minutes is not None:
        occurred_at = occurred_at.astimezone(timezone(timedelta(minutes=media.exif_utc_offset_minutes)))
    return EncounterCreate(
        occurred_at=occurred_at, latitude=media.exif_latitude, longitude=media.exif_longitude
    )


def with_exif_defaults(encounter: EncounterCreate | None, media: Media) -> EncounterCreate:
    """The encounter as given, its date-time and position taken from the photo's EXIF where left out."""
    given = encounter or EncounterCreate()
    exif = encounter_prefill(media)
    updates: dict[str, Any] = {}
    if given.occurred_at is None:
        updates["occurred_at"] = exif.occurred_at
    if given.latitude is None and given.longitude is None:
        updates.update(latitude=exif.latitude, longitude=exif.longitude)
    return given.model_copy(update=updates)


def media_with_sha256(session: Session, org_id: str, sha256: str) -> Media:
    """The organisation's image with these bytes (the hex digest in either case), else 404."""
    media = find_by_sha256(session, org_id, sha256.lower())
    if media is None:
        raise NotFound("Media with SHA-256", sha256)
    return media
