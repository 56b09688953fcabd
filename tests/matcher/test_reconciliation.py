"""Reconciliation: the matcher compares its indexes with the catalogue's embeddings (ids, individuals and
count per (organisation, species group, model version)) at start, on a timer and on request, and repairs a
difference by rebuilding from the catalogue.

A difference is made the way one happens in practice: a write to the catalogue's database that bypassed
the change log (an operator's SQL fix, a partial restore), so replaying the log cannot bring it.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

import httpx
import numpy as np
from conftest import Catalogue, near, running_matcher, unit

from finprint.schemas.embeddings import membership_digest
from services.matcher.settings import MatcherSettings


def _catalog_db(catalog: Catalogue) -> Path:
    url = catalog.transport.app.state.catalog.settings.database_url  # type: ignore[attr-defined]
    return Path(url.removeprefix("sqlite:///"))


def _bypass_change_log(catalog: Catalogue, sql: str, *params: str) -> None:
    """A write straight into the catalogue's database: no change event, so no sync can see it."""
    with sqlite3.connect(_catalog_db(catalog)) as db:
        db.execute(sql, params)


async def _top(client: httpx.AsyncClient, key: dict[str, str], query: np.ndarray) -> str:
    response = await client.post("/v1/search", json={**key, "queries": [query.tolist()], "k": 3})
    assert response.status_code == 200, response.text
    return response.json()["results"][0]["candidates"][0]["individual_id"]


async def test_the_catalog_summarises_what_each_index_should_hold(
    catalog: Catalogue, key: dict[str, str], rng: np.random.Generator
) -> None:
    humpback, beluga = await catalog.individual("HW-1"), await catalog.individual("BE-1", "beluga")
    ids = [await catalog.add_photo(humpback, unit(rng.standard_normal(512))) for _ in range(3)]
    beluga_id = await catalog.add_photo(beluga, unit(rng.standard_normal(512)), "beluga")
    await catalog.add_photo(None, unit(rng.standard_normal(512)))  # unidentified: not indexed

    response = await catalog.client.get("/v1/internal/embeddings:summary")

    assert response.status_code == 200, response.text
    summary = response.json()
    assert summary["head_seq"] == await catalog.head_seq()
    by_group = {i["species_group"]: i for i in summary["indexes"]}
    assert set(by_group) == {"humpback_whale", "beluga"}
    assert (by_group["humpback_whale"]["count"], by_group["humpback_whale"]["digest"]) == membership_digest(
        (i, humpback) for i in ids
    )
    assert (by_group["beluga"]["count"], by_group["beluga"]["digest"]) == membership_digest([(beluga_id, beluga)])
    assert by_group["humpback_whale"]["model_version"] == key["model_version"]


async def test_start_reports_consistent_indexes(
    settings: MatcherSettings, catalog: Catalogue, key: dict[str, str], rng: np.random.Generator
) -> None:
    individual = await catalog.individual("HW-1")
    for _ in range(4):
        await catalog.add_photo(individual, unit(rng.standard_normal(512)))

    async with running_matcher(settings, catalog) as client:
        at_start = (await client.get("/v1/reconciliation")).json()
        on_request = await client.post("/v1/reconcile")

    assert at_start["status"] == "consistent" and at_start["trigger"] == "start"
    assert at_start["applied_seq"] == await catalog.head_seq()
    assert (at_start["indexes_compared"], at_start["embeddings"], at_start["differences"]) == (1, 4, [])
    assert on_request.status_code == 200
    assert on_request.json()["status"] == "consistent" and on_request.json()["trigger"] == "request"


async def test_a_snapshot_that_missed_a_change_is_repaired_at_start(
    settings: MatcherSettings, catalog: Catalogue, key: dict[str, str], rng: np.random.Generator
) -> None:
    centre = unit(rng.standard_normal(512))
    first, second = await catalog.individual("HW-1"), await catalog.individual("HW-2")
    photo = await catalog.add_photo(first, near(centre, 0.9, rng))
    await catalog.add_photo(second, unit(rng.standard_normal(512)))
    async with running_matcher(settings, catalog) as client:
        assert await _top(client, key, centre) == first
        assert (await client.post("/v1/snapshot")).status_code == 200

    # The photo was re-identified as HW-2 by a write that logged no change: replay after the snapshot
    # brings nothing, so only the comparison with the catalogue can see it.
    _bypass_change_log(catalog, "UPDATE annotations SET individual_id = ? WHERE id = ?", second, photo)

    async with running_matcher(settings, catalog) as client:
        report = (await client.get("/v1/reconciliation")).json()
        top = await _top(client, key, centre)
        indexes = (await client.get("/v1/indexes")).json()["indexes"]

    assert report["status"] == "repaired" and report["trigger"] == "start", report
    assert [(d["species_group"], d["matcher_count"], d["catalog_count"]) for d in report["differences"]] == [
        ("humpback_whale", 2, 2)  # same count, different individuals: the digest tells
    ]
    assert top == second
    assert [(i["size"], i["individuals"]) for i in indexes] == [(2, 1)]


async def test_a_running_matcher_repairs_on_request_and_then_agrees(
    settings: MatcherSettings, catalog: Catalogue, key: dict[str, str], rng: np.random.Generator
) -> None:
    individual = await catalog.individual("HW-1")
    photos = [await catalog.add_photo(individual, unit(rng.standard_normal(512))) for _ in range(3)]
    async with running_matcher(settings, catalog) as client:
        _bypass_change_log(catalog, "DELETE FROM annotations WHERE id = ?", photos[0])
        repaired = (await client.post("/v1/reconcile")).json()
        again = (await client.post("/v1/reconcile")).json()
        size = (await client.get("/v1/indexes")).json()["indexes"][0]["size"]

    assert repaired["status"] == "repaired", repaired
    assert [(d["matcher_count"], d["catalog_count"], d["faiss_count"]) for d in repaired["differences"]] == [
        (3, 2, 3)
    ]
    assert again["status"] == "consistent" and again["differences"] == []
    assert size == 2


async def test_an_unreachable_catalog_is_reported_not_fatal(
    settings: MatcherSettings, catalog: Catalogue, key: dict[str, str], rng: np.random.Generator
) -> None:
    await catalog.add_photo(await catalog.individual("HW-1"), unit(rng.standard_normal(512)))
    async with running_matcher(settings, catalog) as client:
        catalog.transport.app.state.catalog.engine.dispose()  # type: ignore[attr-defined]
        _catalog_db(catalog).rename(_catalog_db(catalog).with_suffix(".gone"))
        report = (await client.post("/v1/reconcile")).json()
        searched = await client.post("/v1/search", json={**key, "queries": [[1.0] + [0.0] * 511], "k": 1})
        _catalog_db(catalog).with_suffix(".gone").rename(_catalog_db(catalog))

    assert report["status"] == "failed" and "catalog" in report["reason"], report
    assert searched.status_code == 200 and searched.json()["index"]["size"] == 1
