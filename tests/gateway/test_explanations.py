"""Why this match, through the public API on PostgreSQL and the S3 server (the five apps in process, the
shipped models, real photos): the heatmaps of the photo under review and of the candidate's photo that
gave its score, their PNG overlays kept in the object store, computed once per pair."""

from __future__ import annotations

import io
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import numpy as np
import pytest
from PIL import Image

from finprint_testing.postgres import PostgresServer
from finprint_testing.s3 import S3Server
from tests.gateway.conftest import Embedded, embedded_on_postgres
from tests.photos import individuals_with

pytestmark = pytest.mark.slow


class CountingWire(httpx.AsyncBaseTransport):
    """The way to a real service, counting the requests by path."""

    def __init__(self, inner: httpx.AsyncBaseTransport) -> None:
        self.inner = inner
        self.paths: list[str] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.paths.append(request.url.path)
        return await self.inner.handle_async_request(request)


@pytest.fixture
async def system(embedded_env: Path, monkeypatch: pytest.MonkeyPatch, postgres_server: PostgresServer,
                 s3_server: S3Server) -> AsyncIterator[tuple[Embedded, CountingWire]]:
    wires: list[CountingWire] = []

    def wire(name: str, transport: httpx.AsyncBaseTransport) -> httpx.AsyncBaseTransport:
        if name != "embedder":
            return transport
        wires.append(CountingWire(transport))
        return wires[-1]

    async with embedded_on_postgres(monkeypatch, postgres_server, s3_server, wire) as started:
        yield started, wires[0]


async def test_a_candidate_is_explained_once_with_two_overlays(system: tuple[Embedded, CountingWire],
                                                              shared_data: Path) -> None:
    embedded, embedder = system
    gateway = embedded.gateway
    _, keys = await embedded.org_with_keys("explained-lab")
    contributor, viewer = {"X-API-Key": keys["contributor"]}, {"X-API-Key": keys["viewer"]}
    [photos] = individuals_with(shared_data, photos=4, count=1)
    enrolled = await gateway.post("/v1/encounters", headers=contributor, data={"individual_id": "HW-1"},
                                  files=[("images", (p.name, p.read_bytes(), "image/jpeg")) for p in photos[:3]])
    assert enrolled.status_code == 201, enrolled.text
    gallery = {m["id"] for m in enrolled.json()["media"]}
    stored = await gateway.post("/v1/identify", params={"store": "true"}, headers=contributor,
                                files={"image": (photos[3].name, photos[3].read_bytes(), "image/jpeg")})
    [result] = stored.json()["results"]
    assert result["candidates"][0]["individual_id"] == "HW-1"
    identification = result["identification_id"]

    path = f"/v1/identifications/{identification}/explanations/HW-1"
    first = await gateway.get(path, headers=viewer)
    assert first.status_code == 200, first.text
    explanation = first.json()
    assert explanation["query"]["media_id"] == stored.json()["media_id"]
    assert explanation["candidate"]["media_id"] in gallery
    assert -1 <= explanation["similarity"] <= 1 and explanation["model_version"] == "finprint_embedder:2"
    for side in ("query", "candidate"):
        heat = np.array(explanation[side]["heatmap"])
        assert heat.shape == (explanation["grid"],) * 2 and heat.max() > 0
        # The overlay, from the object store through its presigned URL, is a PNG of the photo.
        async with httpx.AsyncClient() as anyone:
            png = await anyone.get(explanation[side]["overlay_url"])
        assert png.status_code == 200 and png.headers["content-type"] == "image/png"
        with Image.open(io.BytesIO(png.content)) as overlay:
            assert overlay.format == "PNG" and max(overlay.size) == 384
    assert embedder.paths.count("/v1/explain") == 1

    # Kept: the same pair again (by individual id this time) costs the embedder nothing.
    individual_id = explanation["individual_id"]
    again = await gateway.get(f"/v1/identifications/{identification}/explanations/{individual_id}", headers=viewer)
    assert again.status_code == 200
    assert {k: v for k, v in again.json().items() if k not in ("query", "candidate", "expires_at")} == {
        k: v for k, v in explanation.items() if k not in ("query", "candidate", "expires_at")}
    assert again.json()["query"]["heatmap"] == explanation["query"]["heatmap"]
    assert embedder.paths.count("/v1/explain") == 1

    # Not a candidate, or another organisation's identification: not found.
    assert (await gateway.get(f"/v1/identifications/{identification}/explanations/HW-404",
                              headers=viewer)).status_code == 404
    _, others = await embedded.org_with_keys("other-lab")
    assert (await gateway.get(path, headers={"X-API-Key": others["viewer"]})).status_code == 404
