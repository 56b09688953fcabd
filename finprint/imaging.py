"""Uploaded photos to model input: the shared, CPU-bound preprocessing of detector and embedder.

Everything a client sends is checked before any pixel is decoded: the type is sniffed from the
bytes (JPEG, PNG and WebP are accepted; the Content-Type header is not trusted), the byte size
and the pixel count read from the header are bounded (a decompression bomb is refused before it
allocates anything). A failure is an :class:`~finprint.problems.InvalidImage` whose ``reason``
names it: ``empty``, ``too-large`` and ``too-many-pixels`` (413), ``unsupported-format`` (415,
with ``detected_format``: svg, html, gif, heic...), ``truncated``, ``corrupt`` or ``too-small`` (422). A crop
box with no pixel inside the photo is an :class:`InvalidBox` (422, ``invalid-box``).

The model input follows the training pipeline (``finprint_train.data.read_image``): the
whole crop is stretched to an ``input_size`` square with a bilinear filter, no letterbox, and
JPEGs are decoded at a reduced scale (libjpeg DCT scaling through ``Image.draft``) that keeps
at least twice the target resolution across the region used. EXIF orientation is applied, so
boxes are in the coordinates of the photo as a viewer shows it.
"""

from __future__ import annotations

import io
import math
import struct
from dataclasses import dataclass
from typing import Literal

import numpy as np
from PIL import Image
from pydantic import BaseModel, Field

from finprint.problems import InvalidImage, Problem

ImageFormat = Literal["jpeg", "png", "webp"]
Box = tuple[float, float, float, float]
"""``(x0, y0, x1, y1)`` in pixels of the EXIF-oriented original photo."""

PILLOW_FORMATS: dict[ImageFormat, str] = {"jpeg": "JPEG", "png": "PNG", "webp": "WEBP"}
MEDIA_TYPES: dict[ImageFormat, str] = {"jpeg": "image/jpeg", "png": "image/png", "webp": "image/webp"}

# Reduced JPEG decoding keeps this many times the target resolution, as training does: the
# bilinear downscale from there is what the models saw.
DRAFT_OVERSAMPLING = 2

# EXIF orientation tag value -> the transpose that shows the photo upright (as ImageOps.exif_transpose).
_ORIENTATION_TAG = 0x0112
_UPRIGHT: dict[int, Image.Transpose] = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}
_SWAPS_AXES = frozenset({5, 6, 7, 8})


@dataclass(frozen=True)
class ImageLimits:
    max_bytes: int = 25 * 1024 * 1024
    max_pixels: int = 64_000_000
    min_side: int = 32
    """Narrower or shorter than this, a photo cannot show an animal the models could tell apart (their
    input is 224 px and more): any answer about it would be noise, so it is refused."""


class ImageLimitSettings(BaseModel):
    """The limits of a service that reads photos, mixed into its settings (``FINPRINT_<SERVICE>_MAX_IMAGE_BYTES`` ...)."""

    max_image_bytes: int = Field(ImageLimits.max_bytes, gt=0, description="Largest photo accepted, bytes (413 beyond).")
    max_image_pixels: int = Field(
        ImageLimits.max_pixels, gt=0,
        description="Largest photo accepted, width x height, read from its header before any pixel is decoded "
        "(413 beyond: the decompression-bomb guard).",
    )

    def image_limits(self) -> ImageLimits:
        return ImageLimits(max_bytes=self.max_image_bytes, max_pixels=self.max_image_pixels)


@dataclass(frozen=True)
class ImageInfo:
    """The photo as a viewer sees it (EXIF orientation applied)."""

    format: ImageFormat
    width: int
    height: int

    @property
    def whole_photo(self) -> Box:
        """The box of the whole photo: what a call without a box means."""
        return (0.0, 0.0, float(self.width), float(self.height))


@dataclass(frozen=True)
class ModelInput:
    pixels: np.ndarray
    """uint8 RGB, [size, size, 3]."""
    info: ImageInfo
    reduced_by: int
    """The JPEG DCT scale the photo was decoded at (1 = full size)."""
    region: Box
    """The part of the upright photo the pixels show: the box asked for, less any letterbox bars."""


_DESCRIBED = {
    "gif": "a GIF", "heic": "a HEIC/HEIF photo", "avif": "an AVIF image", "pdf": "a PDF document",
    "bmp": "a BMP image", "tiff": "a TIFF image", "svg": "an SVG document", "html": "an HTML page",
    "xml": "an XML document", "json": "JSON", "unknown": "not a recognised image format",
}


class UnsupportedImageFormat(InvalidImage):
    """415 naming what the bytes are (``detected_format``), whatever the Content-Type claimed."""

    def __init__(self, detected: str) -> None:
        super().__init__(
            "unsupported-format",
            f"The upload is {_DESCRIBED.get(detected, detected)}; send a JPEG, PNG or WebP image.",
            status=415,
        )
        self.extensions["detected_format"] = detected


class InvalidBox(Problem):
    def __init__(self, detail: str) -> None:
        super().__init__(422, detail, slug="invalid-box", title="Invalid box")


def sniff_format(data: bytes) -> ImageFormat:
    """The format from the magic bytes; anything but JPEG/PNG/WebP raises with what it looks like."""
    if not data:
        raise InvalidImage("empty", "The image is empty (0 bytes).")
    if data.startswith(b"\xff\xd8\xff"):
        return "jpeg"
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "png"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "webp"
    raise UnsupportedImageFormat(_describe_other(data))


def _describe_other(data: bytes) -> str:
    """A name for what a refused upload is, so the client learns what it sent by mistake."""
    if data.startswith((b"GIF87a", b"GIF89a")):
        return "gif"
    if data[4:8] == b"ftyp" and data[8:12] in {b"heic", b"heix", b"hevc", b"mif1", b"msf1"}:
        return "heic"
    if data[4:8] == b"ftyp" and data[8:12] in {b"avif", b"avis"}:
        return "avif"
    if data.startswith(b"%PDF"):
        return "pdf"
    if data.startswith(b"BM"):
        return "bmp"
    if data.startswith((b"II*\x00", b"MM\x00*")):
        return "tiff"
    head = data[:1024].lstrip(b"\xef\xbb\xbf \t\r\n").lower()
    if b"<svg" in head:
        return "svg"
    if head.startswith((b"<!doctype html", b"<html", b"<head", b"<body", b"<script", b"<meta", b"<!--")):
        return "html"
    if head.startswith(b"<?xml"):
        return "xml"
    if head.startswith((b"{", b"[")):
        return "json"
    return "unknown"


def _open(data: bytes, limits: ImageLimits) -> tuple[Image.Image, ImageFormat]:
    """Sniff, check the limits and parse the header; nothing is decoded yet."""
    if len(data) > limits.max_bytes:
        raise InvalidImage(
            "too-large", f"The image is {len(data)} bytes; the limit is {limits.max_bytes}.", status=413
        )
    fmt = sniff_format(data)
    try:
        image = Image.open(io.BytesIO(data), formats=[PILLOW_FORMATS[fmt]])
    except Image.DecompressionBombError as exc:
        raise _too_many_pixels(None, limits) from exc
    except Exception as exc:  # Pillow's plugins raise many types for a header they cannot parse
        raise _decode_failure(data, fmt, exc) from exc
    width, height = image.size
    if width * height > limits.max_pixels:
        image.close()
        raise _too_many_pixels((width, height), limits)
    if min(width, height) < limits.min_side:
        image.close()
        raise InvalidImage(
            "too-small", f"The image is {width}x{height} pixels; a photo needs at least {limits.min_side} pixels "
            "on each side to show an animal.")
    return image, fmt


def _too_many_pixels(size: tuple[int, int] | None, limits: ImageLimits) -> InvalidImage:
    what = f"{size[0]}x{size[1]} pixels" if size else "more pixels than Pillow's safety limit"
    return InvalidImage(
        "too-many-pixels",
        f"The image declares {what}; the limit is {limits.max_pixels} pixels (a decompression bomb "
        "is refused before decoding).",
        status=413,
    )


def _decode_failure(data: bytes, fmt: ImageFormat, exc: Exception) -> InvalidImage:
    """Truncated when the format's end marker is missing (an interrupted upload), else corrupt."""
    if _looks_truncated(data, fmt):
        return InvalidImage("truncated", f"The {fmt.upper()} file ends early ({len(data)} bytes): the upload is incomplete.")
    return InvalidImage("corrupt", f"The {fmt.upper()} file cannot be decoded: {exc}")


def _looks_truncated(data: bytes, fmt: ImageFormat) -> bool:
    if fmt == "jpeg":
        # Cameras append trailers (MPF, padding) after the end-of-image marker; look near the end.
        return b"\xff\xd9" not in data[-4096:]
    if fmt == "png":
        return b"IEND" not in data[-32:]
    (riff_size,) = struct.unpack("<I", data[4:8])
    return len(data) < riff_size + 8


def _decode(image: Image.Image, data: bytes, fmt: ImageFormat, limits: ImageLimits) -> None:
    """Decode the pixels (once: loading a loaded image does nothing), failures as InvalidImage."""
    try:
        image.load()
    except Image.DecompressionBombError as exc:
        raise _too_many_pixels(image.size, limits) from exc
    except Exception as exc:  # Pillow's decoders raise OSError, SyntaxError, ValueError...
        raise _decode_failure(data, fmt, exc) from exc


def _orientation(image: Image.Image, data: bytes, fmt: ImageFormat, limits: ImageLimits) -> int:
    """The EXIF orientation tag (1 = upright). JPEG and WebP carry it in the header; a PNG's
    eXIf chunk may follow the pixels, so Pillow decodes a PNG to read it."""
    if fmt == "png":
        _decode(image, data, fmt, limits)
    try:
        value = image.getexif().get(_ORIENTATION_TAG, 1)
    except Exception:  # a broken EXIF block must not make a decodable photo unusable
        return 1
    return value if isinstance(value, int) and value in _UPRIGHT else 1


def _upright_info(image: Image.Image, fmt: ImageFormat, orientation: int) -> ImageInfo:
    width, height = image.size
    return ImageInfo(fmt, height, width) if orientation in _SWAPS_AXES else ImageInfo(fmt, width, height)


def read_image_info(data: bytes, limits: ImageLimits) -> ImageInfo:
    """Format and upright size, checked against the limits; JPEG and WebP pixels are not decoded."""
    image, fmt = _open(data, limits)
    with image:
        return _upright_info(image, fmt, _orientation(image, data, fmt, limits))


def load_model_input(
    data: bytes,
    size: int,
    limits: ImageLimits,
    box: Box | None = None,
    *,
    reduced_decoding: bool = True,
    trim_letterbox: bool = False,
) -> ModelInput:
    """Decode ``data`` into a uint8 RGB ``[size, size, 3]`` model input.

    ``box`` crops a region first (pixels of the upright photo); without it the whole photo is
    used. ``trim_letterbox`` then drops uniform white bars around the region, as the models that
    ask for it were trained (:func:`letterbox_content`). ``reduced_decoding=False`` decodes JPEGs
    at full size (for comparisons only).
    """
    image, fmt = _open(data, limits)
    with image:
        orientation = _orientation(image, data, fmt, limits)
        info = _upright_info(image, fmt, orientation)
        region = _checked_box(box, info) if box is not None else info.whole_photo
        reduced_by = 1
        if reduced_decoding and fmt == "jpeg":
            reduced_by = _draft(image, region, size)
        _decode(image, data, fmt, limits)
        upright = image.transpose(_UPRIGHT[orientation]) if orientation != 1 else image
        rgb = upright if upright.mode == "RGB" else upright.convert("RGB")
        # After DCT scaling the decoded photo is smaller than the header said: scale the box.
        scale_x, scale_y = rgb.width / info.width, rgb.height / info.height
        if trim_letterbox:
            region = _without_letterbox(rgb, region, scale_x, scale_y)
        x0, y0, x1, y1 = region
        resized = rgb.resize(
            (size, size), Image.Resampling.BILINEAR, box=(x0 * scale_x, y0 * scale_y, x1 * scale_x, y1 * scale_y)
        )
        return ModelInput(np.asarray(resized, dtype=np.uint8), info, reduced_by, region)


def _without_letterbox(rgb: Image.Image, region: Box, scale_x: float, scale_y: float) -> Box:
    """``region`` (upright-photo pixels) less the letterbox bars found in the decoded pixels."""
    x0, y0, x1, y1 = region
    decoded = (round(x0 * scale_x), round(y0 * scale_y), round(x1 * scale_x), round(y1 * scale_y))
    whole = decoded == (0, 0, rgb.width, rgb.height)
    cx0, cy0, cx1, cy1 = letterbox_content(rgb if whole else rgb.crop(decoded))
    # Back in photo pixels, rounding may put an edge a hair outside the region (1767.0000000000002).
    return (max(x0, x0 + cx0 / scale_x), max(y0, y0 + cy0 / scale_y),
            min(x1, x0 + cx1 / scale_x), min(y1, y0 + cy1 / scale_y))


def _draft(image: Image.Image, region: Box, size: int) -> int:
    """Ask libjpeg for the smallest DCT scale (1/2, 1/4, 1/8) that keeps the region's short side
    at DRAFT_OVERSAMPLING x ``size`` or more; returns the scale divisor applied."""
    short_side = min(region[2] - region[0], region[3] - region[1])
    allowed = short_side / (DRAFT_OVERSAMPLING * size)
    if allowed < 2:
        return 1
    width, height = image.size
    requested = (math.ceil(width / allowed), math.ceil(height / allowed))
    if image.draft("RGB", requested) is None:
        return 1
    return round(width / image.size[0])


def clip_box(box: Box, width: int, height: int) -> Box | None:
    """The box clipped to a ``width`` x ``height`` photo; None when no pixel of it is inside."""
    x0, y0 = max(0.0, float(box[0])), max(0.0, float(box[1]))
    x1, y1 = min(float(width), float(box[2])), min(float(height), float(box[3]))
    return None if x1 - x0 < 1 or y1 - y0 < 1 else (x0, y0, x1, y1)


def _checked_box(box: Box, info: ImageInfo) -> Box:
    """Clip the box to the photo; a box with no area inside it is the caller's mistake."""
    if len(box) != 4 or not all(math.isfinite(v) for v in box):
        raise InvalidBox("A box is four finite numbers [x0, y0, x1, y1].")
    clipped = clip_box(box, info.width, info.height)
    if clipped is None:
        raise InvalidBox(
            f"The box {list(box)} covers no pixel of the {info.width}x{info.height} image "
            "(x0 < x1 and y0 < y1, in pixels of the upright photo)."
        )
    return clipped


# A letterbox bar is near-white: fewer than this share of its pixels are darker than the level.
_BAR_LEVEL = 240
_BAR_DARK_SHARE = 0.02
_MIN_CONTENT_SHARE = 0.15


def letterbox_content(image: Image.Image) -> tuple[int, int, int, int]:
    """Pixel bounds (x0, y0, x1, y1) of a photo inside uniform white letterbox bars, if any.

    Photo-ID archives (Kaggle's humpback flukes among them) pad wide photos onto white
    squares; trimmed, a fluke fills the model input instead of a third of it. Bars come in
    centred pairs, so a direction is trimmed only when both its edges have bars of about the
    same size: a bright sky along one edge of a real photo is kept, and so is a photo that
    would keep less than 15% of its area.
    """
    small = image.convert("L")
    small.thumbnail((128, 128))
    dark = np.asarray(small) < _BAR_LEVEL
    content_rows = np.nonzero(dark.mean(axis=1) > _BAR_DARK_SHARE)[0]
    content_cols = np.nonzero(dark.mean(axis=0) > _BAR_DARK_SHARE)[0]
    whole = (0, 0, image.width, image.height)
    if len(content_rows) == 0 or len(content_cols) == 0:
        return whole
    y0, y1 = _paired_bars(content_rows, dark.shape[0])
    x0, x1 = _paired_bars(content_cols, dark.shape[1])
    if (x1 - x0) * (y1 - y0) < _MIN_CONTENT_SHARE * dark.size:
        return whole
    sx, sy = image.width / dark.shape[1], image.height / dark.shape[0]
    return (int(x0 * sx), int(y0 * sy), min(image.width, int(np.ceil(x1 * sx))), min(image.height, int(np.ceil(y1 * sy))))


def _paired_bars(content: np.ndarray, length: int) -> tuple[int, int]:
    """The content span along one axis of the thumbnail, trimmed only for a centred pair of bars."""
    before, after = int(content[0]), length - 1 - int(content[-1])
    paired = min(before, after) >= 2 and abs(before - after) <= 3 + 0.25 * max(before, after)
    return (before, length - after) if paired else (0, length)
