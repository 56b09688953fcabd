"""Shared preprocessing: type sniffing, limits, truncation, EXIF orientation, colour modes, reduced decoding."""

from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageOps

from finprint.imaging import ImageLimits, load_model_input, read_image_info, sniff_format
from finprint.problems import InvalidImage, Problem

LIMITS = ImageLimits()
SIZE = 64


def _encode(image: Image.Image, fmt: str, **options: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **options)
    return buffer.getvalue()


def _halves(width: int = 200, height: int = 100) -> Image.Image:
    """Left half red, right half blue: orientation mistakes show as swapped colours."""
    pixels = np.zeros((height, width, 3), dtype=np.uint8)
    pixels[:, : width // 2] = (220, 20, 20)
    pixels[:, width // 2 :] = (20, 20, 220)
    return Image.fromarray(pixels)


def _gradient(width: int, height: int) -> Image.Image:
    y, x = np.mgrid[0:height, 0:width]
    pixels = np.stack([x * 255 // width, y * 255 // height, (x + y) * 255 // (width + height)], axis=-1)
    return Image.fromarray(pixels.astype(np.uint8))


def _png_chunk(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))


def _bomb_png(width: int, height: int) -> bytes:
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", header)
            + _png_chunk(b"IDAT", zlib.compress(b"\x00" * 1024)) + _png_chunk(b"IEND", b""))


def _reason(excinfo: pytest.ExceptionInfo[InvalidImage]) -> str:
    return excinfo.value.extensions["reason"]


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "WEBP"])
def test_accepted_formats_decode_to_square_uint8_rgb(fmt: str) -> None:
    data = _encode(_gradient(300, 200), fmt)
    model_input = load_model_input(data, SIZE, LIMITS)
    assert model_input.pixels.shape == (SIZE, SIZE, 3)
    assert model_input.pixels.dtype == np.uint8
    assert (model_input.info.format, model_input.info.width, model_input.info.height) == (fmt.lower(), 300, 200)


@pytest.mark.parametrize(
    ("data", "detected"),
    [
        (b'<?xml version="1.0"?>\n<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"/>', "svg"),
        (b"  <svg><script>alert(1)</script></svg>", "svg"),
        (b"<!DOCTYPE html><html><body><img src=x></body></html>", "html"),
        (b"GIF89a\x01\x00\x01\x00\x00\x00\x00;", "gif"),
        (b"%PDF-1.7\n...", "pdf"),
        (b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00", "heic"),
        (b"BM\x00\x00\x00\x00", "bmp"),
        (b"hello world", "unknown"),
    ],
)
def test_other_formats_are_refused_with_what_they_are(data: bytes, detected: str) -> None:
    with pytest.raises(InvalidImage) as excinfo:
        load_model_input(data, SIZE, LIMITS)
    assert excinfo.value.status == 415
    assert _reason(excinfo) == "unsupported-format"
    assert excinfo.value.extensions["detected_format"] == detected


def test_the_bytes_decide_not_the_name_or_header() -> None:
    assert sniff_format(_encode(_gradient(20, 20), "PNG")) == "png"
    assert sniff_format(_encode(_gradient(20, 20), "WEBP")) == "webp"


def test_empty_is_its_own_reason() -> None:
    with pytest.raises(InvalidImage) as excinfo:
        load_model_input(b"", SIZE, LIMITS)
    assert (excinfo.value.status, _reason(excinfo)) == (422, "empty")


def test_byte_limit_is_checked_first() -> None:
    data = _encode(_gradient(300, 200), "PNG")
    with pytest.raises(InvalidImage) as excinfo:
        load_model_input(data, SIZE, ImageLimits(max_bytes=len(data) - 1))
    assert (excinfo.value.status, _reason(excinfo)) == (413, "too-large")


@pytest.mark.parametrize("side", [20_000, 100_000])
def test_decompression_bomb_is_refused_from_the_header(side: int) -> None:
    # 100k x 100k is beyond even Pillow's own bomb limit: it must still be a 413, not a crash.
    with pytest.raises(InvalidImage) as excinfo:
        load_model_input(_bomb_png(side, side), SIZE, LIMITS)
    assert (excinfo.value.status, _reason(excinfo)) == (413, "too-many-pixels")


def test_a_real_highly_compressible_bomb_is_refused() -> None:
    data = _encode(Image.new("1", (9_000, 9_000)), "PNG")  # 81 MP in ~10 KB
    assert len(data) < 100_000
    with pytest.raises(InvalidImage) as excinfo:
        load_model_input(data, SIZE, LIMITS)
    assert _reason(excinfo) == "too-many-pixels"


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "WEBP"])
def test_truncated_files_say_truncated(fmt: str) -> None:
    data = _encode(_gradient(400, 300), fmt)
    with pytest.raises(InvalidImage) as excinfo:
        load_model_input(data[: len(data) * 2 // 3], SIZE, LIMITS)
    assert (excinfo.value.status, _reason(excinfo)) == (422, "truncated")


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "WEBP"])
def test_garbage_after_a_valid_signature_is_corrupt(fmt: str) -> None:
    data = _encode(_gradient(400, 300), fmt)
    rng = np.random.default_rng(1)
    middle = rng.integers(0, 256, len(data) - 64, dtype=np.uint8).tobytes()
    garbled = data[:16] + middle + data[-48:]  # signature and end marker intact
    with pytest.raises(InvalidImage) as excinfo:
        load_model_input(garbled, SIZE, LIMITS)
    assert (excinfo.value.status, _reason(excinfo)) == (422, "corrupt")


@pytest.mark.parametrize("orientation", range(1, 9))
def test_exif_orientation_is_applied_like_exif_transpose(orientation: int) -> None:
    image = _halves()
    exif = Image.Exif()
    exif[0x0112] = orientation
    data = _encode(image, "JPEG", exif=exif.tobytes(), quality=95)
    model_input = load_model_input(data, SIZE, LIMITS)
    upright = ImageOps.exif_transpose(Image.open(io.BytesIO(data))).convert("RGB")
    assert (model_input.info.width, model_input.info.height) == upright.size
    assert read_image_info(data, LIMITS) == model_input.info
    expected = np.asarray(upright.resize((SIZE, SIZE), Image.Resampling.BILINEAR), dtype=np.int16)
    assert np.abs(model_input.pixels.astype(np.int16) - expected).mean() < 2


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "WEBP"])
def test_rotated_photo_shows_left_half_on_top(fmt: str) -> None:
    exif = Image.Exif()
    exif[0x0112] = 6  # stored sideways: rotate 90 degrees clockwise to view
    data = _encode(_halves(), fmt, exif=exif.tobytes(), quality=95)
    assert read_image_info(data, LIMITS).height == 200
    pixels = load_model_input(data, SIZE, LIMITS).pixels
    top, bottom = pixels[: SIZE // 4].mean(axis=(0, 1)), pixels[-SIZE // 4 :].mean(axis=(0, 1))
    assert top[0] > 150 and top[2] < 80  # red: the stored left half
    assert bottom[2] > 150 and bottom[0] < 80


def test_boxes_are_in_upright_coordinates() -> None:
    exif = Image.Exif()
    exif[0x0112] = 6
    data = _encode(_halves(), "JPEG", exif=exif.tobytes(), quality=95)  # upright: 100 wide, 200 tall
    top_half = load_model_input(data, SIZE, LIMITS, box=(0, 0, 100, 95)).pixels
    assert top_half[..., 0].mean() > 180 and top_half[..., 2].mean() < 60


@pytest.mark.parametrize("box", [(10, 10, 5, 50), (300, 0, 400, 10), (0, 0, 0.5, 0.5), (float("nan"), 0, 1, 1)])
def test_a_box_without_pixels_is_refused(box: tuple[float, float, float, float]) -> None:
    with pytest.raises(Problem) as excinfo:
        load_model_input(_encode(_gradient(200, 100), "PNG"), SIZE, LIMITS, box=box)
    assert excinfo.value.status == 422 and excinfo.value.slug == "invalid-box"


@pytest.mark.parametrize(
    "image",
    [
        Image.new("L", (120, 80), 128),
        Image.new("RGBA", (120, 80), (10, 200, 30, 128)),
        Image.new("P", (120, 80), 3),
        Image.new("CMYK", (120, 80), (0, 255, 255, 0)),
        Image.new("I;16", (120, 80), 40_000),
        Image.new("LA", (120, 80), (90, 255)),
    ],
    ids=lambda image: image.mode,
)
def test_colour_modes_become_rgb(image: Image.Image) -> None:
    fmt = "JPEG" if image.mode in {"L", "CMYK"} else "PNG"
    pixels = load_model_input(_encode(image, fmt), SIZE, LIMITS).pixels
    assert pixels.shape == (SIZE, SIZE, 3) and pixels.dtype == np.uint8


def test_grey_jpeg_stays_grey() -> None:
    pixels = load_model_input(_encode(Image.new("L", (120, 80), 128), "JPEG"), SIZE, LIMITS).pixels
    assert np.abs(pixels.astype(int) - 128).max() <= 2


def test_reduced_decoding_gives_the_same_size_and_nearly_the_same_pixels() -> None:
    data = _encode(_gradient(4000, 3000), "JPEG", quality=92)
    reduced = load_model_input(data, 192, LIMITS)
    full = load_model_input(data, 192, LIMITS, reduced_decoding=False)
    assert reduced.reduced_by == 4 and full.reduced_by == 1
    assert reduced.pixels.shape == full.pixels.shape == (192, 192, 3)
    assert reduced.info == full.info
    assert np.abs(reduced.pixels.astype(int) - full.pixels.astype(int)).mean() < 2


def test_a_small_box_is_decoded_at_a_finer_scale_than_the_whole_photo() -> None:
    data = _encode(_gradient(4000, 3000), "JPEG", quality=92)
    whole = load_model_input(data, 128, LIMITS)
    small_box = load_model_input(data, 128, LIMITS, box=(1000, 1000, 1600, 1600))
    full = load_model_input(data, 128, LIMITS, box=(1000, 1000, 1600, 1600), reduced_decoding=False)
    assert whole.reduced_by == 8 and small_box.reduced_by == 2
    assert np.abs(small_box.pixels.astype(int) - full.pixels.astype(int)).mean() < 2


def test_real_photo_decodes_reduced(shared_data: Path) -> None:
    path = max((shared_data / "curvrank_examples" / "images").iterdir(), key=lambda p: p.stat().st_size)
    model_input = load_model_input(path.read_bytes(), 192, LIMITS)
    with Image.open(path) as image:
        assert (model_input.info.width, model_input.info.height) == image.size
    assert model_input.reduced_by > 1


def _letterboxed(photo: Image.Image, side: int) -> Image.Image:
    """``photo`` centred on a white square, as Kaggle's humpback flukes are."""
    square = Image.new("RGB", (side, side), "white")
    square.paste(photo, (0, (side - photo.height) // 2))
    return square


def test_letterbox_bars_are_trimmed_for_models_trained_that_way() -> None:
    photo = _gradient(600, 240).point(lambda v: v // 2)  # darker than the bars everywhere
    data = _encode(_letterboxed(photo, 600), "PNG")
    trimmed = load_model_input(data, SIZE, LIMITS, trim_letterbox=True)
    x0, y0, x1, y1 = trimmed.region
    assert abs(x0) <= 5 and abs(y0 - 180) <= 6 and abs(x1 - 600) <= 5 and abs(y1 - 420) <= 6
    assert trimmed.pixels.min(axis=2).max() < 240  # no white bar row is left in the input
    kept = load_model_input(data, SIZE, LIMITS)  # models without the flag see the bars
    assert kept.region == (0.0, 0.0, 600.0, 600.0)
    assert (kept.pixels[0] > 250).all()


def test_trimming_works_inside_a_box_and_on_reduced_jpeg_decoding() -> None:
    photo = _gradient(1200, 480).point(lambda v: v // 2)
    canvas = Image.new("RGB", (3000, 2000), (40, 90, 40))
    canvas.paste(_letterboxed(photo, 1200), (1000, 400))
    data = _encode(canvas, "JPEG", quality=95)
    model_input = load_model_input(data, SIZE, LIMITS, box=(1000, 400, 2200, 1600), trim_letterbox=True)
    assert model_input.reduced_by > 1
    x0, y0, x1, y1 = model_input.region
    assert abs(x0 - 1000) <= 12 and abs(y0 - 760) <= 12 and abs(x1 - 2200) <= 12 and abs(y1 - 1240) <= 12


def test_a_real_photo_with_a_white_sky_is_not_trimmed() -> None:
    photo = Image.new("RGB", (400, 300), (30, 60, 90))
    photo.paste(Image.new("RGB", (400, 90), "white"), (0, 0))  # overexposed sky along the top only
    assert load_model_input(_encode(photo, "PNG"), SIZE, LIMITS, trim_letterbox=True).region == (0.0, 0.0, 400.0, 300.0)


def test_the_trimmed_region_never_leaves_the_photo(shared_data: Path) -> None:
    # Scaling the decoded content back to photo pixels once gave x1 = 1767.0000000000002 for a
    # 1767-pixel-wide photo (a curvrank fluke at 2 MP), which a strict reader of the region refused.
    for path in sorted((shared_data / "curvrank_examples" / "images").iterdir()):
        with Image.open(path) as image:
            photo = image.convert("RGB")
        scale = (2_000_000 / (photo.width * photo.height)) ** 0.5
        two_mp = photo.resize((round(photo.width * scale), round(photo.height * scale)), Image.Resampling.LANCZOS)
        for data in (path.read_bytes(), _encode(two_mp, "JPEG", quality=90)):
            made = load_model_input(data, SIZE, LIMITS, trim_letterbox=True)
            x0, y0, x1, y1 = made.region
            assert 0 <= x0 < x1 <= made.info.width and 0 <= y0 < y1 <= made.info.height, (path.name, made.region)
