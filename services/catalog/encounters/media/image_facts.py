"""What an image's bytes say: its format and upright size, and the EXIF date-time and GPS position."""

from __future__ import annotations

import io
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

from PIL import ExifTags, Image

from finprint.imaging import MEDIA_TYPES, ImageLimits, read_image_info
from finprint.problems import InvalidImage

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
