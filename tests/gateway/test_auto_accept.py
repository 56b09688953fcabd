"""Auto-accept through the public API, on PostgreSQL and the S3 server (the five apps in process, the
shipped models, real photos): an organisation's precision target confirms a stored match that clears
its species' cut without review, audited as automatic, and a reviewer reverses it like any decision."""

from __future__ import annotations

import asyncio
import io
import zipfile
from pathlib import Path

import httpx
import pytest
from PIL import Image

from tests.gateway.conftest import Embedded
from tests.photos import individuals_with

pytestmark = pytest.mark.slow


def reencoded(path: Path, quality: int) -> bytes:
    """Another file of the same shot (the same animal, other bytes): as a second upload of a photo would be."""
    with Image.open(path) as image:
        buffer = io.BytesIO()
        image.convert("RGB").save(buffer, "JPEG", quality=quality)
    return buffer.getvalue()


async def identify_stored(gateway: httpx.AsyncClient, headers: dict[str, str], photo: bytes) -> dict:
    response = await gateway.post("/v1/identify", params={"store": "true"}, headers=headers,
                                  files={"image": ("query.jpg", photo, "image/jpeg")})
    assert response.status_code == 200, response.text
    [result] = response.json()["results"]
    return result


async def test_a_match_above_the_cut_is_confirmed_audited_and_reversible(on_postgres: Embedded,
                                                                         shared_data: Path) -> None:
    gateway = on_postgres.gateway
    _, keys = await on_postgres.org_with_keys("auto-accept-lab")
    admin, contributor, reviewer = ({"X-API-Key": keys[r]} for r in ("admin", "contributor", "reviewer"))
    [photos] = individuals_with(shared_data, photos=3, count=1)

    assert (await gateway.get("/v1/settings", headers=contributor)).json() == {"auto_accept_precision": None}
    enrolled = await gateway.post("/v1/encounters", headers=contributor, data={"individual_id": "HW-1"},
                                  files=[("images", (p.name, p.read_bytes(), "image/jpeg")) for p in photos])
    assert enrolled.status_code == 201, enrolled.text
    whale = enrolled.json()["new_individuals"][0]["id"]

    # Off by default: the match waits for review, however close.
    off = await identify_stored(gateway, contributor, reencoded(photos[0], 85))
    assert off["decision"] == "pending" and off["candidates"][0]["individual_id"] == "HW-1"
    assert off["top_candidate_probability"] > 0.5

    assert (await gateway.put("/v1/settings", headers=contributor, json={"auto_accept_precision": 0.99})
            ).status_code == 403
    assert (await gateway.put("/v1/settings", headers=admin, json={"auto_accept_precision": 0.3})).status_code == 422
    turned_on = await gateway.put("/v1/settings", headers=admin, json={"auto_accept_precision": 0.99})
    assert turned_on.status_code == 200 and turned_on.json() == {"auto_accept_precision": 0.99}

    on = await identify_stored(gateway, contributor, reencoded(photos[0], 75))
    assert on["decision"] == "confirmed", on
    identification = (await gateway.get(f"/v1/identifications/{on['identification_id']}", headers=reviewer)).json()
    assert identification["decided_by"] == "auto-accept" and identification["individual_id"] == whale
    listed = (await gateway.get("/v1/identifications", headers=reviewer,
                                params={"decision": "confirmed", "decided_by": "auto-accept"})).json()["items"]
    assert [i["id"] for i in listed] == [on["identification_id"]]

    audit = (await gateway.get("/v1/audit", headers=reviewer, params={"limit": 500})).json()["items"]
    [entry] = [e for e in audit if e["action"] == "auto_accepted"]
    assert entry["entity_id"] == on["identification_id"] and entry["actor"] == "auto-accept"
    details = entry["details"]
    assert details["precision_target"] == 0.99 and details["individual_id"] == whale
    assert details["score"] >= details["cut"] and details["probability"] >= details["probability_cut"]
    assert details["probability"] == pytest.approx(on["top_candidate_probability"], abs=1e-6)
    assert details["validation_precision"] >= 0.99
    [changed] = [e for e in audit if e["action"] == "settings_changed"]
    assert changed["details"] == {"previous": {"auto_accept_precision": None}, "auto_accept_precision": 0.99}

    # Reversible from the review queue: a reviewer rejects it, and the photo is no longer the whale's.
    rejected = await gateway.post(f"/v1/identifications/{on['identification_id']}:decide", headers=reviewer,
                                  json={"decision": "rejected"})
    assert rejected.status_code == 200, rejected.text
    assert rejected.json()["decision"] == "rejected" and rejected.json()["individual_id"] is None
    annotation = (await on_postgres.catalog.get(
        f"/v1/orgs/{identification['org_id']}/annotations/{identification['annotation_id']}")).json()
    assert annotation["individual_id"] is None
    assert not (await gateway.get("/v1/identifications", headers=reviewer,
                                  params={"decision": "confirmed", "decided_by": "auto-accept"})).json()["items"]

    # Bulk ingestion too (the gateway's own worker): an unnamed photo above the cut is confirmed.
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as zipped:
        zipped.writestr("again.jpg", reencoded(photos[1], 70))
        zipped.writestr("manifest.csv", "image,species\nagain.jpg,humpback_whale\n")
    job = await gateway.post("/v1/ingest/jobs", headers=contributor,
                             files={"archive": ("trip.zip", archive.getvalue(), "application/zip")})
    assert job.status_code == 201, job.text
    for _ in range(600):
        state = (await gateway.get(f"/v1/ingest/jobs/{job.json()['id']}", headers=contributor)).json()
        if state["status"] in ("completed", "failed", "cancelled"):
            break
        await asyncio.sleep(0.1)
    assert state["done"] == 1, state
    ingested = (await gateway.get("/v1/identifications", headers=reviewer,
                                  params={"decision": "confirmed", "decided_by": "auto-accept"})).json()["items"]
    assert len(ingested) == 1 and ingested[0]["individual_id"] == whale

    # Off again: pending again.
    await gateway.put("/v1/settings", headers=admin, json={"auto_accept_precision": None})
    again = await identify_stored(gateway, contributor, reencoded(photos[0], 65))
    assert again["decision"] == "pending"
