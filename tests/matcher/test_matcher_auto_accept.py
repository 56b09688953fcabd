"""The matcher applies the model card's calibration: the probability that the top candidate is the
animal, and the auto-accept cut of a precision target, for the model version it was fitted on only."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from conftest import Catalogue, near, running_matcher, unit, with_model_card
from test_service import body, search

from services.matcher.settings import MatcherSettings

A, B = 20.0, -10.0
# Validation precision above each cut: 0.9 is first reached at 0.6, 0.99 at 0.8, 1.0 never.
CURVE = {"cuts": [0.4, 0.5, 0.6, 0.7, 0.8], "precision": [0.7, 0.85, 0.92, 0.95, 0.99],
         "coverage": [0.6, 0.4, 0.3, 0.2, 0.1]}


@pytest.fixture
def calibrated(settings: MatcherSettings, tmp_path: Path) -> MatcherSettings:
    return with_model_card(settings, tmp_path, probability_calibration={
        "by_species": {"humpback_whale": {"top_candidate": {"a": A, "b": B}, "new_individual": {"a": -A, "b": -B}}},
        "auto_accept": {"by_species": {"humpback_whale": CURVE}},
    })


async def test_probability_and_cut_of_the_card(calibrated: MatcherSettings, catalog: Catalogue,
                                               key: dict[str, str], rng: np.random.Generator) -> None:
    query = unit(rng.standard_normal(512))
    async with running_matcher(calibrated, catalog) as client:
        await client.put("/v1/embeddings/e-1", json=body(key, "e-1", "ind-a", near(query, 0.65, rng), seq=1))
        plain = (await search(client, key, query))["results"][0]
        assert plain["auto_accept"] is None  # no target asked for
        assert plain["top_candidate_probability"] == pytest.approx(1 / (1 + math.exp(-(A * 0.65 + B))), abs=1e-4)
        # P(new) is the card's fit too (not the logistic around the threshold, 0.5 at the threshold 0.5).
        assert plain["new_individual"] == pytest.approx(1 / (1 + math.exp(-(-A * 0.65 - B))), abs=1e-4)

        at_90 = (await search(client, key, query, precision_target=0.9))["results"][0]["auto_accept"]
        assert at_90["cut"] == 0.6 and at_90["accepted"] is True
        assert at_90["validation_precision"] == 0.92 and at_90["validation_coverage"] == 0.3
        assert at_90["probability_cut"] == pytest.approx(1 / (1 + math.exp(-(A * 0.6 + B))), abs=1e-5)

        at_99 = (await search(client, key, query, precision_target=0.99))["results"][0]["auto_accept"]
        assert at_99["cut"] == 0.8 and at_99["accepted"] is False  # 0.65 is below 0.8
        unreachable = (await search(client, key, query, precision_target=1.0))["results"][0]["auto_accept"]
        assert unreachable["cut"] is None and unreachable["accepted"] is False

        # Another species, or embeddings of another model version: no calibration, nothing accepted.
        other = {**key, "species_group": "beluga"}
        await client.put("/v1/embeddings/e-2", json=body(other, "e-2", "ind-b", near(query, 0.95, rng), seq=2))
        beluga = (await search(client, other, query, precision_target=0.9))["results"][0]
        assert beluga["top_candidate_probability"] is None
        assert beluga["new_individual"] == pytest.approx(1 / (1 + math.exp((0.95 - 0.5) / 0.05)), abs=1e-5)
        assert beluga["auto_accept"] == {**beluga["auto_accept"], "cut": None, "accepted": False}
        # (another shard: one shard answers from one model version, and refuses queries of another)
        newer = {**key, "species_group": "gray_whale", "model_version": "finprint_embedder:99"}
        await client.put("/v1/embeddings/e-3", json=body(newer, "e-3", "ind-a", near(query, 0.95, rng), seq=3))
        other_model = (await search(client, newer, query, precision_target=0.9))["results"][0]
        assert other_model["top_candidate_probability"] is None and other_model["auto_accept"]["accepted"] is False


async def test_a_target_out_of_range_is_refused(calibrated: MatcherSettings, catalog: Catalogue,
                                                key: dict[str, str]) -> None:
    async with running_matcher(calibrated, catalog) as client:
        response = await client.post("/v1/search", json={**key, "queries": [[0.04] * 512], "precision_target": 0.3})
    assert response.status_code == 422
