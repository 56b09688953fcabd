"""Photos enrolled in the catalogue become searchable by individual, and a restart from a snapshot
equals a rebuild, with the catalogue written to the way researchers do while the matcher runs."""

from __future__ import annotations

from pathlib import Path

import httpx
import numpy as np
import pytest
from conftest import Catalogue, near, running_matcher, unit

from services.matcher.settings import MatcherSettings


async def search(client: httpx.AsyncClient, key: dict[str, str], queries: list[np.ndarray]) -> dict:
    response = await client.post("/v1/search", json={**key, "queries": [q.tolist() for q in queries], "k": 3})
    assert response.status_code == 200, response.text
    return response.json()


@pytest.fixture
def matcher_settings(settings: MatcherSettings) -> MatcherSettings:
    return settings.model_copy(update={"catalog_page_size": 2})


async def test_enrolled_photos_are_found_and_a_restart_replays_what_followed(
    tmp_path: Path,
    matcher_settings: MatcherSettings,
    catalog: Catalogue,
    key: dict[str, str],
    rng: np.random.Generator,
) -> None:
    centers = [unit(rng.standard_normal(512)) for _ in range(4)]
    individuals = [await catalog.individual(f"HW-{i}") for i in range(3)]
    annotations = [
        [await catalog.add_photo(individual_id, near(center, 0.8, rng)) for _ in range(2)]
        for individual_id, center in zip(individuals, centers)
    ]
    queries = [near(c, 0.75, rng) for c in centers]

    async with running_matcher(matcher_settings, catalog) as client:
        first = await search(client, key, queries)
        snapshot = (await client.post("/v1/snapshot")).json()
        late = await catalog.individual("HW-late")
        await catalog.add_photo(late, near(centers[3], 0.9, rng))
        await catalog.merge(individuals[0], individuals[1])  # HW-1 was HW-0 all along
        await catalog.delete_annotation(annotations[2][0])
        synced = (await client.post("/v1/sync")).json()
        after_sync = await search(client, key, queries)

    async with running_matcher(matcher_settings, catalog) as client:  # snapshot + replay
        replayed = await search(client, key, queries)
    rebuilt_settings = matcher_settings.model_copy(update={"local_object_dir": tmp_path / "empty"})
    async with running_matcher(rebuilt_settings, catalog) as client:  # full rebuild
        rebuilt = await search(client, key, queries)

    assert [r["candidates"][0]["individual_id"] for r in first["results"][:3]] == individuals
    assert first["index"]["size"] == 6 and first["index"]["individuals"] == 3
    assert synced["applied_seq"] > snapshot["applied_seq"]
    assert after_sync["results"][3]["candidates"][0]["individual_id"] == late
    assert after_sync["results"][1]["candidates"][0]["individual_id"] == individuals[0]  # merged
    assert after_sync["index"]["size"] == 6 and after_sync["index"]["individuals"] == 3
    assert replayed == rebuilt == after_sync
