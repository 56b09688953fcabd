"""Enrolment as multipart: the EnrolRequest as the JSON part `enrolment`, each new photo a `photos`
file part stored exactly as sent; a malformed request is a 422 that stores nothing (SQLite and
PostgreSQL, the local object store)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pytest

from .helpers import Catalogue, jpeg, vector

pytestmark = pytest.mark.servers

BOX = {"x": 4, "y": 4, "width": 40, "height": 30}


def entry(index: int, filename: str | None = None, **annotation: Any) -> dict[str, Any]:
    return {"file": {"index": index, "filename": filename},
            "annotations": [{"box": BOX, "species": "humpback_whale",
                             "embedding": {"model_version": "finprint_embedder:1", "vector": vector(index)},
                             **annotation}]}


def enrol(cat: Catalogue, document: dict[str, Any], photos: list[bytes], **kwargs: Any) -> Any:
    parts = [("enrolment", ("enrolment.json", json.dumps(document).encode(), "application/json")),
             *(("photos", (f"p{i}", data, "image/jpeg")) for i, data in enumerate(photos))]
    return cat.client.post(cat.url("/enrolments"), files=parts, **kwargs)


def stored(cat: Catalogue, objects_dir: Path) -> tuple[int, int]:
    """Encounters of the organisation, and photo objects in the store."""
    encounters = cat.client.get(cat.url("/encounters")).json()["total"]
    return encounters, sum(1 for p in (objects_dir / "media" / cat.org_id).rglob("*") if p.is_file())


def test_each_photo_is_stored_as_sent_with_the_name_the_json_gives(cat: Catalogue) -> None:
    photos = [jpeg(501), jpeg(502)]
    document = {"encounter": {"observer": "ana"}, "uploaded_by": "ana",
                "photos": [entry(1, "Île de Ré 2.jpg"), entry(0, "fluke \"1\".jpg")]}
    response = enrol(cat, document, photos)
    assert response.status_code == 201, response.text
    media = response.json()["media"]
    assert [m["original_filename"] for m in media] == ["Île de Ré 2.jpg", 'fluke "1".jpg']
    for item, data in zip(media, [photos[1], photos[0]]):
        assert item["sha256"] == hashlib.sha256(data).hexdigest() and item["size_bytes"] == len(data)
        assert cat.client.get(cat.url(f"/media/{item['id']}/content")).content == data
    assert len(response.json()["annotations"]) == 2


@pytest.mark.parametrize(("document", "photos", "words"), [
    ({"photos": [entry(0)]}, 2, "[1] are no photo's"),
    ({"photos": [entry(0), entry(1)]}, 1, "photos.1.file.index is 1, but the request has 1"),
    ({"photos": [entry(0), entry(0)]}, 2, "file part 0 is already photos.0's"),
    ({"photos": [{"annotations": [{"box": BOX}]}]}, 1, "give exactly one of media_id, image and file"),
])
def test_photos_and_their_entries_must_match_one_to_one(
        cat: Catalogue, objects_dir: Path, document: dict, photos: int, words: str) -> None:
    before = stored(cat, objects_dir)
    response = enrol(cat, document, [jpeg(600 + i) for i in range(photos)])
    assert response.status_code == 422, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    assert words in json.dumps(response.json(), ensure_ascii=False)
    assert stored(cat, objects_dir) == before


def test_a_malformed_multipart_enrolment_is_a_422_naming_the_part(cat: Catalogue, objects_dir: Path) -> None:
    before = stored(cat, objects_dir)
    photo = ("photos", ("p0", jpeg(700), "image/jpeg"))
    no_document = cat.client.post(cat.url("/enrolments"), files=[photo])
    assert no_document.status_code == 422 and "`enrolment`" in no_document.json()["detail"]
    not_json = cat.client.post(cat.url("/enrolments"), files=[("enrolment", ("e.json", b"{no", "application/json")),
                                                              photo])
    assert not_json.status_code == 422 and not_json.json()["type"].endswith("/validation-error")
    extra = cat.client.post(cat.url("/enrolments"), files=[
        ("enrolment", ("e.json", json.dumps({"photos": [entry(0)]}).encode(), "application/json")), photo,
        ("image", ("p1", jpeg(701), "image/jpeg"))])
    assert extra.status_code == 422 and "['image']" in extra.json()["detail"]
    assert stored(cat, objects_dir) == before


def test_a_retry_is_replayed_and_the_same_key_with_other_photos_refused(cat: Catalogue) -> None:
    document = {"photos": [entry(0)]}
    headers = {"Idempotency-Key": "multipart-1"}
    first = enrol(cat, document, [jpeg(801)], headers=headers)
    again = enrol(cat, document, [jpeg(801)], headers=headers)
    assert first.status_code == 201 and again.status_code == 201
    assert again.headers["Idempotent-Replayed"] == "true" and again.json() == first.json()
    other = enrol(cat, document, [jpeg(802)], headers=headers)  # the same JSON part, another photo
    assert other.status_code == 422 and other.json()["type"].endswith("/idempotency-key-reused")
