"""The lists the web page filters: individuals, encounters and the review queue by species, period,
place and date; the review queue names each photo's sighting; the figures count undated encounters."""

from __future__ import annotations

from typing import Any

import pytest

from .helpers import Catalogue


def sighting(cat: Catalogue, individual_id: str | None, *, when: str | None, place: str | None,
             species: str = "humpback_whale") -> dict[str, Any]:
    """One photo of one animal at ``place`` on ``when`` (None: undated), confirmed as ``individual_id``
    or waiting for review."""
    media = cat.upload()["media"]
    annotation: dict[str, Any] = {"box": {"x": 2, "y": 2, "width": 40, "height": 30}, "view": "fluke",
                                  "species": species, "species_score": 0.9}
    if individual_id:
        annotation.update(decision="confirmed", individual_id=individual_id, decided_by="ana")
    return cat.post("/enrolments", {
        "encounter": {"occurred_at": when, "location_name": place, "latitude": 48.5, "longitude": -123.1},
        "photos": [{"media_id": media["id"], "annotations": [annotation]}],
    })


def items(cat: Catalogue, path: str, **params: Any) -> list[dict[str, Any]]:
    response = cat.client.get(cat.url(path), params=params)
    assert response.status_code == 200, response.text
    page = response.json()
    assert page["total"] == len(page["items"])  # one page holds them all here
    return page["items"]


@pytest.fixture
def catalogue(cat: Catalogue) -> dict[str, Any]:
    salt = cat.individual("HW-1", sex="female", name="Salt")
    pepper = cat.individual("HW-2", sex="male")
    beluga = cat.individual("BW-1", species="beluga")
    made = {
        "salt_2019": sighting(cat, salt["id"], when="2019-08-01T10:00:00-04:00", place="Stellwagen Bank"),
        "salt_2024": sighting(cat, salt["id"], when="2024-06-02T09:00:00Z", place="Great South Channel"),
        "pepper_undated": sighting(cat, pepper["id"], when=None, place="Stellwagen bank (north)"),
        "beluga_2024": sighting(cat, beluga["id"], when="2024-07-01T12:00:00Z", place="Tadoussac",
                                species="beluga"),
        "pending_2024": sighting(cat, None, when="2024-06-20T15:30:00-04:00", place="Great South Channel"),
        "pending_undated": sighting(cat, None, when=None, place=None),
        "pending_beluga": sighting(cat, None, when="2023-05-05T05:00:00Z", place="Tadoussac", species="beluga"),
    }
    return {"salt": salt, "pepper": pepper, "beluga": beluga, **made}


def test_figures_count_undated_encounters_so_months_add_up(cat: Catalogue, catalogue: dict[str, Any]) -> None:
    stats = cat.client.get(cat.url("/stats")).json()
    assert stats["encounters"] == 7 and stats["encounters_undated"] == 2
    assert sum(m["count"] for m in stats["encounters_by_month"]) + stats["encounters_undated"] == stats["encounters"]


def test_encounters_by_species_place_and_date(cat: Catalogue, catalogue: dict[str, Any]) -> None:
    def encounter_of(name: str) -> str:
        return catalogue[name]["encounter"]["id"]

    belugas = {e["id"] for e in items(cat, "/encounters", species="beluga")}
    assert belugas == {encounter_of("beluga_2024"), encounter_of("pending_beluga")}
    # A place matches by part of its name, whatever the case; '%' and '_' are plain characters.
    stellwagen = {e["id"] for e in items(cat, "/encounters", location="STELLWAGEN")}
    assert stellwagen == {encounter_of("salt_2019"), encounter_of("pepper_undated")}
    assert items(cat, "/encounters", location="%") == []
    undated = {e["id"] for e in items(cat, "/encounters", dated="false")}
    assert undated == {encounter_of("pepper_undated"), encounter_of("pending_undated")}
    assert len(items(cat, "/encounters", dated="true")) == 5
    # Newest first and the undated last, on every database.
    listed = items(cat, "/encounters")
    assert [e["occurred_at"] is None for e in listed] == [False] * 5 + [True] * 2
    in_2024 = items(cat, "/encounters", since="2024-01-01T00:00:00Z", until="2025-01-01T00:00:00Z",
                    species="humpback_whale")
    assert {e["id"] for e in in_2024} == {encounter_of("salt_2024"), encounter_of("pending_2024")}


def test_individuals_by_sex_and_where_and_when_they_were_seen(cat: Catalogue, catalogue: dict[str, Any]) -> None:
    def codes(**params: Any) -> list[str]:
        return [i["catalogue_code"] for i in items(cat, "/individuals", **params)]

    assert codes(sex="female") == ["HW-1"]
    assert codes(location="stellwagen") == ["HW-1", "HW-2"]
    assert codes(since="2024-01-01T00:00:00Z") == ["BW-1", "HW-1"]
    assert codes(until="2020-01-01T00:00:00Z", species="humpback_whale") == ["HW-1"]
    assert codes(since="2024-06-01T00:00:00Z", until="2024-06-03T00:00:00Z", location="channel") == ["HW-1"]
    assert codes(q="sal") == ["HW-1"]


def test_the_review_queue_by_species_place_and_date_names_each_sighting(
    cat: Catalogue, catalogue: dict[str, Any]
) -> None:
    pending = items(cat, "/identifications", decision="pending")
    assert len(pending) == 3
    dated = next(i for i in pending if i["annotation_id"] == catalogue["pending_2024"]["annotations"][0]["id"])
    # The sighting's date in the zone it was recorded in, its place and its encounter.
    assert dated["occurred_at"] == "2024-06-20T15:30:00-04:00"
    assert dated["location_name"] == "Great South Channel"
    assert dated["encounter_id"] == catalogue["pending_2024"]["encounter"]["id"]

    def annotation_ids(**params: Any) -> set[str]:
        return {i["annotation_id"] for i in items(cat, "/identifications", decision="pending", **params)}

    def annotation_of(name: str) -> str:
        return catalogue[name]["annotations"][0]["id"]

    assert annotation_ids(species="beluga") == {annotation_of("pending_beluga")}
    assert annotation_ids(location="channel") == {annotation_of("pending_2024")}
    assert annotation_ids(dated="false") == {annotation_of("pending_undated")}
    assert annotation_ids(since="2024-01-01T00:00:00Z") == {annotation_of("pending_2024")}
    assert annotation_ids(until="2024-01-01T00:00:00Z") == {annotation_of("pending_beluga")}
    one = cat.client.get(cat.url(f"/identifications/{dated['id']}")).json()
    assert one["location_name"] == "Great South Channel"


@pytest.mark.parametrize("path", ["/individuals", "/encounters", "/identifications"])
def test_a_period_without_a_time_zone_is_refused(cat: Catalogue, path: str) -> None:
    response = cat.client.get(cat.url(path), params={"since": "2024-01-01T00:00:00"})
    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"
    assert "time zone" in response.text
