"""Model versions in the catalog: two versions of an annotation's embedding side by side, the
re-embedding job's items, the swap when it drains, and the rollback (both databases)."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from finprint.schemas.embeddings import ChangePage

from .helpers import Catalogue, vector

pytestmark = pytest.mark.servers
A, B = "finprint_embedder:1", "finprint_embedder:2"


def _annotation_of(cat: Catalogue, sighting: dict) -> str:
    return sighting["annotations"][0]["id"]


def _reembed_all(client: TestClient, cat: Catalogue, job: dict) -> None:
    """What the gateway's workers do: lease each item, store its vector of the new version, complete it."""
    claimed = client.post("/v1/internal/ingest-items:claim",
                          json={"worker_id": "w", "limit": 100, "job_id": job["id"]}).json()["items"]
    for n, item in enumerate(claimed):
        stored = client.put(cat.url(f"/annotations/{item['payload']['annotation_id']}/embeddings"),
                            json={"model_version": B, "vector": vector(1000 + n)})
        assert stored.status_code == 200, stored.text
        done = client.post(f"/v1/internal/ingest-items/{item['id']}:complete",
                           json={"worker_id": "w", "status": "done"})
        assert done.status_code == 200, done.text


def _generations(client: TestClient, cat: Catalogue) -> dict:
    return client.get(cat.url("/model-generations")).json()


def test_a_reembedding_builds_beside_the_serving_version_swaps_and_rolls_back(client: TestClient,
                                                                               cat: Catalogue) -> None:
    whale = cat.individual("HW-1")
    annotations = [_annotation_of(cat, cat.sighting(whale["id"])) for _ in range(3)]
    assert _generations(client, cat) == {"humpback_whale": {"embeddings": {A: 3}, "generations": {}}}

    job = cat.post("/model-upgrades", {"model_version": B, "actor": "ops"})
    assert job["status"] == "running" and job["counts"] == {"pending": 3}
    again = client.post(cat.url("/model-upgrades"), json={"model_version": B})
    assert again.status_code == 200 and again.json()["id"] == job["id"]
    other = client.post(cat.url("/model-upgrades"), json={"model_version": "finprint_embedder:7"})
    assert other.status_code == 409, other.text
    assert _generations(client, cat)["humpback_whale"]["generations"] == {"serving": A, "building": B}

    _reembed_all(client, cat, job)
    finished = client.get(cat.url(f"/ingest-jobs/{job['id']}")).json()
    assert finished["status"] == "completed" and finished["options"]["swapped"] is True, finished
    shard = _generations(client, cat)["humpback_whale"]
    assert shard == {"embeddings": {A: 3, B: 3}, "generations": {"serving": B, "previous": A}}
    for annotation_id in annotations:
        stored = client.get(cat.url(f"/annotations/{annotation_id}")).json()
        assert sorted(stored["embedding_models"]) == [A, B]

    # The matcher reads the generations with the changes: both versions' records are indexed.
    page = ChangePage.model_validate(client.get("/v1/internal/changes", params={"org_id": cat.org_id}).json())
    assert {(g.model_version, g.state) for g in page.generations} == {(B, "serving"), (A, "previous")}
    upserted = {c.record.model_version for c in page.changes if c.op == "upsert"}
    assert upserted == {A, B}

    rolled = client.post(cat.url("/model-generations:rollback"), json={"actor": "ops"})
    assert rolled.status_code == 200 and rolled.json()["shards"] == [f"humpback_whale: {B} -> {A}"]
    assert _generations(client, cat)["humpback_whale"]["generations"] == {"serving": A, "previous": B}


def test_a_replayed_item_replaces_its_vector_instead_of_storing_a_second(client: TestClient, cat: Catalogue) -> None:
    annotation_id = _annotation_of(cat, cat.sighting(cat.individual("HW-2")["id"]))
    url = cat.url(f"/annotations/{annotation_id}/embeddings")
    first = client.put(url, json={"model_version": B, "vector": vector(1)}).json()
    second = client.put(url, json={"model_version": B, "vector": vector(2)}).json()
    assert first["embedding_id"] == second["embedding_id"] and second["change_seq"] > first["change_seq"]
    assert client.get(cat.url(f"/annotations/{annotation_id}")).json()["embedding_models"] == [A, B]


@pytest.mark.parametrize("body, field", [
    ({"model_version": B, "vector": "\u00f9o\u00bc\u00ab"}, "embedding.vector"),  # not ASCII (the fuzzer's find)
    ({"model_version": B, "vector": "AAAA"}, "embedding.vector"),  # 3 bytes: not float32s
    ({"model_version": "no-colon", "vector": "AACAPw=="}, "model_version"),
])
def test_a_bad_embedding_is_refused_naming_the_field(client: TestClient, cat: Catalogue, body: dict,
                                                     field: str) -> None:
    annotation_id = _annotation_of(cat, cat.sighting(cat.individual("HW-3")["id"]))
    refused = client.put(cat.url(f"/annotations/{annotation_id}/embeddings"), json=body)
    assert refused.status_code == 422, refused.text
    assert field in refused.text
    assert client.get(cat.url(f"/annotations/{annotation_id}")).json()["embedding_models"] == [A]


def test_a_rollback_without_a_previous_generation_is_a_conflict(client: TestClient, cat: Catalogue) -> None:
    cat.sighting(cat.individual("HW-4")["id"])
    refused = client.post(cat.url("/model-generations:rollback"), json={})
    assert refused.status_code == 409 and "previous" in refused.json()["detail"]


def test_an_annotation_enrolled_with_two_versions_keeps_both(client: TestClient, cat: Catalogue) -> None:
    whale = cat.individual("HW-5")
    media = cat.upload()["media"]
    annotation = {"box": {"x": 2, "y": 2, "width": 40, "height": 30}, "species": "humpback_whale",
                  "embedding": {"model_version": B, "vector": vector(7)},
                  "other_embeddings": [{"model_version": A, "vector": vector(8)}],
                  "decision": "confirmed", "individual_id": whale["id"], "decided_by": "ana"}
    enrolled = cat.post("/enrolments", {"encounter": {}, "photos": [{"media_id": media["id"],
                                                                        "annotations": [annotation]}]})
    stored = enrolled["annotations"][0]
    assert stored["embedding_model"] == B and sorted(stored["embedding_models"]) == [A, B]
    twice = {**annotation, "other_embeddings": [{"model_version": B, "vector": vector(9)}]}
    refused = client.post(cat.url("/enrolments"), json={"encounter": {}, "photos": [
        {"media_id": cat.upload()["media"]["id"], "annotations": [twice]}]})
    assert refused.status_code == 422 and "one embedding per model version" in refused.text
