"""POST /v1/duplicates: pairs of individuals whose galleries are closer than the card's cut, scored by
finprint.galleries (best photo pair mixed with the centroids), for the model version of the card only."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from conftest import Catalogue, near, running_matcher, unit, with_model_card
from test_service import body

from finprint.galleries import gallery_pairs
from services.matcher.settings import MatcherSettings

CUT = 0.7


@pytest.fixture
def calibrated(settings: MatcherSettings, tmp_path: Path) -> MatcherSettings:
    return with_model_card(settings, tmp_path, individual_scoring={"centroid_weight": 0.5},
                           duplicate_calibration={"by_species": {"humpback_whale": {"cut": CUT}}})


def test_the_score_of_two_galleries_by_hand() -> None:
    e = np.eye(4, dtype=np.float32)
    # a: photos e0, e1; b: photo (e0 + e2)/sqrt2 (cosine 0.707 to e0); c: e3, far from both.
    vectors = np.stack([e[0], e[1], unit(e[0] + e[2]), e[3]])
    [ab, *others] = gallery_pairs(vectors, ["a", "a", "b", "c"], centroid_weight=0.5)
    centroid_a, centroid_b = unit(e[0] + e[1]), unit(e[0] + e[2])
    assert (ab.a, ab.b) == ("a", "b") and ab.best == pytest.approx(0.7071, abs=1e-4)
    assert ab.centroid == pytest.approx(float(centroid_a @ centroid_b), abs=1e-5)
    assert ab.score == pytest.approx(0.5 * ab.best + 0.5 * ab.centroid, abs=1e-5)
    assert (ab.photo_a, ab.photo_b) == (0, 2)
    assert all(p.score < ab.score for p in others)
    assert gallery_pairs(vectors, ["a", "a", "b", "c"], 0.5, min_score=0.9) == []


async def test_pairs_above_the_cards_cut(calibrated: MatcherSettings, catalog: Catalogue, key: dict[str, str],
                                         rng: np.random.Generator) -> None:
    animal = unit(rng.standard_normal(512))
    other = unit(rng.standard_normal(512))
    photos = {"a-1": ("ind-a", near(animal, 0.95, rng)), "a-2": ("ind-a", near(animal, 0.95, rng)),
              "b-1": ("ind-b", near(animal, 0.95, rng)), "c-1": ("ind-c", other)}
    async with running_matcher(calibrated, catalog) as client:
        for seq, (embedding, (individual, vector)) in enumerate(photos.items(), start=1):
            await client.put(f"/v1/embeddings/{embedding}", json=body(key, embedding, individual, vector, seq=seq))
        found = (await client.post("/v1/duplicates", json=key)).json()
        everything = (await client.post("/v1/duplicates", json={**key, "min_score": -1.0})).json()
        # (another shard: one shard answers from one model version, and refuses queries of another)
        newer = {**key, "species_group": "gray_whale", "model_version": "finprint_embedder:99"}
        await client.put("/v1/embeddings/n-1", json=body(newer, "n-1", "ind-a", animal, seq=9))
        await client.put("/v1/embeddings/n-2", json=body(newer, "n-2", "ind-b", animal, seq=10))
        uncalibrated = (await client.post("/v1/duplicates", json=newer)).json()
        missing = (await client.post("/v1/duplicates", json={**key, "species_group": "beluga"})).json()

    assert found["cut"] == CUT and found["individuals"] == 3
    [pair] = found["pairs"]
    assert (pair["individual_a"], pair["individual_b"]) == ("ind-a", "ind-b") and pair["score"] >= CUT
    assert {pair["embedding_a"], pair["embedding_b"]} <= {"a-1", "a-2", "b-1"} and pair["embedding_b"] == "b-1"
    assert {(p["individual_a"], p["individual_b"]) for p in everything["pairs"]} == {
        ("ind-a", "ind-b"), ("ind-a", "ind-c"), ("ind-b", "ind-c")}
    # Another model version has no cut on this card: nothing is reported, however close.
    assert uncalibrated == {"cut": None, "individuals": 2, "pairs": []}
    assert missing["pairs"] == [] and missing["individuals"] == 0
