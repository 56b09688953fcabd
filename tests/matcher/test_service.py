"""The matcher over HTTP: idempotent writes, deletes, thresholds, validation, shards."""

from __future__ import annotations

import httpx
import numpy as np
from conftest import (
    HUMPBACK_THRESHOLD,
    MODEL_THRESHOLD,
    Catalogue,
    closed_port,
    near,
    running_matcher,
    unit,
)

from finprint.schemas.embeddings import encode_vector
from finprint.schemas.matcher import NEW_INDIVIDUAL, shard_for
from services.matcher.app import create_app
from services.matcher.settings import MatcherSettings


def body(
    key: dict[str, str],
    embedding_id: str,
    individual_id: str | None,
    vector: np.ndarray,
    seq: int,
    **other: str,
) -> dict:
    return {
        **key,
        **other,
        "embedding_id": embedding_id,
        "individual_id": individual_id,
        "vector": encode_vector(vector),
        "seq": seq,
    }


async def search(
    client: httpx.AsyncClient, key: dict[str, str], *queries: np.ndarray, k: int = 5, **other: str
) -> dict:
    response = await client.post(
        "/v1/search", json={**key, **other, "queries": [q.tolist() for q in queries], "k": k}
    )
    assert response.status_code == 200, response.text
    return response.json()


async def test_upsert_is_idempotent(
    settings: MatcherSettings, catalog: Catalogue, key: dict[str, str], rng: np.random.Generator
) -> None:
    query = unit(rng.standard_normal(512))
    record = body(key, "e-1", "ind-a", near(query, 0.9, rng), seq=1)
    async with running_matcher(settings, catalog) as client:
        first = await client.put("/v1/embeddings/e-1", json=record)
        before = await search(client, key, query)
        second = await client.put("/v1/embeddings/e-1", json=record)
        after = await search(client, key, query)

    assert (first.json()["outcome"], second.json()["outcome"]) == ("inserted", "unchanged")
    assert before == after
    assert after["index"]["size"] == 1


async def test_upsert_with_another_individual_replaces_the_image(
    settings: MatcherSettings, catalog: Catalogue, key: dict[str, str], rng: np.random.Generator
) -> None:
    query = unit(rng.standard_normal(512))
    vector = near(query, 0.9, rng)
    async with running_matcher(settings, catalog) as client:
        await client.put("/v1/embeddings/e-1", json=body(key, "e-1", "ind-a", vector, seq=1))
        renamed = await client.put("/v1/embeddings/e-1", json=body(key, "e-1", "ind-b", vector, seq=2))
        stale = await client.put("/v1/embeddings/e-1", json=body(key, "e-1", "ind-a", vector, seq=1))
        result = await search(client, key, query)

    assert (renamed.json()["outcome"], stale.json()["outcome"]) == ("updated", "stale")
    assert [c["individual_id"] for c in result["results"][0]["candidates"]] == ["ind-b"]
    assert result["index"] == {**key, "size": 1, "individuals": 1, "kind": "flat", "device": "cpu"}


async def test_batch_upsert_reports_each_record(
    settings: MatcherSettings, catalog: Catalogue, key: dict[str, str], rng: np.random.Generator
) -> None:
    records = [
        body(key, f"e-{i}", f"ind-{i % 2}", unit(rng.standard_normal(512)), seq=i) for i in range(1, 5)
    ]
    async with running_matcher(settings, catalog) as client:
        await client.put("/v1/embeddings/e-1", json=records[0])
        response = await client.post("/v1/embeddings:batch", json={"records": records})
        indexes = (await client.get("/v1/indexes")).json()

    assert [r["outcome"] for r in response.json()["results"]] == [
        "unchanged",
        "inserted",
        "inserted",
        "inserted",
    ]
    assert indexes["indexes"][0]["size"] == 4 and indexes["indexes"][0]["individuals"] == 2


async def test_delete_removes_the_image_and_is_idempotent(
    settings: MatcherSettings, catalog: Catalogue, key: dict[str, str], rng: np.random.Generator
) -> None:
    query = unit(rng.standard_normal(512))
    async with running_matcher(settings, catalog) as client:
        await client.put("/v1/embeddings/e-1", json=body(key, "e-1", "ind-a", near(query, 0.9, rng), seq=1))
        await client.put("/v1/embeddings/e-2", json=body(key, "e-2", "ind-b", near(query, 0.5, rng), seq=2))
        first = await client.delete("/v1/embeddings/e-1", params={"seq": 3})
        second = await client.delete("/v1/embeddings/e-1", params={"seq": 3})
        # A push older than the deletion must not bring the image back.
        resurrect = await client.put(
            "/v1/embeddings/e-1", json=body(key, "e-1", "ind-a", near(query, 0.9, rng), seq=2)
        )
        result = await search(client, key, query)

    assert (first.json()["outcome"], second.json()["outcome"], resurrect.json()["outcome"]) == (
        "deleted",
        "absent",
        "stale",
    )
    assert [c["individual_id"] for c in result["results"][0]["candidates"]] == ["ind-b"]


async def test_an_unidentified_crop_leaves_the_index(
    settings: MatcherSettings, catalog: Catalogue, key: dict[str, str], rng: np.random.Generator
) -> None:
    vector = unit(rng.standard_normal(512))
    async with running_matcher(settings, catalog) as client:
        await client.put("/v1/embeddings/e-1", json=body(key, "e-1", "ind-a", vector, seq=1))
        response = await client.put("/v1/embeddings/e-1", json=body(key, "e-1", None, vector, seq=2))
        result = await search(client, key, vector)

    assert response.json()["outcome"] == "removed"
    assert result["results"][0] == {
        "candidates": [],
        "new_individual": 1.0,
        "ranking": [NEW_INDIVIDUAL],
        "threshold": HUMPBACK_THRESHOLD,
        "top_candidate_probability": None,
        "auto_accept": None,
    }


async def test_threshold_comes_from_the_model_per_species(
    settings: MatcherSettings, catalog: Catalogue, key: dict[str, str], rng: np.random.Generator
) -> None:
    query = unit(rng.standard_normal(512))
    humpback = await catalog.individual("HW-1")
    beluga = await catalog.individual("BL-1", "beluga")
    await catalog.add_photo(humpback, near(query, 0.55, rng))
    await catalog.add_photo(beluga, near(query, 0.55, rng), "beluga")
    async with running_matcher(settings, catalog) as client:
        for_humpback = (await search(client, key, query))["results"][0]
        for_beluga = (await search(client, key, query, species_group="beluga"))["results"][0]

    # 0.55 is below the humpback threshold (0.6) but above the model's default (0.5).
    assert (for_humpback["threshold"], for_humpback["ranking"]) == (
        HUMPBACK_THRESHOLD,
        [NEW_INDIVIDUAL, humpback],
    )
    assert (for_beluga["threshold"], for_beluga["ranking"]) == (MODEL_THRESHOLD, [beluga, NEW_INDIVIDUAL])
    assert for_humpback["new_individual"] > 0.5 > for_beluga["new_individual"]


async def test_organisation_threshold_override_applies_and_persists(
    settings: MatcherSettings, catalog: Catalogue, key: dict[str, str], rng: np.random.Generator
) -> None:
    query = unit(rng.standard_normal(512))
    whale = await catalog.individual("HW-1")
    await catalog.add_photo(whale, near(query, 0.7, rng))
    other_org = await catalog.organisation("other-lab")
    threshold_url = f"/v1/orgs/{catalog.org_id}/threshold"
    async with running_matcher(settings, catalog) as client:
        assert (await search(client, key, query))["results"][0]["ranking"][0] == whale
        put = await client.put(threshold_url, json={"threshold": 0.8})
        overridden = (await search(client, key, query))["results"][0]
        other_org_threshold = await client.get(f"/v1/orgs/{other_org}/threshold")

    assert put.json() == {"org_id": catalog.org_id, "default": 0.8, "by_species_group": {}}
    assert (overridden["threshold"], overridden["ranking"][0]) == (0.8, NEW_INDIVIDUAL)
    assert other_org_threshold.json()["default"] is None

    async with running_matcher(settings, catalog) as client:  # a restart reads it from the object store
        assert (await search(client, key, query))["results"][0]["threshold"] == 0.8
        await client.put(threshold_url, json={"threshold": 0.65, "species_group": "humpback_whale"})
        assert (await search(client, key, query))["results"][0]["threshold"] == 0.65
        await client.delete(threshold_url, params={"species_group": "humpback_whale"})
        await client.delete(threshold_url)
        assert (await search(client, key, query))["results"][0]["threshold"] == HUMPBACK_THRESHOLD


async def test_bad_input_is_refused_and_changes_nothing(
    settings: MatcherSettings, catalog: Catalogue, key: dict[str, str], rng: np.random.Generator
) -> None:
    good = body(key, "e-1", "ind-a", unit(rng.standard_normal(512)), seq=1)
    short = body(key, "e-2", "ind-b", unit(rng.standard_normal(256)), seq=2)
    zero = body(key, "e-3", "ind-c", np.zeros(512, dtype=np.float32), seq=3)
    async with running_matcher(settings, catalog) as client:
        batch = await client.post("/v1/embeddings:batch", json={"records": [good, short]})
        zero_put = await client.put("/v1/embeddings/e-3", json=zero)
        mismatch = await client.put("/v1/embeddings/e-9", json=good)
        wrong_dim = await client.post("/v1/search", json={**key, "queries": [[0.1] * 100]})
        too_many = await client.post("/v1/search", json={**key, "queries": [[0.1] * 512], "k": 1000})
        indexes = (await client.get("/v1/indexes")).json()

    assert batch.status_code == 422 and "e-2" in batch.json()["detail"]
    assert zero_put.status_code == 422 and "zeros" in zero_put.json()["detail"]
    assert mismatch.status_code == 422
    assert wrong_dim.status_code == 422 and wrong_dim.json()["errors"][0]["field"] == "queries"
    assert too_many.status_code == 422 and too_many.json()["errors"][0]["field"] == "k"
    assert all(
        r.headers["content-type"] == "application/problem+json"
        for r in (batch, zero_put, mismatch, wrong_dim, too_many)
    )
    assert indexes["indexes"] == []


async def test_a_shard_serves_only_its_keys(
    settings: MatcherSettings, catalog: Catalogue, key: dict[str, str], rng: np.random.Generator
) -> None:
    # Organisation ids are the catalog's (random): add organisations until each shard owns one.
    owners: dict[int, str] = {}
    for n in range(64):
        org_id = await catalog.organisation(f"lab-{n}")
        owners.setdefault(shard_for(org_id, "humpback_whale", 2), org_id)
        if len(owners) == 2:
            break
    mine, theirs = owners[1], owners[0]
    vector = unit(rng.standard_normal(512))
    whales = {}
    for org_id in (mine, theirs):
        whales[org_id] = await catalog.individual("HW-1", org_id=org_id)
        await catalog.add_photo(whales[org_id], vector, org_id=org_id)
    shard = settings.model_copy(update={"shard_index": 1, "shard_count": 2})
    async with running_matcher(shard, catalog) as client:
        indexes = (await client.get("/v1/indexes")).json()
        misrouted = await client.post(
            "/v1/search", json={**key, "org_id": theirs, "queries": [vector.tolist()]}
        )
        routed = await search(client, key, vector, org_id=mine)

    assert [i["org_id"] for i in indexes["indexes"]] == [mine]
    assert misrouted.status_code == 421 and misrouted.json()["owner_shard"] == 0
    assert routed["results"][0]["candidates"][0]["individual_id"] == whales[mine]


def test_shard_for_is_stable_and_spreads_keys() -> None:
    assert shard_for("org-a", "humpback_whale", 8) == shard_for("org-a", "humpback_whale", 8)
    counts = np.bincount([shard_for(f"org-{i}", "humpback_whale", 4) for i in range(4000)], minlength=4)
    assert counts.min() > 900  # about 1000 each


async def test_metrics_show_index_sizes_and_searches(
    settings: MatcherSettings, catalog: Catalogue, key: dict[str, str], rng: np.random.Generator
) -> None:
    vector = unit(rng.standard_normal(512))
    await catalog.add_photo(await catalog.individual("HW-1"), vector)
    head_seq = await catalog.head_seq()
    async with running_matcher(settings, catalog) as client:
        await search(client, key, vector)
        text = (await client.get("/metrics")).text

    index_labels = f'kind="flat",model_version="{key["model_version"]}",org_id="{catalog.org_id}"'
    assert f"finprint_matcher_index_size{{{index_labels}" in text
    assert "finprint_matcher_queries_total 1.0" in text
    assert 'finprint_matcher_loads_total{source="catalog"} 1.0' in text
    assert f"finprint_matcher_applied_seq {float(head_seq)}" in text


async def test_not_ready_while_the_catalog_is_unreachable(settings: MatcherSettings) -> None:
    unreachable = settings.model_copy(
        update={"catalog_url": f"http://127.0.0.1:{closed_port()}", "sync_interval_s": 0.05}
    )
    key = {"org_id": "any-org", "species_group": "humpback_whale", "model_version": "finprint_embedder:1"}
    app = create_app(unreachable)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://matcher") as client:
            ready = await client.get("/readyz")
            searched = await client.post("/v1/search", json={**key, "queries": [[0.1] * 512]})

    assert ready.status_code == 503 and ready.headers["Retry-After"]
    assert ready.json()["checks"]["catalog"]["ready"] is False
    assert ready.json()["checks"]["indexes"]["ready"] is False
    assert searched.status_code == 503 and searched.headers["Retry-After"]


async def test_queries_as_base64_answer_like_queries_as_numbers(
    settings: MatcherSettings, catalog: Catalogue, key: dict[str, str], rng: np.random.Generator
) -> None:
    queries = [unit(rng.standard_normal(512)) for _ in range(3)]
    for i, query in enumerate(queries):
        await catalog.add_photo(await catalog.individual(f"HW-{i}"), near(query, 0.8, rng))
    async with running_matcher(settings, catalog) as client:
        as_numbers = await search(client, key, *queries)
        as_base64 = await client.post(
            "/v1/search", json={**key, "queries_b64": [encode_vector(q) for q in queries]}
        )
        both = await client.post(
            "/v1/search",
            json={**key, "queries": [queries[0].tolist()], "queries_b64": [encode_vector(queries[0])]},
        )
        short = await client.post(
            "/v1/search", json={**key, "queries_b64": [encode_vector(queries[0][:100])]}
        )

    assert as_numbers["index"]["size"] == 3
    assert as_base64.json() == as_numbers
    assert both.status_code == 422 and "exactly one" in both.text
    assert short.status_code == 422 and short.json()["errors"][0]["field"] == "queries_b64"
