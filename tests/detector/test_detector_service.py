"""POST /v1/detect with the repository's detector model: photos in every accepted form, bad input."""

from __future__ import annotations

import io
import json
import shutil
import struct
import zlib
from pathlib import Path

import pytest
from PIL import Image

from services.detector.settings import DetectorSettings

VIEWS = {"fluke", "dorsal_fin", "head", "other"}


def _encode(image: Image.Image, fmt: str, **options: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **options)
    return buffer.getvalue()


def _bomb_png(side: int) -> bytes:
    def chunk(kind: bytes, payload: bytes) -> bytes:
        return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))

    header = struct.pack(">IIBBBBB", side, side, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\x00" * 64)) + chunk(b"IEND", b"")


def _assert_well_formed(body: dict) -> None:
    assert body["model"]["name"] == "finprint_detector" and body["model"]["version"]
    assert 0.0 <= body["cetacean_probability"] <= 1.0
    width, height = body["image"]["width"], body["image"]["height"]
    for detection in body["detections"]:
        x0, y0, x1, y1 = detection["box"]
        assert 0 <= x0 < x1 <= width and 0 <= y0 < y1 <= height
        assert detection["view"] in VIEWS
        assert set(detection["view_scores"]) == VIEWS
    if not body["detections"]:
        assert body["reason"] == "no_cetacean"


async def test_raw_body_and_multipart_give_the_same_answer(detector, fluke_photos) -> None:
    photo = fluke_photos[0].read_bytes()
    raw = await detector.post("/v1/detect", content=photo, headers={"content-type": "image/jpeg"})
    multipart = await detector.post("/v1/detect", files={"image": ("fluke.jpg", photo, "image/jpeg")})
    assert raw.status_code == multipart.status_code == 200, raw.text
    assert raw.json() == multipart.json()
    _assert_well_formed(raw.json())
    with Image.open(fluke_photos[0]) as image:
        assert (raw.json()["image"]["width"], raw.json()["image"]["height"]) == image.size


@pytest.mark.parametrize("fmt", ["PNG", "WEBP"])
async def test_png_and_webp_are_read_whatever_the_declared_type(detector, fluke_photos, fmt) -> None:
    with Image.open(fluke_photos[1]) as image:
        data = _encode(image.convert("RGB"), fmt)
    response = await detector.post("/v1/detect", content=data, headers={"content-type": "application/octet-stream"})
    assert response.status_code == 200, response.text
    assert response.json()["image"]["format"] == fmt.lower()
    _assert_well_formed(response.json())


async def test_exif_orientation_gives_boxes_in_upright_pixels(detector, fluke_photos) -> None:
    with Image.open(fluke_photos[0]) as image:
        sideways = image.convert("RGB").transpose(Image.Transpose.ROTATE_90)  # stored turned left
        width, height = image.size
    exif = Image.Exif()
    exif[0x0112] = 6  # viewer turns it back right
    data = _encode(sideways, "JPEG", exif=exif.tobytes(), quality=92)
    response = await detector.post("/v1/detect", content=data, headers={"content-type": "image/jpeg"})
    assert response.status_code == 200
    body = response.json()
    assert (body["image"]["width"], body["image"]["height"]) == (width, height)
    _assert_well_formed(body)


BAD_PHOTOS = {
    "empty": (b"", 422, "empty"),
    "svg disguised as jpeg": (b'<svg xmlns="http://www.w3.org/2000/svg" onload="alert(1)"/>', 415, "unsupported-format"),
    "html disguised as jpeg": (b"<!doctype html><title>x</title>", 415, "unsupported-format"),
    "gif disguised as jpeg": (_encode(Image.new("P", (8, 8)), "GIF"), 415, "unsupported-format"),
    "truncated jpeg": (_encode(Image.new("RGB", (400, 300), (1, 2, 3)), "JPEG")[:500], 422, "truncated"),
    "corrupt png": (b"\x89PNG\r\n\x1a\n" + b"\x13" * 500 + b"IEND\xaeB`\x82", 422, "corrupt"),
    "decompression bomb": (_bomb_png(50_000), 413, "too-many-pixels"),
}


@pytest.mark.parametrize("case", list(BAD_PHOTOS))
async def test_bad_photo_gets_its_problem_and_the_service_stays_up(detector, fluke_photos, case) -> None:
    data, status, reason = BAD_PHOTOS[case]
    response = await detector.post("/v1/detect", content=data, headers={"content-type": "image/jpeg"})
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["reason"] == reason
    assert response.json()["type"] == f"https://finprint.dev/problems/invalid-image/{reason}"
    following = await detector.post("/v1/detect", content=fluke_photos[2].read_bytes(), headers={"content-type": "image/jpeg"})
    assert following.status_code == 200


async def test_wrong_multipart_field_names_the_expected_one(detector, fluke_photos) -> None:
    response = await detector.post("/v1/detect", files={"photo": ("a.jpg", fluke_photos[0].read_bytes(), "image/jpeg")})
    assert response.status_code == 422
    assert response.json()["errors"][0]["field"] == "image"
    assert "photo" in response.json()["detail"]


async def test_oversized_photo_is_a_413(start_detector, fluke_photos) -> None:
    photo = max(fluke_photos, key=lambda p: p.stat().st_size).read_bytes()
    async with start_detector(max_image_bytes=len(photo) - 1) as client:
        response = await client.post("/v1/detect", content=photo, headers={"content-type": "image/jpeg"})
        assert (response.status_code, response.json()["reason"]) == (413, "too-large")
        small = await client.post("/v1/detect", content=fluke_photos[0].read_bytes(), headers={"content-type": "image/jpeg"})
        assert small.status_code == 200


async def test_missing_model_is_503_until_it_is_copied_in(start_detector, tmp_path: Path, fluke_photos) -> None:
    photo = fluke_photos[0].read_bytes()
    async with start_detector(model_repository=tmp_path) as client:
        ready = await client.get("/readyz")
        response = await client.post("/v1/detect", content=photo, headers={"content-type": "image/jpeg"})
        assert ready.status_code == 503
        assert "finprint_detector" in ready.json()["checks"]["model"]["reason"]
        assert response.status_code == 503 and response.headers["Retry-After"]
        shutil.copytree(DetectorSettings().model_repository / "finprint_detector", tmp_path / "finprint_detector")
        assert (await client.get("/readyz")).status_code == 200
        assert (await client.post("/v1/detect", content=photo, headers={"content-type": "image/jpeg"})).status_code == 200


async def test_metrics_count_results_and_rejections(detector, fluke_photos) -> None:
    await detector.post("/v1/detect", content=fluke_photos[0].read_bytes(), headers={"content-type": "image/jpeg"})
    await detector.post("/v1/detect", content=b"<html>", headers={"content-type": "image/jpeg"})
    text = (await detector.get("/metrics")).text
    assert "finprint_detector_photos_total" in text
    assert 'finprint_detector_rejected_images_total{reason="unsupported-format"} 1.0' in text
    assert "finprint_detector_inference_seconds_count 1.0" in text


async def test_whale_photos_are_found_inside_the_photo_with_a_plausible_view(detector, shared_data) -> None:
    # Full-size photos of flukes and dorsal fins, 0.4 to 12 megapixels. The model card reports
    # about 90 % recall on held-out photos; most of these must be found, with the right view.
    photos = sorted((shared_data / "curvrank_examples" / "images").iterdir())
    answers = {}
    for path in photos:
        response = await detector.post("/v1/detect", content=path.read_bytes(), headers={"content-type": "image/jpeg"})
        assert response.status_code == 200
        _assert_well_formed(response.json())
        answers[path.name] = response.json()
    found = {name: body["detections"][0] for name, body in answers.items() if body["detections"]}
    assert len(found) >= 0.75 * len(photos), {name: body["cetacean_probability"] for name, body in answers.items()}
    expected_view = {name: "fluke" if name.startswith("fluke") else "dorsal_fin" for name in found}
    right_view = [name for name, detection in found.items() if detection["view"] == expected_view[name]]
    assert len(right_view) >= 0.75 * len(found), {name: d["view"] for name, d in found.items()}
    for name, detection in found.items():
        x0, y0, x1, y1 = detection["box"]
        width, height = answers[name]["image"]["width"], answers[name]["image"]["height"]
        assert (x1 - x0) * (y1 - y0) >= 0.02 * width * height  # a region, not a speck


async def test_photos_without_a_cetacean_get_the_no_cetacean_result(detector, shared_data) -> None:
    negatives = sorted((shared_data / "field_negatives" / "images").iterdir())[::50][:10]
    answers = []
    for path in negatives:
        response = await detector.post("/v1/detect", files={"image": (path.name, path.read_bytes(), "image/jpeg")})
        assert response.status_code == 200
        answers.append(response.json())
    card = json.loads((DetectorSettings().model_repository / "finprint_detector" / "finprint.json").read_text())
    rejected = [body for body in answers if body["reason"] == "no_cetacean"]
    assert len(rejected) >= 8, [body["cetacean_probability"] for body in answers]
    for body in rejected:
        assert body["detections"] == []
        assert body["cetacean_probability"] < card["cetacean_threshold"]


async def test_the_service_feeds_the_model_what_training_fed_it(detector, shared_data) -> None:
    """Same decoding, reduced-size decoding and resize as the training pipeline: same scores."""
    import onnxruntime as ort

    from finprint_train.data import read_image

    model_dir = DetectorSettings().model_repository / "finprint_detector"
    version = max((p for p in model_dir.iterdir() if p.name.isdigit()), key=lambda p: int(p.name))
    session = ort.InferenceSession(str(version / "model.onnx"), providers=["CPUExecutionProvider"])
    size = json.loads((model_dir / "finprint.json").read_text())["input_size"]
    photos = sorted((shared_data / "curvrank_examples" / "images").iterdir())  # 0.1 to 12 MP
    for path in photos:
        (expected,) = session.run(["cetacean_prob"], {"images": read_image(path, size)[None]})
        response = await detector.post("/v1/detect", content=path.read_bytes(), headers={"content-type": "image/jpeg"})
        assert abs(response.json()["cetacean_probability"] - float(expected[0])) < 1e-5, path.name
