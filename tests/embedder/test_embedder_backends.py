"""Both backends, same inputs, same answers: onnxruntime in process and a real Triton server."""

from __future__ import annotations

import json

import numpy as np
import pytest

from finprint.imaging import ImageLimits, load_model_input
from finprint.schemas.pixels import PIXELS_MEDIA_TYPE, encode_pixels
from finprint_testing.processes import free_port
from finprint_testing.triton import TritonEndpoints

pytestmark = [pytest.mark.servers, pytest.mark.slow]
TOLERANCE = 1e-4


def _as_arrays(body: dict) -> tuple[np.ndarray, list[dict[str, float]]]:
    embeddings = np.array([r["embedding"] for r in body["results"]], dtype=np.float32)
    species = [{s["species"]: s["score"] for s in r["species"]} for r in body["results"]]
    return embeddings, species


def _triton_url(triton: TritonEndpoints, protocol: str) -> str:
    return triton.grpc_url if protocol == "grpc" else triton.http_url


@pytest.mark.parametrize("protocol", ["grpc", "http"])
async def test_triton_and_onnxruntime_backends_agree(start_embedder, triton_server, crop_paths, crop_parts,
                                                     protocol) -> None:
    # Several requests' worth of images, one of them cropped by a box, more than one Triton batch.
    parts = crop_parts * 2
    boxes = json.dumps([None] * (len(parts) - 1) + [[10, 5, 150, 120]])
    async with start_embedder(backend="onnxruntime") as local:
        expected = await local.post("/v1/embed", files=parts, data={"boxes": boxes})
    async with start_embedder(backend="triton", triton_url=_triton_url(triton_server, protocol),
                              triton_protocol=protocol, max_batch_size=8) as remote:
        assert (await remote.get("/readyz")).status_code == 200
        got = await remote.post("/v1/embed", files=parts, data={"boxes": boxes})
        served = (await remote.get("/v1/model")).json()
        size, trim = served["input_size"], served["trim_letterbox"]
        pixels = np.stack([load_model_input(p.read_bytes(), size, ImageLimits(), trim_letterbox=trim).pixels
                           for p in crop_paths])
        from_pixels = await remote.post("/v1/embed/pixels", content=encode_pixels(pixels),
                                        headers={"content-type": PIXELS_MEDIA_TYPE})
    assert expected.status_code == got.status_code == 200, got.text
    assert got.json()["model"] == expected.json()["model"]
    local_embeddings, local_species = _as_arrays(expected.json())
    triton_embeddings, triton_species = _as_arrays(got.json())
    assert triton_embeddings.shape == local_embeddings.shape == (len(parts), expected.json()["embedding_dim"])
    assert np.abs(triton_embeddings - local_embeddings).max() <= TOLERANCE
    for local, remote in zip(local_species, triton_species):
        assert local.keys() == remote.keys()
        assert max(abs(local[name] - remote[name]) for name in local) <= TOLERANCE
    np.testing.assert_allclose(np.linalg.norm(triton_embeddings, axis=1), 1.0, atol=1e-4)
    # Decoded pixels sent to Triton's backend give what the photos gave onnxruntime.
    assert from_pixels.status_code == 200, from_pixels.text
    pixel_embeddings, _ = _as_arrays(from_pixels.json())
    assert np.abs(pixel_embeddings - local_embeddings[: len(crop_paths)]).max() <= TOLERANCE


async def test_unreachable_triton_is_a_503_with_retry_after_and_the_service_stays_up(start_embedder, crop_parts) -> None:
    nowhere = f"127.0.0.1:{free_port()}"
    async with start_embedder(backend="triton", triton_url=nowhere, triton_timeout_s=2) as client:
        ready = await client.get("/readyz")
        response = await client.post("/v1/embed", files=crop_parts[:1])
        alive = await client.get("/healthz")
    assert ready.status_code == 503
    assert ready.json()["checks"]["model"]["ready"] is False
    assert response.status_code == 503
    assert response.headers["Retry-After"]
    assert response.json()["type"].endswith("/dependency-unavailable")
    assert alive.status_code == 200
