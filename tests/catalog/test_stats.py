"""Figures for charts, counted per organisation."""

from __future__ import annotations

from .helpers import Catalogue, MakeCatalogue


def test_stats_count_individuals_sightings_and_reviews(
    cat: Catalogue, make_catalogue: MakeCatalogue, other_org: str
) -> None:
    humpback = cat.individual("HW-1")
    cat.individual("HW-2")
    beluga = cat.individual("BW-1", species="beluga")
    cat.sighting(humpback["id"], when="2024-07-03T10:00:00Z")
    cat.sighting(humpback["id"], when="2024-07-20T10:00:00-07:00")
    cat.sighting(beluga["id"], when="2024-09-01T06:00:00Z", species="beluga")
    cat.post("/individuals:merge", {"target_id": humpback["id"], "source_ids": [cat.individual("HW-3")["id"]]},
             expect=200)
    make_catalogue(other_org).individual("OTHER-1")

    stats = cat.client.get(cat.url("/stats")).json()
    assert stats["individuals_by_species"] == {"humpback_whale": 2, "beluga": 1}
    assert stats["encounters_by_month"] == [{"month": "2024-07", "count": 2}, {"month": "2024-09", "count": 1}]
    assert stats["encounters"] == 3 and stats["media"] == 3
    assert sum(stats["identifications_by_decision"].values()) == 3
