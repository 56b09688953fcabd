"""Identify by encounter: several photos of one animal, each answered alone and once together
(their embeddings averaged), on the five apps in process with real photos and the shipped models."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tests.gateway.conftest import Embedded
from tests.photos import individuals_with

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def whales(shared_data: Path) -> dict[str, list[Path]]:
    """Four humpbacks with five photos each: three to enrol, two to identify as one encounter."""
    return {f"HW-{n}": paths for n, paths in enumerate(individuals_with(shared_data, photos=5, count=4))}


def files(paths: list[Path]) -> list[tuple[str, tuple[str, bytes, str]]]:
    return [("images", (p.name, p.read_bytes(), "image/jpeg")) for p in paths]


async def enrolled_org(embedded: Embedded, whales: dict[str, list[Path]]) -> dict[str, str]:
    _, keys = await embedded.org_with_keys("encounter-lab")
    headers = {"X-API-Key": keys["contributor"]}
    for code, paths in whales.items():
        response = await embedded.gateway.post("/v1/encounters", headers=headers, files=files(paths[:3]),
                                               data={"individual_id": code})
        assert response.status_code == 201, response.text
    return headers


async def test_an_encounter_gets_each_photos_answer_and_one_fused_answer(
        embedded: Embedded, whales: dict[str, list[Path]], shared_data: Path) -> None:
    headers = await enrolled_org(embedded, whales)
    seal = sorted((shared_data / "field_negatives" / "images").glob("*.jpg"))[0]
    code, paths = next(iter(whales.items()))
    response = await embedded.gateway.post("/v1/encounters:identify", headers=headers,
                                           files=files([paths[3], paths[4], seal]))
    assert response.status_code == 200, response.text
    body = response.json()
    assert [p["filename"] for p in body["photos"]] == [paths[3].name, paths[4].name, seal.name]
    assert body["photos"][2]["result"] is None and body["photos"][2]["reason"] == "no_cetacean"
    fused = body["fused"]
    assert fused["photos_used"] == 2
    assert fused["species"][0]["species"] == "humpback_whale"
    assert fused["ranking"][0] == code
    # The fused answer is the search of the photos' mean embedding, not one photo's answer again.
    singles = [{c["individual_id"]: c["score"] for c in p["result"]["candidates"]} for p in body["photos"][:2]]
    fused_scores = {c["individual_id"]: c["score"] for c in fused["candidates"]}
    assert fused_scores[code] not in (singles[0].get(code), singles[1].get(code))
    assert fused_scores[code] > float(np.mean([s[code] for s in singles if code in s]))
    identify_one = await embedded.gateway.post("/v1/identify", headers=headers, files=[
        ("image", (paths[3].name, paths[3].read_bytes(), "image/jpeg"))])
    assert identify_one.json()["results"][0]["ranking"] == body["photos"][0]["result"]["ranking"]


async def test_an_encounter_without_a_cetacean_has_no_fused_answer(embedded: Embedded, shared_data: Path) -> None:
    _, keys = await embedded.org_with_keys("empty-lab")
    seals = sorted((shared_data / "field_negatives" / "images").glob("*.jpg"))[:2]
    response = await embedded.gateway.post("/v1/encounters:identify", headers={"X-API-Key": keys["viewer"]},
                                           files=files(seals))
    assert response.status_code == 200
    assert response.json()["fused"] is None and response.json()["reason"] == "no_cetacean"


@pytest.mark.parametrize("count", [0, 21])
async def test_too_few_or_too_many_photos_are_a_422_naming_the_field(
        embedded: Embedded, whales: dict[str, list[Path]], count: int) -> None:
    _, keys = await embedded.org_with_keys(f"count-lab-{count}")
    photo = next(iter(whales.values()))[0]
    response = await embedded.gateway.post(
        "/v1/encounters:identify", headers={"X-API-Key": keys["viewer"]},
        files=files([photo] * count) or {"other": ("x.txt", b"x", "text/plain")})
    assert response.status_code == 422
    assert response.headers["content-type"].startswith("application/problem+json")
    assert "`images`" in response.json()["detail"]


async def test_an_encounter_as_json_is_a_415(embedded: Embedded) -> None:
    _, keys = await embedded.org_with_keys("json-lab")
    response = await embedded.gateway.post("/v1/encounters:identify", headers={"X-API-Key": keys["viewer"]},
                                           json={"images": []})
    assert response.status_code == 415
