"""The catalogue is the truth: a restarted matcher answers exactly as before, from a rebuild or from
a snapshot plus the changes logged after it."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import httpx
import numpy as np
from conftest import Catalogue, Sighting, near, running_matcher, unit

from services.matcher.settings import MatcherSettings


@dataclass
class Filled:
    """What :func:`fill` put in the catalogue: per individual i, its centre, id and photos' ids."""

    centers: list[np.ndarray]
    individuals: list[str | None]
    photos: list[list[str]]
    unidentified: str


async def fill(
    catalog: Catalogue, rng: np.random.Generator, individuals: int = 30, images: int = 4
) -> Filled:
    """One enrolment: ``images`` crops of each new humpback, a beluga, and a crop nobody identified."""
    centers = [unit(rng.standard_normal(512)) for _ in range(individuals)]
    sightings = [
        Sighting(near(center, 0.75, rng), new_individual=f"HW-{i:03d}")
        for i, center in enumerate(centers)
        for _ in range(images)
    ]
    sightings += [Sighting(centers[0], new_individual="BL-001", species="beluga"), Sighting(centers[1])]
    *identified, unidentified = await catalog.enrol(sightings)
    per_individual = [identified[i * images : (i + 1) * images] for i in range(individuals)]
    return Filled(
        centers,
        individuals=[crops[0].individual_id for crops in per_individual],
        photos=[[crop.annotation_id for crop in crops] for crops in per_individual],
        unidentified=unidentified.annotation_id,
    )


async def evolve(catalog: Catalogue, filled: Filled, rng: np.random.Generator) -> None:
    """What a catalogue sees between two snapshots: new images, deletions, a merge, an identification."""
    for i in range(5):
        await catalog.add_photo(filled.individuals[i], near(filled.centers[i], 0.8, rng))
    await catalog.delete_annotation(filled.photos[3][0])
    await catalog.delete_annotation(filled.photos[4][1])
    # HW-006 turned out to be HW-005: the catalogue re-emits the images it moves.
    await catalog.merge(filled.individuals[5], filled.individuals[6])
    await catalog.identify(filled.unidentified, filled.individuals[10])  # identified at last
    late = await catalog.add_photo(await catalog.individual("HW-late"), unit(rng.standard_normal(512)))
    await catalog.delete_annotation(late)


async def answers(client: httpx.AsyncClient, key: dict[str, str], queries: list[np.ndarray]) -> dict:
    search = await client.post("/v1/search", json={**key, "queries": [q.tolist() for q in queries], "k": 5})
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
    settings: MatcherSettings,
    catalog: Catalogue,
    key: dict[str, str],
    rng: np.random.Generator,
    tmp_path: Path,
) -> None:
    filled = await fill(catalog, rng)
    queries = queries_for(filled.centers, rng)
    async with running_matcher(settings, catalog) as client:
        before = await answers(client, key, queries)
    # Another object-store folder: nothing to load, so the second start rebuilds from the catalogue.
    fresh_store = settings.model_copy(update={"local_object_dir": tmp_path / "other-objects"})
    async with running_matcher(fresh_store, catalog) as client:
        after = await answers(client, key, queries)

    assert after == before
    assert before["applied_seq"] == await catalog.head_seq()
    assert before["indexes"][1]["size"] == 120  # the unidentified crop is not indexed
    assert before["search"]["results"][3]["candidates"][0]["individual_id"] == filled.individuals[3]


async def test_snapshot_plus_replay_equals_a_full_rebuild(
    settings: MatcherSettings,
    catalog: Catalogue,
    key: dict[str, str],
    rng: np.random.Generator,
    tmp_path: Path,
) -> None:
    filled = await fill(catalog, rng)
    queries = queries_for(filled.centers, rng)
    async with running_matcher(settings, catalog) as client:
        snapshot = (await client.post("/v1/snapshot")).json()
    await evolve(catalog, filled, rng)

    async with running_matcher(settings, catalog) as client:  # loads the snapshot, replays the rest
        replayed = await answers(client, key, queries)
        metrics = (await client.get("/metrics")).text
    rebuild_settings = settings.model_copy(update={"local_object_dir": tmp_path / "empty-store"})
    async with running_matcher(rebuild_settings, catalog) as client:
        rebuilt = await answers(client, key, queries)

    head_seq = await catalog.head_seq()
    assert 'finprint_matcher_loads_total{source="snapshot"} 1.0' in metrics
    assert snapshot["applied_seq"] < head_seq
    assert replayed == rebuilt
    assert replayed["applied_seq"] == head_seq
    merged = [c["individual_id"] for c in replayed["search"]["results"][6]["candidates"]]
    assert filled.individuals[6] not in merged and merged[0] == filled.individuals[5]
    identified = replayed["search"]["results"][1]["candidates"][0]  # centre 1 is that crop's vector
    assert (identified["individual_id"], identified["best_embedding_id"]) == (
        filled.individuals[10],
        filled.unidentified,
    )
    assert replayed["indexes"][1]["size"] == 120 + 5 - 2 + 1


async def test_sync_applies_the_catalogues_changes(
    settings: MatcherSettings, catalog: Catalogue, key: dict[str, str], rng: np.random.Generator
) -> None:
    filled = await fill(catalog, rng, individuals=5)
    async with running_matcher(settings, catalog) as client:
        newcomer = await catalog.individual("HW-new")
        new_photo = await catalog.add_photo(newcomer, filled.centers[2])
        await catalog.delete_annotation(filled.photos[0][0])
        synced = (await client.post("/v1/sync")).json()
        again = (await client.post("/v1/sync")).json()
        found = await answers(client, key, [filled.centers[2]])

    head_seq = await catalog.head_seq()
    assert synced == {"applied_seq": head_seq, "changes_applied": 2}
    assert again == {"applied_seq": head_seq, "changes_applied": 0}
    assert found["search"]["results"][0]["candidates"][0] == {
        "individual_id": newcomer,
        "score": found["search"]["results"][0]["candidates"][0]["score"],
        "best_embedding_id": new_photo,
    }
    assert found["indexes"][1]["size"] == 20


async def test_a_clean_stop_snapshots_and_a_killed_matcher_loses_nothing(
    settings: MatcherSettings, catalog: Catalogue, key: dict[str, str], rng: np.random.Generator
) -> None:
    filled = await fill(catalog, rng, individuals=5)
    graceful = settings.model_copy(update={"snapshot_on_shutdown": True})
    async with running_matcher(graceful, catalog) as client:
        pass  # stops cleanly: writes a snapshot at the current seq
    seq_at_stop = await catalog.head_seq()
    after_stop = await catalog.individual("HW-after")
    await catalog.add_photo(after_stop, filled.centers[3])
    async with running_matcher(settings, catalog) as client:  # this one is "killed": no snapshot at exit
        while_down = await catalog.individual("HW-while-down")
        await catalog.add_photo(while_down, filled.centers[4])
    async with running_matcher(settings, catalog) as client:
        result = await answers(client, key, [filled.centers[3], filled.centers[4]])
        metrics = (await client.get("/metrics")).text

    assert 'finprint_matcher_loads_total{source="snapshot"} 1.0' in metrics
    assert result["applied_seq"] == await catalog.head_seq() > seq_at_stop
    assert result["search"]["results"][0]["candidates"][0]["individual_id"] == after_stop
    assert result["search"]["results"][1]["candidates"][0]["individual_id"] == while_down


async def test_an_unreadable_snapshot_falls_back_to_a_rebuild(
    settings: MatcherSettings, catalog: Catalogue, key: dict[str, str], rng: np.random.Generator
) -> None:
    filled = await fill(catalog, rng, individuals=5)
    async with running_matcher(settings, catalog) as client:
        await client.post("/v1/snapshot")
    snapshots = list((settings.local_object_dir / "matcher").rglob("*.npz"))
    for npz in snapshots:
        npz.write_bytes(b"not a snapshot")
    async with running_matcher(settings, catalog) as client:
        result = await answers(client, key, [filled.centers[2]])
        metrics = (await client.get("/metrics")).text

    assert snapshots  # there was a snapshot to spoil
    assert 'finprint_matcher_loads_total{source="catalog"} 1.0' in metrics
    assert result["applied_seq"] == await catalog.head_seq()
    assert result["search"]["results"][0]["candidates"][0]["individual_id"] == filled.individuals[2]
