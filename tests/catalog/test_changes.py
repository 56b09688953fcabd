"""The matcher's contract: embedding pages for a rebuild, and change events it replays in order.

A replay is checked the way the matcher uses it: apply every event after a snapshot's head_seq to
the snapshot, and the result must equal a fresh rebuild.
"""

from __future__ import annotations

import base64

import numpy as np
import pytest
from fastapi.testclient import TestClient

from finprint.schemas.embeddings import ChangePage, EmbeddingPage, decode_vector

from .helpers import Catalogue

pytestmark = pytest.mark.servers


def rebuild(client: TestClient, org_id: str, limit: int = 2) -> tuple[dict[str, dict], int]:
    """Page through /v1/internal/embeddings: {embedding_id: record} and the head_seq of the first page."""
    records: dict[str, dict] = {}
    cursor, heads = None, set()
    while True:
        params = {"org_id": org_id, "limit": limit, **({"cursor": cursor} if cursor else {})}
        page = EmbeddingPage.model_validate(client.get("/v1/internal/embeddings", params=params).json())
        heads.add(page.head_seq)
        for record in page.records:
            assert record.embedding_id not in records
            records[record.embedding_id] = record.model_dump()
        if page.next_cursor is None:
            break
        cursor = page.next_cursor
    assert len(heads) == 1, "every page of one rebuild reports the same head_seq"
    assert list(records) == sorted(records)
    return records, heads.pop()


def changes_after(client: TestClient, org_id: str, after_seq: int) -> ChangePage:
    return ChangePage.model_validate(
        client.get("/v1/internal/changes", params={"after_seq": after_seq, "org_id": org_id}).json()
    )


def replay(snapshot: dict[str, dict], page: ChangePage) -> dict[str, dict]:
    state = dict(snapshot)
    seqs = [c.seq for c in page.changes]
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)
    for change in page.changes:
        if change.op == "upsert":
            state[change.embedding_id] = change.record.model_dump()
        else:
            state.pop(change.embedding_id, None)
    return state


def comparable(records: dict[str, dict]) -> dict[str, tuple]:
    return {
        k: (r["individual_id"], r["species_group"], r["model_version"], r["vector"])
        for k, r in records.items()
    }


def test_records_carry_the_index_key_and_the_vector(client: TestClient, cat: Catalogue) -> None:
    whale = cat.individual("HW-1")
    enrolled = cat.sighting(whale["id"])
    records, head = rebuild(client, cat.org_id)
    [record] = records.values()
    assert record["embedding_id"] == enrolled["annotations"][0]["id"]
    assert (record["org_id"], record["species_group"], record["model_version"]) == (
        cat.org_id,
        "humpback_whale",
        "finprint_embedder:1",
    )
    assert record["individual_id"] == whale["id"]
    vector_values = decode_vector(record["vector"])
    assert vector_values.dtype == np.float32 and np.isclose(np.linalg.norm(vector_values), 1.0, atol=1e-5)
    assert 0 < record["seq"] <= head


def test_unidentified_and_embedding_less_annotations_are_not_indexed(
    client: TestClient, cat: Catalogue
) -> None:
    whale = cat.individual("HW-2")
    cat.sighting(None)
    cat.sighting(whale["id"], with_embedding=False)
    records, _head = rebuild(client, cat.org_id)
    assert records == {}


def test_every_kind_of_change_replays_to_the_same_state_as_a_rebuild(
    client: TestClient, cat: Catalogue
) -> None:
    a, b = cat.individual("HW-10"), cat.individual("HW-11")
    for _ in range(3):
        cat.sighting(a["id"])
    cat.sighting(b["id"])
    snapshot, head = rebuild(client, cat.org_id)
    assert len(snapshot) == 4

    # merge, split, reassignment, deletion, a new sighting, a species correction
    cat.post("/individuals:merge", {"target_id": a["id"], "source_ids": [b["id"]]}, expect=200)
    moved = sorted(snapshot)[:2]
    split = cat.post(
        f"/individuals/{a['id']}:split",
        {"annotation_ids": moved, "new_individual": {"catalogue_code": "HW-12", "species": "humpback_whale"}},
    )
    c = split["individual"]
    remaining = sorted(set(snapshot) - set(moved))
    assert (
        cat.client.patch(cat.url(f"/annotations/{remaining[0]}"), json={"clear_individual": True}).status_code
        == 200
    )
    assert cat.client.delete(cat.url(f"/annotations/{remaining[1]}")).status_code == 204
    new = cat.sighting(c["id"])["annotations"][0]["id"]
    assert (
        cat.client.patch(cat.url(f"/individuals/{c['id']}"), json={"species": "gray_whale"}).status_code
        == 200
    )

    page = changes_after(client, cat.org_id, head)
    assert all(change.seq > head for change in page.changes)
    replayed = replay(snapshot, page)
    fresh, _ = rebuild(client, cat.org_id)
    assert comparable(replayed) == comparable(fresh)
    assert set(fresh) == {*moved, new}
    assert {r["individual_id"] for r in fresh.values()} == {c["id"]}
    assert {r["species_group"] for r in fresh.values()} == {"gray_whale"}
    assert {c.op for c in page.changes} == {"upsert", "delete"}


def test_merge_emits_an_event_for_every_moved_embedding(client: TestClient, cat: Catalogue) -> None:
    a, b = cat.individual("M-1"), cat.individual("M-2")
    moved = {cat.sighting(b["id"])["annotations"][0]["id"] for _ in range(3)}
    _snapshot, head = rebuild(client, cat.org_id)
    cat.post("/individuals:merge", {"target_id": a["id"], "source_ids": [b["id"]]}, expect=200)
    page = changes_after(client, cat.org_id, head)
    assert {c.embedding_id for c in page.changes} == moved
    assert all(c.op == "upsert" and c.record.individual_id == a["id"] for c in page.changes)


def test_head_seq_grows_and_pages_are_bounded(client: TestClient, cat: Catalogue) -> None:
    whale = cat.individual("P-1")
    before = changes_after(client, cat.org_id, 0).head_seq
    for _ in range(3):
        cat.sighting(whale["id"])
    first = ChangePage.model_validate(
        client.get(
            "/v1/internal/changes", params={"after_seq": before, "org_id": cat.org_id, "limit": 2}
        ).json()
    )
    assert len(first.changes) == 2 and first.head_seq >= before + 3
    rest = changes_after(client, cat.org_id, first.changes[-1].seq)
    assert len(rest.changes) == 1


def test_a_bad_cursor_is_a_clear_422(client: TestClient) -> None:
    response = client.get("/v1/internal/embeddings", params={"cursor": "garbage"})
    assert response.status_code == 422
    assert response.json()["errors"][0]["field"] == "cursor"


def test_a_non_finite_or_malformed_vector_is_refused(cat: Catalogue) -> None:
    media = cat.upload()["media"]
    nan = base64.b64encode(np.array([np.nan, 1.0], dtype="<f4").tobytes()).decode()
    bad_vectors = ["not base64!!", base64.b64encode(bytes(5)).decode(), nan]  # not base64, 1.25 floats, NaN
    for bad in bad_vectors:
        response = cat.client.post(
            cat.url("/annotations"),
            json={
                "media_id": media["id"],
                "box": {"x": 0, "y": 0, "width": 5, "height": 5},
                "embedding": {"model_version": "finprint_embedder:1", "vector": bad},
            },
        )
        assert response.status_code == 422, (bad, response.text)
    assert cat.client.get(cat.url("/annotations"), params={"media_id": media["id"]}).json()["total"] == 0
