"""Images: stored once per organisation by SHA-256, with what their EXIF data says.

The object key is derived from the content (``media/<org>/<sha256>``), so a retried upload
rewrites nothing and an object written before a failed commit is simply found again next time.
"""

from __future__ import annotations

import hashlib
import io
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

from PIL import ExifTags, Image
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from finprint.imaging import MEDIA_TYPES, ImageLimits, read_image_info
from finprint.objectstore import ObjectStore
from finprint.problems import InvalidImage
from finprint.schemas.catalog import EncounterCreate
from services.catalog.adapters.db.models import Media

_EXIF_IFD = 0x8769
_GPS_IFD = 0x8825


@dataclass(frozen=True)
class ImageFacts:
    content_type: str
    width: int
    height: int
    taken_at: datetime | None
    utc_offset_minutes: int | None
    latitude: float | None
    longitude: float | None


@dataclass(frozen=True)
class StoredMedia:
    media: Media
    duplicate: bool


def object_key(org_id: str, sha256: str) -> str:
    return f"media/{org_id}/{sha256[:2]}/{sha256}"


def read_image_facts(data: bytes, limits: ImageLimits) -> ImageFacts:
    """Format, upright size, EXIF date-time and position; :class:`InvalidImage` for an image we do not take.

    The checks and the size are the detector's (:mod:`finprint.imaging`): the format is sniffed
    from the bytes, the limits hold before decoding, and width/height are those of the photo as
    a viewer sees it (EXIF orientation applied), the frame annotation boxes are given in.
    """
    info = read_image_info(data, limits)
    with Image.open(io.BytesIO(data)) as image:
        _require_decodable(image, info.format)
        exif = image.getexif()
    taken_at, offset = _exif_datetime(exif)
    latitude, longitude = _exif_position(exif)
    return ImageFacts(
        MEDIA_TYPES[info.format], info.width, info.height, taken_at, offset, latitude, longitude
    )


def _require_decodable(image: Image.Image, fmt: str) -> None:
    """The system of record keeps only photos that decode to the end (an interrupted upload does not).

    JPEGs decode at 1/8 scale (DCT scaling): every byte of the scan is still read, at little cost.
    """
    if fmt == "jpeg":
        image.draft("RGB", (max(1, image.width // 8), max(1, image.height // 8)))
    try:
        image.load()
    except Exception as exc:  # Pillow's decoders raise OSError, SyntaxError, ValueError...
        raise InvalidImage("corrupt", f"The {fmt.upper()} file cannot be decoded to the end: {exc}") from exc


def _exif_datetime(exif: Image.Exif) -> tuple[datetime | None, int | None]:
    details = exif.get_ifd(_EXIF_IFD)
    raw = details.get(ExifTags.Base.DateTimeOriginal) or exif.get(ExifTags.Base.DateTime)
    if not isinstance(raw, str):
        return None, None
    try:
        local = datetime.strptime(raw.strip("\x00 "), "%Y:%m:%d %H:%M:%S")
    except ValueError:
        return None, None
    offset = _parse_offset(details.get(ExifTags.Base.OffsetTimeOriginal))
    if offset is None:
        # Cameras record local time without a zone; UTC is the honest default and is flagged by
        # the missing offset.
        return local.replace(tzinfo=UTC), None
    return local.replace(tzinfo=timezone(timedelta(minutes=offset))), offset


def _parse_offset(raw: Any) -> int | None:
    if not isinstance(raw, str) or len(raw.strip()) != 6 or raw[0] not in "+-" or raw[3] != ":":
        return None
    try:
        minutes = int(raw[1:3]) * 60 + int(raw[4:6])
    except ValueError:
        return None
    return -minutes if raw[0] == "-" else minutes


def _exif_position(exif: Image.Exif) -> tuple[float | None, float | None]:
    gps = exif.get_ifd(_GPS_IFD)
    try:
        latitude = _degrees(gps[ExifTags.GPS.GPSLatitude], gps.get(ExifTags.GPS.GPSLatitudeRef, "N"), "S")
        longitude = _degrees(gps[ExifTags.GPS.GPSLongitude], gps.get(ExifTags.GPS.GPSLongitudeRef, "E"), "W")
    except (KeyError, TypeError, ValueError, ZeroDivisionError):
        return None, None
    if not (-90 <= latitude <= 90 and -180 <= longitude <= 180):
        return None, None
    return latitude, longitude


def _degrees(dms: Any, ref: Any, negative_ref: str) -> float:
    degrees, minutes, seconds = (float(part) for part in dms)
    value = degrees + minutes / 60 + seconds / 3600
    return -value if str(ref).strip("\x00 ").upper() == negative_ref else value


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
    session.add(media)
    session.flush()
    return StoredMedia(media, duplicate=False)


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
