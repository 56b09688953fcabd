"""The catalogue is the truth: a restarted matcher answers exactly as before, from a rebuild or from
a snapshot plus the changes logged after it."""

from __future__ import annotations

from pathlib import Path

import httpx
import numpy as np
from catalog_double import CatalogDouble
from conftest import near, running_matcher, unit

from finprint.schemas.embeddings import decode_vector
from services.matcher.settings import MatcherSettings

KEY = {"org_id": "org-a", "species_group": "humpback_whale", "model_version": "finprint_embedder:1"}


def fill(
    catalog: CatalogDouble, rng: np.random.Generator, individuals: int = 30, images: int = 4
) -> list[np.ndarray]:
    centers = [unit(rng.standard_normal(512)) for _ in range(individuals)]
    for i, center in enumerate(centers):
        for j in range(images):
            catalog.upsert(f"e-{i:03d}-{j}", f"ind-{i:03d}", near(center, 0.75, rng))
    catalog.upsert("e-beluga", "ind-beluga", centers[0], species_group="beluga")
    catalog.upsert("e-unidentified", None, centers[1])
    return centers


def evolve(catalog: CatalogDouble, centers: list[np.ndarray], rng: np.random.Generator) -> None:
    """What a catalogue sees between two snapshots: new images, deletions, a merge, re-identifications."""
    for i in range(5):
        catalog.upsert(f"e-new-{i}", f"ind-{i:03d}", near(centers[i], 0.8, rng))
    catalog.delete("e-003-0")
    catalog.delete("e-004-1")
    for j in range(4):  # ind-006 turned out to be ind-005: the catalogue re-emits its images
        record = catalog.records[f"e-006-{j}"]
        catalog.upsert(record.embedding_id, "ind-005", decode_vector(record.vector))
    catalog.upsert("e-unidentified", "ind-010", centers[1])  # identified at last
    catalog.upsert("e-late", "ind-new", unit(rng.standard_normal(512)))
    catalog.delete("e-late")


async def answers(client: httpx.AsyncClient, queries: list[np.ndarray]) -> dict:
    search = await client.post("/v1/search", json={**KEY, "queries": [q.tolist() for q in queries], "k": 5})
    assert search.status_code == 200, search.text
    indexes = (await client.get("/v1/indexes")).json()
    return {
        "search": search.json(),
        "indexes": sorted(indexes["indexes"], key=lambda i: i["species_group"]),
        "applied_seq": indexes["applied_seq"],
    }


def queries_for(centers: list[np.ndarray], rng: np.random.Generator) -> list[np.ndarray]:
    return [near(c, 0.7, rng) for c in centers[:12]] + [unit(rng.standard_normal(512)) for _ in range(3)]


async def test_rebuild_from_the_catalogue_after_a_restart_gives_identical_results(
    settings: MatcherSettings, catalog: CatalogDouble, rng: np.random.Generator, tmp_path: Path
) -> None:
    centers = fill(catalog, rng)
    queries = queries_for(centers, rng)
    async with running_matcher(settings, catalog) as client:
        before = await answers(client, queries)
    # Another object-store folder: nothing to load, so the second start rebuilds from the catalogue.
    fresh_store = settings.model_copy(update={"local_object_dir": tmp_path / "other-objects"})
    async with running_matcher(fresh_store, catalog) as client:
        after = await answers(client, queries)

    assert after == before
    assert before["applied_seq"] == catalog.seq
    assert before["indexes"][1]["size"] == 120  # the unidentified crop is not indexed
    assert before["search"]["results"][3]["candidates"][0]["individual_id"] == "ind-003"


async def test_snapshot_plus_replay_equals_a_full_rebuild(
    settings: MatcherSettings, catalog: CatalogDouble, rng: np.random.Generator, tmp_path: Path
) -> None:
    centers = fill(catalog, rng)
    queries = queries_for(centers, rng)
    async with running_matcher(settings, catalog) as client:
        snapshot = (await client.post("/v1/snapshot")).json()
    evolve(catalog, centers, rng)

    async with running_matcher(settings, catalog) as client:  # loads the snapshot, replays the rest
        replayed = await answers(client, queries)
        metrics = (await client.get("/metrics")).text
    rebuild_settings = settings.model_copy(update={"local_object_dir": tmp_path / "empty-store"})
    async with running_matcher(rebuild_settings, catalog) as client:
        rebuilt = await answers(client, queries)

    assert 'finprint_matcher_loads_total{source="snapshot"} 1.0' in metrics
    assert snapshot["applied_seq"] < catalog.seq
    assert replayed == rebuilt
    assert replayed["applied_seq"] == catalog.seq
    merged = [c["individual_id"] for c in replayed["search"]["results"][6]["candidates"]]
    assert "ind-006" not in merged and merged[0] == "ind-005"


async def test_sync_applies_the_catalogues_changes(
    settings: MatcherSettings, catalog: CatalogDouble, rng: np.random.Generator
) -> None:
    centers = fill(catalog, rng, individuals=5)
    async with running_matcher(settings, catalog) as client:
        catalog.upsert("e-new", "ind-new", centers[2])
        catalog.delete("e-000-0")
        synced = (await client.post("/v1/sync")).json()
        again = (await client.post("/v1/sync")).json()
        found = await answers(client, [centers[2]])

    assert synced == {"applied_seq": catalog.seq, "changes_applied": 2}
    assert again == {"applied_seq": catalog.seq, "changes_applied": 0}
    assert found["search"]["results"][0]["candidates"][0] == {
        "individual_id": "ind-new",
        "score": found["search"]["results"][0]["candidates"][0]["score"],
        "best_embedding_id": "e-new",
    }
    assert found["indexes"][1]["size"] == 20


async def test_a_clean_stop_snapshots_and_a_killed_matcher_loses_nothing(
    settings: MatcherSettings, catalog: CatalogDouble, rng: np.random.Generator
) -> None:
    centers = fill(catalog, rng, individuals=5)
    graceful = settings.model_copy(update={"snapshot_on_shutdown": True})
    async with running_matcher(graceful, catalog) as client:
        pass  # stops cleanly: writes a snapshot at the current seq
    seq_at_stop = catalog.seq
    catalog.upsert("e-after", "ind-after", centers[3])
    async with running_matcher(settings, catalog) as client:  # this one is "killed": no snapshot at exit
        catalog.upsert("e-while-down", "ind-x", centers[4])
    async with running_matcher(settings, catalog) as client:
        result = await answers(client, [centers[3], centers[4]])
        metrics = (await client.get("/metrics")).text

    assert 'finprint_matcher_loads_total{source="snapshot"} 1.0' in metrics
    assert result["applied_seq"] == catalog.seq > seq_at_stop
    assert result["search"]["results"][0]["candidates"][0]["individual_id"] == "ind-after"
    assert result["search"]["results"][1]["candidates"][0]["individual_id"] == "ind-x"


async def test_an_unreadable_snapshot_falls_back_to_a_rebuild(
    settings: MatcherSettings, catalog: CatalogDouble, rng: np.random.Generator
) -> None:
    centers = fill(catalog, rng, individuals=5)
    async with running_matcher(settings, catalog) as client:
        await client.post("/v1/snapshot")
    for npz in (settings.local_object_dir / "matcher").rglob("*.npz"):
        npz.write_bytes(b"not a snapshot")
    async with running_matcher(settings, catalog) as client:
        result = await answers(client, [centers[2]])
        metrics = (await client.get("/metrics")).text

    assert 'finprint_matcher_loads_total{source="catalog"} 1.0' in metrics
    assert result["applied_seq"] == catalog.seq
    assert result["search"]["results"][0]["candidates"][0]["individual_id"] == "ind-002"
