"""Possible duplicates through the public API and the nightly command, on PostgreSQL and the S3 server
(the five apps in process, the shipped models, real photos): an animal catalogued under two codes is
filed for review with both galleries, merged in one click or dismissed, and a decided pair is not
filed again."""

from __future__ import annotations

import io
import json
from pathlib import Path

import httpx
import pytest
from PIL import Image

from services.gateway.cli import scan_duplicates
from tests.gateway.conftest import Embedded
from tests.photos import individuals_with

pytestmark = pytest.mark.slow


def reencoded(path: Path) -> bytes:
    """The same shot as another file: the photo uploaded again, under another code."""
    with Image.open(path) as image:
        buffer = io.BytesIO()
        image.convert("RGB").save(buffer, "JPEG", quality=80)
    return buffer.getvalue()


async def enrol(gateway: httpx.AsyncClient, headers: dict[str, str], code: str,
                photos: list[bytes]) -> tuple[str, list[str]]:
    """The new individual's id and its photos' media ids, in order."""
    response = await gateway.post("/v1/encounters", headers=headers, data={"individual_id": code},
                                  files=[("images", (f"{code}-{i}.jpg", p, "image/jpeg")) for i, p in enumerate(photos)])
    assert response.status_code == 201, response.text
    return response.json()["new_individuals"][0]["id"], [m["id"] for m in response.json()["media"]]


async def test_an_animal_under_two_codes_is_filed_merged_and_not_filed_again(
        on_postgres: Embedded, shared_data: Path, capsys: pytest.CaptureFixture[str]) -> None:
    gateway = on_postgres.gateway
    _, keys = await on_postgres.org_with_keys("duplicates-lab")
    contributor, reviewer = {"X-API-Key": keys["contributor"]}, {"X-API-Key": keys["reviewer"]}
    first, second, third = individuals_with(shared_data, photos=2, count=3)
    card = json.loads((Path("model_repository") / "finprint_embedder" / "finprint.json").read_text())
    cut = card["duplicate_calibration"]["by_species"]["humpback_whale"]["cut"]

    one, one_photos = await enrol(gateway, contributor, "HW-1", [p.read_bytes() for p in first])
    again, again_photos = await enrol(gateway, contributor, "HW-1-again", [reencoded(first[0])])
    await enrol(gateway, contributor, "HW-2", [p.read_bytes() for p in second])
    await enrol(gateway, contributor, "HW-2-again", [reencoded(second[1])])
    await enrol(gateway, contributor, "HW-3", [p.read_bytes() for p in third])

    scanned = await gateway.post("/v1/duplicates:scan", headers=reviewer, json={"species": ["humpback_whale"]})
    assert scanned.status_code == 200, scanned.text
    humpbacks = scanned.json()["species"]["humpback_whale"]
    assert humpbacks["cut"] == cut and humpbacks["individuals"] == 5 and humpbacks["filed"] >= 2
    assert (await gateway.post("/v1/duplicates:scan", headers={"X-API-Key": keys["contributor"]})).status_code == 403

    queue = (await gateway.get("/v1/duplicates", headers=reviewer)).json()["items"]
    by_codes = {frozenset((p["a"]["catalogue_code"], p["b"]["catalogue_code"])): p for p in queue}
    assert all(p["score"] >= cut for p in queue)
    planted = by_codes[frozenset(("HW-1", "HW-1-again"))]
    other = by_codes[frozenset(("HW-2", "HW-2-again"))]
    sides = {planted["a"]["catalogue_code"]: planted["a"], planted["b"]["catalogue_code"]: planted["b"]}
    # Both galleries side by side, the closest photos first: the photo uploaded twice.
    assert sides["HW-1"]["photos"] == one_photos and sides["HW-1-again"]["photos"] == again_photos
    assert sides["HW-1"]["id"] == one and sides["HW-1-again"]["status"] == "active"

    # One click: merge (HW-1 stays).
    merged = await gateway.post(planted["merge"], headers=reviewer, json={"decision": "merged", "keep": "HW-1"})
    assert merged.status_code == 200, merged.text
    assert merged.json()["status"] == "merged"
    survivor = (await gateway.get("/v1/individuals/HW-1", headers=reviewer)).json()
    assert survivor["id"] == one
    history = (await gateway.get("/v1/individuals/HW-1/history", headers=reviewer)).json()
    assert any(again in json.dumps(entry) for entry in history)
    dismissed = await gateway.post(other["merge"], headers=reviewer, json={"decision": "dismissed"})
    assert dismissed.json()["status"] == "dismissed"

    # The nightly command: the merged pair is gone from the index, the dismissed one is not filed again.
    transports = {name: httpx.ASGITransport(app=app) for name, app in on_postgres.apps.items()}
    assert await scan_duplicates(["duplicates-lab"], ["humpback_whale"], transports) == 0
    [line] = [json.loads(x) for x in capsys.readouterr().out.splitlines() if x.startswith("{")]
    nightly = line["species"]["humpback_whale"]
    assert line["org"] == "duplicates-lab" and nightly["individuals"] == 4 and nightly["unchanged"] >= 1
    assert nightly["filed"] == 0
    assert (await gateway.get("/v1/duplicates", headers=reviewer, params={"status": "dismissed"})
            ).json()["items"][0]["id"] == other["id"]
    assert all(p["id"] not in (planted["id"], other["id"])
               for p in (await gateway.get("/v1/duplicates", headers=reviewer)).json()["items"])
