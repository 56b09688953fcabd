"""Control characters never reach the database (PostgreSQL refuses NUL in text and JSON): every body,
path and query string holding one is a 422 naming the field, on SQLite and PostgreSQL alike."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from .helpers import jpeg


def _refused(response, field: str) -> None:
    assert response.status_code == 422, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    assert field in {e["field"] for e in response.json()["errors"]}, response.json()


@pytest.mark.parametrize(("path", "body", "field"), [
    ("/individuals", {"catalogue_code": "HW\x00042", "species": "humpback_whale"}, "catalogue_code"),
    ("/individuals", {"catalogue_code": "HW-1", "species": "humpback_whale", "name": "Salt\x00"}, "name"),
    ("/individuals", {"catalogue_code": "HW-1", "species": "humpback_whale", "notes": "a\x00b"}, "notes"),
    ("/encounters", {"location_name": "Haro\x1bStrait"}, "location_name"),
    ("/encounters", {"notes": "n" * 10_001}, "notes"),
    ("/ingest-jobs", {"name": "job", "options": {"k\x00": "v"}}, "options"),
])
def test_bodies_with_control_characters_are_refused(client: TestClient, org: str, path: str, body: dict,
                                                    field: str) -> None:
    _refused(client.post(f"/v1/orgs/{org}{path}", json=body), field)
    listed = client.get(f"/v1/orgs/{org}{path}")
    assert listed.json()["total"] == 0


def test_notes_keep_their_line_breaks_and_tabs(client: TestClient, org: str) -> None:
    created = client.post(f"/v1/orgs/{org}/encounters", json={"notes": "one\ntwo\r\n\tthree"})
    assert created.status_code == 201 and created.json()["notes"] == "one\ntwo\r\n\tthree"


def test_path_query_and_form_fields_with_nul_are_refused(client: TestClient, org: str) -> None:
    _refused(client.get(f"/v1/orgs/{org}/individuals/a%00b"), "individual_id")
    _refused(client.get(f"/v1/orgs/{org}/individuals", params={"catalogue_code": "HW\x00"}), "catalogue_code")
    _refused(client.get("/v1/orgs/%00/individuals"), "org_id")
    uploaded = client.post(f"/v1/orgs/{org}/media", data={"uploaded_by": "ana\x00"},
                           files={"file": ("a.jpg", jpeg(3), "image/jpeg")})
    _refused(uploaded, "uploaded_by")
