"""Enrolment is all or nothing, and a retried request (Idempotency-Key) creates nothing twice."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from finprint.schemas.catalog import EnrolResult
from finprint_testing.processes import free_port
from services.catalog.app import create_app
from services.catalog.settings import CatalogSettings

from .helpers import Catalogue, MakeCatalogue, jpeg, vector

pytestmark = pytest.mark.servers

BOX = {"x": 4, "y": 4, "width": 40, "height": 30}


def counts(cat: Catalogue) -> dict[str, int]:
    totals = {
        path: cat.client.get(cat.url(path)).json()["total"]
        for path in ("/encounters", "/annotations", "/identifications", "/individuals", "/audit")
    }
    totals["changes"] = len(
        cat.client.get("/v1/internal/changes", params={"org_id": cat.org_id}).json()["changes"]
    )
    return totals


def test_enrol_with_an_inline_image_and_a_new_individual(cat: Catalogue) -> None:
    image = base64.b64encode(jpeg(11)).decode()
    result = cat.post(
        "/enrolments",
        {
            "encounter": {"occurred_at": "2024-05-05T05:05:05+02:00", "latitude": 43.0, "longitude": 7.5},
            "uploaded_by": "ana",
            "photos": [{
                "image": {"content_base64": image, "filename": "IMG_1.jpg"},
                "annotations": [
                    {
                        "box": BOX,
                        "view": "dorsal_fin",
                        "species": "bottlenose_dolphin",
                        "embedding": {"model_version": "finprint_embedder:1", "vector": vector(1)},
                        "candidates": [],
                        "new_individual_probability": 0.93,
                        "decision": "new_individual",
                        "new_individual": {"catalogue_code": "TT-7", "species": "bottlenose_dolphin"},
                    }
                ],
            }],
        },
    )
    assert (
        EnrolResult.model_validate(result).new_individuals[0].species == "bottlenose_dolphin"
    )  # the wire schema
    assert result["duplicate_media_ids"] == [] and result["media"][0]["original_filename"] == "IMG_1.jpg"
    [individual] = result["new_individuals"]
    assert individual["catalogue_code"] == "TT-7"
    assert result["annotations"][0]["individual_id"] == individual["id"]
    assert result["identifications"][0]["decision"] == "new_individual"
    assert result["identifications"][0]["decided_by"] == "ana"
    assert result["encounter"]["individual_ids"] == [individual["id"]]
    assert result["media"][0]["encounter_id"] == result["encounter"]["id"]


def test_a_failing_enrolment_leaves_nothing_behind(cat: Catalogue) -> None:
    cat.individual("TAKEN")
    media = cat.upload()["media"]
    before = counts(cat)
    response = cat.client.post(
        cat.url("/enrolments"),
        json={
            "encounter": {"occurred_at": "2024-05-05T05:05:05Z"},
            "photos": [{
                "media_id": media["id"],
                "annotations": [
                    {
                        "box": BOX,
                        "embedding": {"model_version": "finprint_embedder:1", "vector": vector(2)},
                        "decision": "new_individual",
                        "new_individual": {"catalogue_code": "FRESH", "species": "humpback_whale"},
                    },
                    {
                        "box": BOX,
                        "decision": "new_individual",
                        "new_individual": {"catalogue_code": "TAKEN", "species": "humpback_whale"},
                    },
                ],
            }],
        },
    )
    assert response.status_code == 409, response.text
    assert "TAKEN" in response.json()["detail"]
    assert counts(cat) == before
    assert cat.client.get(cat.url(f"/media/{media['id']}")).json()["encounter_id"] is None
    assert cat.client.get(cat.url("/individuals"), params={"q": "FRESH"}).json()["total"] == 0


def test_several_photos_of_one_new_animal_create_it_once(cat: Catalogue) -> None:
    def photo(seed: int) -> dict:
        return {
            "image": {"content_base64": base64.b64encode(jpeg(20 + seed)).decode(), "filename": f"P{seed}.jpg"},
            "annotations": [{
                "box": BOX,
                "species": "humpback_whale",
                "embedding": {"model_version": "finprint_embedder:1", "vector": vector(20 + seed)},
                "decision": "new_individual",
                "new_individual": {"catalogue_code": "HW-NEW", "species": "humpback_whale"},
            }],
        }

    result = cat.post("/enrolments", {"encounter": {}, "photos": [photo(1), photo(2), photo(3)]})
    assert [i["catalogue_code"] for i in result["new_individuals"]] == ["HW-NEW"]
    assert {a["individual_id"] for a in result["annotations"]} == {result["new_individuals"][0]["id"]}
    assert len(result["media"]) == 3
    assert {m["encounter_id"] for m in result["media"]} == {result["encounter"]["id"]}


def test_a_bad_later_photo_leaves_none_of_the_enrolment_behind(cat: Catalogue) -> None:
    before = counts(cat)
    good = {"image": {"content_base64": base64.b64encode(jpeg(31)).decode()}, "annotations": [{"box": BOX}]}
    bad = {"image": {"content_base64": base64.b64encode(b"not an image at all").decode()},
           "annotations": [{"box": BOX}]}
    response = cat.client.post(cat.url("/enrolments"), json={"encounter": {}, "photos": [good, bad]})
    assert 400 <= response.status_code < 500, response.text
    assert counts(cat) == before


def test_a_box_outside_the_image_is_refused(cat: Catalogue) -> None:
    media = cat.upload()["media"]
    response = cat.client.post(
        cat.url("/enrolments"),
        json={"photos": [{"media_id": media["id"],
                          "annotations": [{"box": {"x": 90, "y": 0, "width": 50, "height": 10}}]}]},
    )
    assert response.status_code == 422
    assert response.json()["errors"][0]["field"] == "box"


def test_enrolling_the_same_photo_twice_is_a_conflict(cat: Catalogue) -> None:
    media = cat.upload()["media"]
    photo = {"media_id": media["id"], "annotations": [{"box": BOX}]}
    cat.post("/enrolments", {"photos": [photo]})
    again = cat.client.post(cat.url("/enrolments"), json={"photos": [photo]})
    assert again.status_code == 409
    assert again.json()["media_id"] == media["id"]


def test_a_retried_enrolment_with_the_same_key_creates_nothing_twice(cat: Catalogue) -> None:
    whale = cat.individual("HW-IDEM")
    media = cat.upload()["media"]
    request = {
        "encounter": {"occurred_at": "2024-02-02T02:02:02Z"},
        "photos": [{
            "media_id": media["id"],
            "annotations": [
                {
                    "box": BOX,
                    "decision": "confirmed",
                    "individual_id": whale["id"],
                    "embedding": {"model_version": "finprint_embedder:1", "vector": vector(3)},
                }
            ],
        }],
    }
    headers = {"Idempotency-Key": "enrol-7f3a"}
    first = cat.client.post(cat.url("/enrolments"), json=request, headers=headers)
    before_retry = counts(cat)
    second = cat.client.post(cat.url("/enrolments"), json=request, headers=headers)
    assert (first.status_code, second.status_code) == (201, 201)
    assert second.json() == first.json()
    assert second.headers["Idempotent-Replayed"] == "true"
    assert counts(cat) == before_retry

    changed = {**request, "encounter": {"occurred_at": "2025-01-01T00:00:00Z"}}
    reused = cat.client.post(cat.url("/enrolments"), json=changed, headers=headers)
    assert reused.status_code == 422
    assert reused.json()["type"].endswith("idempotency-key-reused")
    assert counts(cat) == before_retry


def test_idempotency_keys_belong_to_one_organisation(
    cat: Catalogue, make_catalogue: MakeCatalogue, other_org: str
) -> None:
    headers = {"Idempotency-Key": "shared-key"}
    body = {"catalogue_code": "SAME", "species": "humpback_whale"}
    mine = cat.client.post(cat.url("/individuals"), json=body, headers=headers)
    other = make_catalogue(other_org)
    theirs = other.client.post(other.url("/individuals"), json=body, headers=headers)
    assert mine.status_code == theirs.status_code == 201
    assert mine.json()["id"] != theirs.json()["id"] and theirs.json()["org_id"] == other_org


def test_an_unavailable_database_is_a_503_with_retry_after(tmp_path: Path) -> None:
    settings = CatalogSettings(
        database_url=f"postgresql+psycopg://postgres@127.0.0.1:{free_port()}/none", local_object_dir=tmp_path
    )
    with TestClient(create_app(settings)) as client:
        response = client.get("/v1/orgs/x/individuals")
        assert response.status_code == 503
        assert response.headers["Retry-After"]
        assert response.json()["dependency"] == "database"
        assert client.get("/readyz").status_code == 503


def test_a_candidates_photo_is_named_by_its_annotation_whatever_embedding_the_matcher_saw(cat: Catalogue) -> None:
    """The matcher names the embedding that gave a candidate's score; after a model upgrade that is not the
    annotation's id, and an explanation needs the photo: the identification keeps the annotation."""
    def photo(seed: int, **annotation: object) -> dict:
        return {"image": {"content_base64": base64.b64encode(jpeg(40 + seed)).decode(), "filename": f"C{seed}.jpg"},
                "annotations": [{"box": BOX, "species": "humpback_whale",
                                 "embedding": {"model_version": "finprint_embedder:1", "vector": vector(40 + seed)},
                                 **annotation}]}

    known = cat.post("/enrolments", {"encounter": {}, "photos": [photo(1, decision="new_individual", new_individual={
        "catalogue_code": "HW-SEEN", "species": "humpback_whale"})]})
    annotation_id, individual_id = known["annotations"][0]["id"], known["new_individuals"][0]["id"]
    upgraded = cat.client.put(cat.url(f"/annotations/{annotation_id}/embeddings"),
                              json={"model_version": "finprint_embedder:9", "vector": vector(49)})
    assert upgraded.status_code == 200, upgraded.text
    embedding_id = upgraded.json()["embedding_id"]
    assert embedding_id != annotation_id
    candidates = [{"individual_id": individual_id, "score": 0.8, "best_annotation_id": embedding_id},
                  {"individual_id": individual_id, "score": 0.7, "best_annotation_id": annotation_id},
                  {"individual_id": individual_id, "score": 0.6, "best_annotation_id": "no-such-photo"}]
    queried = cat.post("/enrolments", {"encounter": {}, "photos": [photo(2, candidates=candidates)]})
    kept = queried["identifications"][0]["candidates"]
    assert [c["best_annotation_id"] for c in kept] == [annotation_id, annotation_id, None]
