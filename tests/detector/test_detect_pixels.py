"""POST /v1/detect/pixels: a photo decoded by the client gives what /v1/detect gives; bad requests are 4xx."""

from __future__ import annotations

import numpy as np
import pytest

from finprint.imaging import ImageLimits, load_model_input
from finprint.schemas.pixels import PIXELS_MEDIA_TYPE, encode_pixels
from tests.photos import letterboxed_jpeg


async def _model(detector) -> dict:
    response = await detector.get("/v1/model")
    assert response.status_code == 200, response.text
    return response.json()


async def _detect_pixels(detector, data: bytes, model: dict):
    made = load_model_input(data, model["input_size"], ImageLimits(), trim_letterbox=model["trim_letterbox"])
    params = {"width": made.info.width, "height": made.info.height, "format": made.info.format,
              "region": ",".join(str(v) for v in made.region)}
    return await detector.post("/v1/detect/pixels", content=encode_pixels(made.pixels[None]),
                               headers={"content-type": PIXELS_MEDIA_TYPE}, params=params)


async def test_the_model_route_names_the_input_the_pixels_route_takes(detector) -> None:
    model = await _model(detector)
    assert model["model"]["name"] == "finprint_detector"
    assert model["input_size"] > 0 and isinstance(model["trim_letterbox"], bool)


async def test_pixels_give_the_answer_the_photo_gives(detector, fluke_photos) -> None:
    model = await _model(detector)
    photos = [p.read_bytes() for p in fluke_photos[:3]] + [letterboxed_jpeg(fluke_photos[0], bar=200)]
    for data in photos:
        from_photo = await detector.post("/v1/detect", content=data, headers={"content-type": "image/jpeg"})
        from_pixels = await _detect_pixels(detector, data, model)
        assert from_photo.status_code == from_pixels.status_code == 200, from_pixels.text
        assert from_pixels.json() == from_photo.json()
    # The letterboxed photo's box is in the framed photo's pixels: below the top bar.
    boxes = [d["box"] for d in from_pixels.json()["detections"]]
    assert boxes and all(box[1] >= 150 for box in boxes)


async def test_a_region_a_hair_outside_the_photo_is_clipped_to_it(detector, fluke_photos) -> None:
    model = await _model(detector)
    made = load_model_input(fluke_photos[0].read_bytes(), model["input_size"], ImageLimits())
    answers = []
    for region in (f"0,0,{made.info.width},{made.info.height}", f"-0.0001,0,{made.info.width + 1e-9},{made.info.height}"):
        response = await detector.post(
            "/v1/detect/pixels", content=encode_pixels(made.pixels[None]),
            headers={"content-type": PIXELS_MEDIA_TYPE},
            params={"width": made.info.width, "height": made.info.height, "format": "jpeg", "region": region},
        )
        assert response.status_code == 200, response.text
        answers.append(response.json())
    assert answers[0] == answers[1]


async def test_without_a_region_the_pixels_show_the_whole_photo(detector, fluke_photos) -> None:
    model = await _model(detector)
    made = load_model_input(fluke_photos[0].read_bytes(), model["input_size"], ImageLimits())
    response = await detector.post(
        "/v1/detect/pixels", content=encode_pixels(made.pixels[None]), headers={"content-type": PIXELS_MEDIA_TYPE},
        params={"width": made.info.width, "height": made.info.height, "format": "jpeg"},
    )
    assert response.status_code == 200, response.text
    assert response.json()["image"] == {"format": "jpeg", "width": made.info.width, "height": made.info.height}


@pytest.mark.parametrize(
    ("params", "status", "names"),
    [
        ({"width": 100, "height": 80, "format": "jpeg", "region": "120,0,140,80"}, 422, "region"),
        ({"width": 100, "height": 80, "format": "jpeg", "region": "10,10,10,50"}, 422, "region"),
        ({"width": 100, "height": 80, "format": "jpeg", "region": "a,b,c,d"}, 422, "region"),
        ({"width": 0, "height": 80, "format": "jpeg"}, 422, "width"),
        ({"width": 1, "height": 1, "format": "jpeg"}, 422, "width"),  # too small to show an animal
        ({"width": 100, "height": 10**30, "format": "jpeg"}, 422, "height"),
        ({"width": 100, "height": 80, "format": "gif"}, 422, "format"),
        ({"height": 80, "format": "jpeg"}, 422, "width"),
    ],
)
async def test_a_bad_description_of_the_photo_is_a_422_naming_the_parameter(detector, params, status, names) -> None:
    size = (await _model(detector))["input_size"]
    body = encode_pixels(np.zeros((1, size, size, 3), np.uint8))
    response = await detector.post("/v1/detect/pixels", content=body, headers={"content-type": PIXELS_MEDIA_TYPE},
                                   params=params)
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    assert names in response.text


async def test_bad_bodies_are_refused_and_counted(detector) -> None:
    size = (await _model(detector))["input_size"]
    params = {"width": 100, "height": 80, "format": "jpeg"}
    cases = {
        "wrong size": (encode_pixels(np.zeros((1, size // 2, size // 2, 3), np.uint8)), PIXELS_MEDIA_TYPE, 422),
        "two inputs": (encode_pixels(np.zeros((2, size, size, 3), np.uint8)), PIXELS_MEDIA_TYPE, 413),
        "not npy": (b"\xff\xd8 a jpeg?", PIXELS_MEDIA_TYPE, 422),
        "a jpeg content type": (encode_pixels(np.zeros((1, size, size, 3), np.uint8)), "image/jpeg", 415),
    }
    for name, (body, content_type, status) in cases.items():
        response = await detector.post("/v1/detect/pixels", content=body, headers={"content-type": content_type},
                                       params=params)
        assert response.status_code == status, (name, response.text)
    metrics = (await detector.get("/metrics")).text
    assert 'finprint_detector_rejected_images_total{reason="invalid-pixels"} 3.0' in metrics
    healthy = await detector.post("/v1/detect/pixels", content=encode_pixels(np.zeros((1, size, size, 3), np.uint8)),
                                  headers={"content-type": PIXELS_MEDIA_TYPE}, params=params)
    assert healthy.status_code == 200
