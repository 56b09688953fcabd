"""The one enrolment service, through POST /v1/encounters on the five apps in process (real models,
real photos): photos analysed concurrently within the limit, each photo sent to the catalog once as
uploaded, the first bad photo named, a new animal enrolled twice at once created once, a matcher
outage after the commit no failure, a stored photo analysed again as it was at enrolment."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from finprint.schemas.embeddings import decode_vector
from tests.gateway.conftest import Embedded, start_embedded
from tests.photos import individuals_with

pytestmark = pytest.mark.slow


class WatchedWire(httpx.AsyncBaseTransport):
    """The way to one real service, a little slower (``delay_s`` per request, so calls that could overlap
    do), counting the requests in flight at once; ``refuse`` paths fail to connect, as a service that is down."""

    def __init__(self, inner: httpx.AsyncBaseTransport, delay_s: float = 0.0, refuse: tuple[str, ...] = ()) -> None:
        self.inner = inner
        self.delay_s = delay_s
        self.refuse = refuse
        self.in_flight = 0
        self.most_in_flight = 0
        self.paths: list[str] = []
        self.bodies: list[bytes] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.paths.append(request.url.path)
        self.bodies.append(await request.aread())
        if request.url.path in self.refuse:
            raise httpx.ConnectError("refused by the test", request=request)
        self.in_flight += 1
        self.most_in_flight = max(self.most_in_flight, self.in_flight)
        try:
            await asyncio.sleep(self.delay_s)
            return await self.inner.handle_async_request(request)
        finally:
            self.in_flight -= 1

    async def aclose(self) -> None:
        await self.inner.aclose()


@pytest.fixture(scope="module")
def whales(shared_data: Path) -> dict[str, list[Path]]:
    """Two humpbacks with four photos each."""
    return {f"HW-{n}": paths for n, paths in enumerate(individuals_with(shared_data, photos=4, count=2))}


@pytest.fixture
def seal(shared_data: Path) -> Path:
    return sorted((shared_data / "field_negatives" / "images").glob("*.jpg"))[0]


def files(photos: list[Path | bytes]) -> list[tuple[str, tuple[str, bytes, str]]]:
    return [("images", (p.name, p.read_bytes(), "image/jpeg") if isinstance(p, Path) else (f"made-{i}.jpg", p,
                                                                                          "image/jpeg"))
            for i, p in enumerate(photos)]


async def contributor(embedded: Embedded, slug: str) -> tuple[str, dict[str, str]]:
    org_id, keys = await embedded.org_with_keys(slug)
    return org_id, {"X-API-Key": keys["contributor"]}


async def stored_encounters(embedded: Embedded, headers: dict[str, str]) -> list[dict]:
    return (await embedded.gateway.get("/v1/encounters", headers=headers)).json()["items"]


@asynccontextmanager
async def watching(service: str, **wire: Any) -> AsyncIterator[tuple[Embedded, WatchedWire]]:
    """The system from the environment, the way to ``service`` watched (``WatchedWire``'s options)."""
    watched: list[WatchedWire] = []

    def wires(name: str, transport: httpx.AsyncBaseTransport) -> httpx.AsyncBaseTransport:
        if name != service:
            return transport
        watched.append(WatchedWire(transport, **wire))
        return watched[0]

    async with start_embedded(wires) as embedded:
        yield embedded, watched[0]


@pytest.fixture
async def slow_detector(embedded_env: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[
        tuple[Embedded, WatchedWire]]:
    """At most two photos at a time, and a slower way to the detector (so that two can overlap there)."""
    monkeypatch.setenv("FINPRINT_GATEWAY_ENCOUNTER_PHOTO_CONCURRENCY", "2")
    async with watching("detector", delay_s=0.4) as system:
        yield system


@pytest.fixture
async def matcher_cannot_sync(embedded_env: Path) -> AsyncIterator[tuple[Embedded, WatchedWire]]:
    """A matcher that cannot be reached for POST /v1/sync (searches still answer)."""
    async with watching("matcher", refuse=("/v1/sync",)) as system:
        yield system


async def test_an_encounters_photos_are_analysed_concurrently_within_the_limit(
        slow_detector: tuple[Embedded, WatchedWire], whales: dict[str, list[Path]]) -> None:
    embedded, detector = slow_detector
    _, headers = await contributor(embedded, "concurrent-lab")
    code, paths = next(iter(whales.items()))
    response = await embedded.gateway.post("/v1/encounters", headers=headers, files=files(list(paths)),
                                           data={"individual_id": code})
    assert response.status_code == 201, response.text
    assert len(response.json()["media"]) == 4
    assert detector.paths.count("/v1/detect/pixels") == 4
    # FINPRINT_GATEWAY_ENCOUNTER_PHOTO_CONCURRENCY=2: two photos at the detector at once, never three.
    assert detector.most_in_flight == 2


async def test_a_stored_enrolment_is_no_failure_when_the_matcher_cannot_index_it_yet(
        matcher_cannot_sync: tuple[Embedded, WatchedWire], whales: dict[str, list[Path]]) -> None:
    embedded, matcher = matcher_cannot_sync
    _, headers = await contributor(embedded, "sync-down-lab")
    code, paths = next(iter(whales.items()))
    response = await embedded.gateway.post("/v1/encounters", headers=headers, files=files(paths[:1]),
                                           data={"individual_id": code})
    assert response.status_code == 201, response.text
    assert "/v1/sync" in matcher.paths  # asked, refused, and the enrolment still answered 201
    assert [e["id"] for e in await stored_encounters(embedded, headers)] == [response.json()["encounter"]["id"]]


@pytest.fixture
async def watched_catalog(embedded_env: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[
        tuple[Embedded, WatchedWire]]:
    """The requests to the catalog recorded (no worker of the gateway's own polling it)."""
    monkeypatch.setenv("FINPRINT_GATEWAY_EMBEDDED_WORKER", "false")
    async with watching("catalog") as system:
        yield system


async def test_each_photo_goes_to_the_catalog_once_as_uploaded(
        watched_catalog: tuple[Embedded, WatchedWire], whales: dict[str, list[Path]]) -> None:
    embedded, catalog = watched_catalog
    org_id, headers = await contributor(embedded, "once-lab")
    code, paths = next(iter(whales.items()))
    photos = [p.read_bytes() for p in paths[:3]]
    response = await embedded.gateway.post("/v1/encounters", headers=headers, files=files(paths[:3]),
                                           data={"individual_id": code})
    assert response.status_code == 201, response.text
    [body] = [b for p, b in zip(catalog.paths, catalog.bodies) if p == f"/v1/orgs/{org_id}/enrolments"]
    for photo in photos:
        assert body.count(photo) == 1  # its bytes as uploaded (base64 in JSON holds none of them raw)
    # Besides the photos: their annotations (a 2.7 KB embedding each, candidates) and the encounter.
    assert len(body) - sum(len(p) for p in photos) < 5_000 * len(photos)
    stored = [m["id"] for m in response.json()["media"]]
    assert [m["original_filename"] for m in response.json()["media"]] == [p.name for p in paths[:3]]
    for media_id, photo in zip(stored, photos):
        assert (await embedded.catalog.get(f"/v1/orgs/{org_id}/media/{media_id}/content")).content == photo


async def test_the_first_bad_photo_in_the_order_sent_is_the_answer_and_nothing_is_stored(
        embedded: Embedded, whales: dict[str, list[Path]]) -> None:
    _, headers = await contributor(embedded, "bad-photo-lab")
    good = next(iter(whales.values()))[0]
    gif, truncated = b"GIF89a" + b"\x00" * 64, b"\xff\xd8\xff\xe0" + b"\x00" * 64
    for _ in range(3):  # analysed concurrently, still the same answer every time
        response = await embedded.gateway.post("/v1/encounters", headers=headers,
                                               files=files([good, gif, truncated]))
        assert response.status_code == 415, response.text
        assert response.headers["content-type"].startswith("application/problem+json")
        assert "GIF" in response.json()["detail"]
    assert await stored_encounters(embedded, headers) == []


async def test_a_photo_without_a_cetacean_is_named_unless_the_uploader_names_the_animal(
        embedded: Embedded, whales: dict[str, list[Path]], seal: Path) -> None:
    _, headers = await contributor(embedded, "seal-lab")
    whale = next(iter(whales.values()))[0]
    refused = await embedded.gateway.post("/v1/encounters", headers=headers, files=files([whale, seal]))
    assert refused.status_code == 422
    assert refused.json()["type"].endswith("/no-cetacean") and refused.json()["image_index"] == 1
    assert seal.name in refused.json()["detail"]
    assert await stored_encounters(embedded, headers) == []
    named = await embedded.gateway.post("/v1/encounters", headers=headers, files=files([whale, seal]),
                                        data={"individual_id": "HW-SEEN"})
    assert named.status_code == 201, named.text
    assert len(named.json()["media"]) == 2 and len(named.json()["annotations"]) == 2


async def test_a_new_animal_enrolled_twice_at_once_is_created_once_and_confirmed_by_the_other(
        embedded: Embedded, whales: dict[str, list[Path]]) -> None:
    _, headers = await contributor(embedded, "race-lab")
    paths = next(iter(whales.values()))
    first, second = await asyncio.gather(*(
        embedded.gateway.post("/v1/encounters", headers=headers, files=files([path]),
                              data={"individual_id": "HW-TWICE"}) for path in paths[:2]))
    assert first.status_code == 201 and second.status_code == 201, (first.text, second.text)
    individuals = (await embedded.gateway.get("/v1/individuals", headers=headers)).json()["items"]
    assert [i["catalogue_code"] for i in individuals] == ["HW-TWICE"]
    decisions = sorted(i["decision"] for r in (first, second) for i in r.json()["identifications"])
    assert decisions == ["confirmed", "new_individual"]
    assigned = {i["individual_id"] for r in (first, second) for i in r.json()["identifications"]}
    assert assigned == {individuals[0]["id"]}


async def test_a_stored_photo_analysed_again_gives_the_embedding_stored_at_enrolment(
        embedded: Embedded, whales: dict[str, list[Path]]) -> None:
    org_id, headers = await contributor(embedded, "reembed-lab")
    code, paths = next(iter(whales.items()))
    enrolled = await embedded.gateway.post("/v1/encounters", headers=headers, files=files(paths[:1]),
                                           data={"individual_id": code})
    assert enrolled.status_code == 201, enrolled.text
    media_id = enrolled.json()["media"][0]["id"]
    service = embedded.apps["gateway"].state.gateway.enrolment
    again = await service.embed_stored(org_id, media_id)
    [record] = (await embedded.catalog.get("/v1/internal/embeddings", params={"org_id": org_id})).json()["records"]
    assert record["model_version"] == again.model_version
    np.testing.assert_allclose(again.vector, decode_vector(record["vector"]), atol=1e-5)
