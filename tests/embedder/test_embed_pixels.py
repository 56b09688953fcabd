"""POST /v1/embed/pixels: decoded inputs as one .npy body give what the JPEG route gives; bad bodies are 4xx."""

from __future__ import annotations

import io

import numpy as np
import pytest

from finprint.imaging import ImageLimits, load_model_input
from finprint.schemas.pixels import PIXELS_MEDIA_TYPE, encode_pixels


@pytest.fixture
async def model(embedder) -> dict:
    response = await embedder.get("/v1/model")
    assert response.status_code == 200, response.text
    return response.json()


def _pixels(crop_paths, model: dict) -> np.ndarray:
    return np.stack([load_model_input(p.read_bytes(), model["input_size"], ImageLimits(),
                                      trim_letterbox=model["trim_letterbox"]).pixels for p in crop_paths])


async def _post(client, body: bytes, content_type: str = PIXELS_MEDIA_TYPE, **params: str):
    return await client.post("/v1/embed/pixels", content=body, headers={"content-type": content_type}, params=params)


async def test_the_model_route_describes_the_inputs(model, model_repository) -> None:
    from finprint.model_repository import locate_model
    from services.embedder.adapters.model_files import load_card

    card = load_card(locate_model(model_repository, "finprint_embedder", "").card)
    assert model["input_size"] == card.input_size
    assert model["trim_letterbox"] == card.trim_letterbox
    assert model["species"] == list(card.species)
    assert model["embedding_dim"] == card.embedding_dim
    assert model["model"]["name"] == "finprint_embedder"


async def test_pixels_give_the_same_results_as_the_photos_they_were_decoded_from(embedder, model, crop_paths,
                                                                                 crop_parts) -> None:
    from_photos = (await embedder.post("/v1/embed", files=crop_parts)).json()
    response = await _post(embedder, encode_pixels(_pixels(crop_paths, model)))
    assert response.status_code == 200, response.text
    from_pixels = response.json()
    assert from_pixels["model"] == from_photos["model"]
    assert len(from_pixels["results"]) == len(crop_paths)
    for photo, pixels in zip(from_photos["results"], from_pixels["results"]):
        assert np.abs(np.array(photo["embedding"]) - np.array(pixels["embedding"])).max() < 1e-5
        assert [s["species"] for s in photo["species"]] == [s["species"] for s in pixels["species"]]


async def test_base64_encoding_works_for_pixels_too(embedder, model, crop_paths) -> None:
    from finprint.schemas.embeddings import decode_vector

    body = encode_pixels(_pixels(crop_paths[:2], model))
    plain = (await _post(embedder, body)).json()["results"]
    encoded = (await _post(embedder, body, embedding_encoding="base64")).json()["results"]
    for a, b in zip(plain, encoded):
        np.testing.assert_array_equal(decode_vector(b["embedding"]), np.array(a["embedding"], dtype=np.float32))


def _npy(array: np.ndarray, **save: object) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array, **save)  # type: ignore[arg-type]
    return buffer.getvalue()


def _bad_bodies(size: int) -> dict[str, tuple[bytes, str]]:
    good = np.zeros((2, size, size, 3), np.uint8)
    return {
        "a jpeg": (b"\xff\xd8\xff\xe0" + bytes(100), "not a NumPy .npy array"),
        "empty": (b"", "not a NumPy .npy array"),
        "float pixels": (_npy(good.astype(np.float32)), "dtype is float32"),
        "other size": (_npy(np.zeros((1, size + 8, size + 8, 3), np.uint8)), "shape is"),
        "grey, no channel axis": (_npy(np.zeros((1, size, size), np.uint8)), "shape is"),
        "no images": (_npy(np.zeros((0, size, size, 3), np.uint8)), "holds 0 inputs"),
        "fortran order": (_npy(np.asfortranarray(good)), "Fortran order"),
        "truncated": (_npy(good)[:-100], "needs"),
        "trailing bytes": (_npy(good) + b"\x00" * 10, "needs"),
        "pickled objects": (_npy(np.array([{"x": 1}], dtype=object), allow_pickle=True), "dtype is object"),
    }


@pytest.mark.parametrize("case", list(_bad_bodies(8)))
async def test_a_bad_pixel_body_is_a_422_naming_what_is_wrong_and_the_service_stays_up(embedder, model, case) -> None:
    body, words = _bad_bodies(model["input_size"])[case]
    response = await _post(embedder, body)
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == "application/problem+json"
    problem = response.json()
    assert problem["type"].endswith("/invalid-pixels")
    assert words in problem["detail"]
    size = model["input_size"]
    assert (await _post(embedder, encode_pixels(np.zeros((1, size, size, 3), np.uint8)))).status_code == 200


async def test_more_inputs_than_a_request_may_carry_are_refused(start_embedder, model) -> None:
    size = model["input_size"]
    async with start_embedder(backend="onnxruntime", max_images_per_request=2) as client:
        three = await _post(client, encode_pixels(np.zeros((3, size, size, 3), np.uint8)))
        # A header that claims 3 inputs on a body that would fit 2.
        lying = await _post(client, encode_pixels(np.zeros((3, size, size, 3), np.uint8))[: 2 * size * size * 3])
        two = await _post(client, encode_pixels(np.zeros((2, size, size, 3), np.uint8)))
        text = (await client.get("/metrics")).text
    assert three.status_code == 413 and three.json()["type"].endswith("/invalid-pixels")
    assert lying.status_code == 422 and "holds 3 inputs" in lying.json()["detail"]
    assert two.status_code == 200
    assert 'finprint_embedder_rejected_images_total{reason="invalid-pixels"} 2.0' in text


async def test_another_media_type_is_a_415(embedder, model) -> None:
    size = model["input_size"]
    response = await _post(embedder, encode_pixels(np.zeros((1, size, size, 3), np.uint8)), "application/json")
    assert response.status_code == 415
    assert PIXELS_MEDIA_TYPE in response.json()["detail"]
