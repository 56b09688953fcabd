"""Organisation isolation: nothing of organisation A is reachable with B's id (404, like a missing row)."""

from __future__ import annotations

import csv
import io
import uuid

import pytest
from fastapi.testclient import TestClient

from .helpers import Catalogue, MakeCatalogue

pytestmark = pytest.mark.servers


@pytest.fixture
def a_world(cat: Catalogue) -> dict[str, str]:
    """One of everything in organisation A."""
    whale = cat.individual("A-WHALE")
    enrolled = cat.sighting(whale["id"])
    comment = cat.post(
        "/comments", {"encounter_id": enrolled["encounter"]["id"], "author": "ana", "body": "hi"}
    )
    job = cat.post("/ingest-jobs", {"name": "archive"})
    cat.post(f"/ingest-jobs/{job['id']}/items", {"item_keys": ["x.jpg"]}, expect=200)
    item = cat.client.get(cat.url(f"/ingest-jobs/{job['id']}/items")).json()["items"][0]
    key = cat.post("/api-keys", {"name": "partner"})
    return {
        "individual": whale["id"],
        "encounter": enrolled["encounter"]["id"],
        "media": enrolled["media"][0]["id"],
        "annotation": enrolled["annotations"][0]["id"],
        "identification": enrolled["identifications"][0]["id"],
        "comment": comment["id"],
        "job": job["id"],
        "item": item["id"],
        "api_key": key["id"],
    }


def test_every_read_of_a_row_of_a_through_b_is_404(
    client: TestClient, a_world: dict[str, str], other_org: str
) -> None:
    b = f"/v1/orgs/{other_org}"
    paths = [
        f"/individuals/{a_world['individual']}",
        f"/individuals/{a_world['individual']}/history",
        f"/encounters/{a_world['encounter']}",
        f"/media/{a_world['media']}",
        f"/media/{a_world['media']}/content",
        f"/media/{a_world['media']}/url",
        f"/annotations/{a_world['annotation']}",
        f"/identifications/{a_world['identification']}",
        f"/ingest-jobs/{a_world['job']}",
        f"/ingest-jobs/{a_world['job']}/items",
    ]
    for path in paths:
        response = client.get(b + path)
        assert response.status_code == 404, (path, response.status_code)
        assert response.headers["content-type"] == "application/problem+json"


def test_every_write_that_names_a_row_of_a_through_b_is_404_and_changes_nothing(
    client: TestClient, cat: Catalogue, a_world: dict[str, str], other_org: str, make_catalogue: MakeCatalogue
) -> None:
    b = make_catalogue(other_org)
    b_whale = b.individual("B-WHALE")
    b_media = b.upload()["media"]
    box = {"x": 0, "y": 0, "width": 5, "height": 5}
    attempts = [
        ("patch", f"/individuals/{a_world['individual']}", {"name": "stolen"}),
        ("patch", f"/encounters/{a_world['encounter']}", {"notes": "stolen"}),
        ("patch", f"/annotations/{a_world['annotation']}", {"individual_id": b_whale["id"]}),
        ("patch", f"/annotations/{b_media['id']}", {"view": "fluke"}),
        ("delete", f"/annotations/{a_world['annotation']}", None),
        ("delete", f"/api-keys/{a_world['api_key']}", None),
        ("post", "/annotations", {"media_id": a_world["media"], "box": box}),
        (
            "post",
            "/annotations",
            {"media_id": b_media["id"], "box": box, "individual_id": a_world["individual"]},
        ),
        ("post", "/identifications", {"annotation_id": a_world["annotation"]}),
        (
            "post",
            f"/identifications/{a_world['identification']}:decide",
            {"decision": "rejected", "decided_by": "x"},
        ),
        ("post", "/individuals:merge", {"target_id": b_whale["id"], "source_ids": [a_world["individual"]]}),
        (
            "post",
            f"/individuals/{a_world['individual']}:split",
            {
                "annotation_ids": [a_world["annotation"]],
                "new_individual": {"catalogue_code": "B-2", "species": "humpback_whale"},
            },
        ),
        ("post", "/comments", {"encounter_id": a_world["encounter"], "author": "x", "body": "y"}),
        ("post", "/comments", {"identification_id": a_world["identification"], "author": "x", "body": "y"}),
        ("post", "/enrolments", {"photos": [{"media_id": a_world["media"], "annotations": [{"box": box}]}]}),
        (
            "post",
            "/enrolments",
            {"encounter_id": a_world["encounter"],
             "photos": [{"media_id": b_media["id"], "annotations": [{"box": box}]}]},
        ),
        (
            "post",
            "/enrolments",
            {
                "photos": [{
                    "media_id": b_media["id"],
                    "annotations": [
                        {"box": box, "decision": "confirmed", "individual_id": a_world["individual"]}
                    ],
                }],
            },
        ),
        ("post", f"/ingest-jobs/{a_world['job']}/items", {"item_keys": ["y.jpg"]}),
        ("patch", f"/ingest-jobs/{a_world['job']}/items/{a_world['item']}", {"status": "done"}),
    ]
    audit_before = cat.client.get(cat.url("/audit")).json()["total"]
    for method, path, body in attempts:
        response = getattr(client, method)(b.url(path), **({"json": body} if body is not None else {}))
        assert response.status_code == 404, (method, path, response.status_code, response.text)
    a_whale = cat.client.get(cat.url(f"/individuals/{a_world['individual']}")).json()
    assert a_whale["name"] is None and a_whale["status"] == "active"
    annotation = cat.client.get(cat.url(f"/annotations/{a_world['annotation']}")).json()
    assert annotation["individual_id"] == a_world["individual"]
    assert cat.client.get(cat.url("/audit")).json()["total"] == audit_before
    assert b.client.get(b.url("/encounters")).json()["total"] == 0


def test_lists_and_exports_of_b_hold_nothing_of_a(
    client: TestClient, a_world: dict[str, str], other_org: str, make_catalogue: MakeCatalogue
) -> None:
    b = make_catalogue(other_org)
    for path in ("/individuals", "/encounters", "/annotations", "/identifications", "/ingest-jobs", "/audit"):
        assert b.client.get(b.url(path)).json()["total"] == 0, path
    assert b.client.get(b.url("/api-keys")).json() == []
    assert b.client.get(b.url("/comments"), params={"encounter_id": a_world["encounter"]}).json() == []
    rows = list(csv.reader(io.StringIO(b.client.get(b.url("/exports/encounters.csv")).text)))
    assert len(rows) == 1  # the header only
    embeddings = client.get("/v1/internal/embeddings", params={"org_id": other_org}).json()
    assert embeddings["records"] == []


def test_an_unknown_organisation_is_404(client: TestClient) -> None:
    response = client.get(f"/v1/orgs/{uuid.uuid4()}/individuals")
    assert response.status_code == 404
    assert "Organisation" in response.json()["detail"]
