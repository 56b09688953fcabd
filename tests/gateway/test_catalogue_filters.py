"""The public lists take the web page's filters (species, period, place, dated, sex) through to the
catalog, and refuse a bad one with a problem; the review queue names each photo's sighting."""

from __future__ import annotations

from typing import Any

import httpx

from tests.catalog.helpers import jpeg

from tests.gateway.conftest import Embedded


async def _sighting(embedded: Embedded, org: str, seed: int, *, when: str | None, place: str,
                    individual_id: str | None = None, species: str = "humpback_whale") -> dict[str, Any]:
    upload = await embedded.catalog.post(f"/v1/orgs/{org}/media",
                                         files={"file": ("photo.jpg", jpeg(seed), "image/jpeg")})
    annotation: dict[str, Any] = {"box": {"x": 2, "y": 2, "width": 40, "height": 30}, "species": species}
    if individual_id:
        annotation.update(decision="confirmed", individual_id=individual_id)
    enrolled = await embedded.catalog.post(f"/v1/orgs/{org}/enrolments", json={
        "encounter": {"occurred_at": when, "location_name": place},
        "photos": [{"media_id": upload.json()["media"]["id"], "annotations": [annotation]}]})
    assert enrolled.status_code == 201, enrolled.text
    return enrolled.json()


async def _page(gateway: httpx.AsyncClient, key: str, path: str, **params: Any) -> dict[str, Any]:
    response = await gateway.get(path, params=params, headers={"X-API-Key": key})
    assert response.status_code == 200, response.text
    return response.json()


async def test_the_lists_filter_by_sighting(embedded: Embedded) -> None:
    org, keys = await embedded.org_with_keys("filters-lab")
    viewer = keys["viewer"]
    salt = (await embedded.catalog.post(f"/v1/orgs/{org}/individuals", json={
        "catalogue_code": "HW-1", "species": "humpback_whale", "sex": "female"})).json()
    await embedded.catalog.post(f"/v1/orgs/{org}/individuals", json={
        "catalogue_code": "HW-2", "species": "humpback_whale", "sex": "male"})
    await _sighting(embedded, org, 1, when="2024-06-02T09:00:00Z", place="Great South Channel",
                    individual_id=salt["id"])
    await _sighting(embedded, org, 2, when=None, place="Stellwagen Bank")
    await _sighting(embedded, org, 3, when="2023-05-05T05:00:00-04:00", place="Tadoussac", species="beluga")

    individuals = await _page(embedded.gateway, viewer, "/v1/individuals", location="channel", sex="female")
    assert [i["catalogue_code"] for i in individuals["items"]] == ["HW-1"]
    assert (await _page(embedded.gateway, viewer, "/v1/individuals", since="2025-01-01T00:00:00Z"))["total"] == 0

    undated = await _page(embedded.gateway, viewer, "/v1/encounters", dated="false")
    assert [e["location_name"] for e in undated["items"]] == ["Stellwagen Bank"]
    belugas = await _page(embedded.gateway, viewer, "/v1/encounters", species="beluga")
    assert [e["location_name"] for e in belugas["items"]] == ["Tadoussac"]

    queue = await _page(embedded.gateway, viewer, "/v1/identifications")
    assert queue["total"] == 2
    by_place = {i["location_name"]: i for i in queue["items"]}
    assert by_place["Tadoussac"]["occurred_at"] == "2023-05-05T05:00:00-04:00"
    assert by_place["Stellwagen Bank"]["occurred_at"] is None and by_place["Stellwagen Bank"]["encounter_id"]
    filtered = await _page(embedded.gateway, viewer, "/v1/identifications", species="beluga",
                           until="2024-01-01T00:00:00Z", location="tadou")
    assert [i["location_name"] for i in filtered["items"]] == ["Tadoussac"]
    assert (await _page(embedded.gateway, viewer, "/v1/identifications", dated="true"))["total"] == 1

    stats = await _page(embedded.gateway, viewer, "/v1/stats")
    assert stats["encounters"] == 3 and stats["encounters_undated"] == 1
    assert sum(m["count"] for m in stats["encounters_by_month"]) + stats["encounters_undated"] == 3


async def test_a_bad_filter_is_a_problem(embedded: Embedded) -> None:
    _, keys = await embedded.org_with_keys("bad-filters-lab")
    headers = {"X-API-Key": keys["viewer"]}
    for path, params in [("/v1/encounters", {"since": "2024-01-01T00:00:00"}),
                         ("/v1/identifications", {"until": "yesterday"}),
                         ("/v1/individuals", {"sex": "cow"}),
                         ("/v1/encounters", {"dated": "perhaps"}),
                         ("/v1/individuals", {"location": "x" * 201})]:
        response = await embedded.gateway.get(path, params=params, headers=headers)
        assert response.status_code == 422, (path, params, response.text)
        assert response.headers["content-type"] == "application/problem+json"
