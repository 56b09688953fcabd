"""Integers beyond what the databases hold are a 422 naming the parameter (schemathesis found
`?offset=55116789496032845103104` answering 500), on SQLite and PostgreSQL alike."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

HUGE = 55116789496032845103104


@pytest.mark.parametrize("path", ["/annotations", "/individuals", "/encounters", "/identifications", "/audit",
                                  "/ingest-jobs"])
def test_an_offset_past_any_catalogue_is_a_422(client: TestClient, org: str, path: str) -> None:
    response = client.get(f"/v1/orgs/{org}{path}", params={"offset": HUGE})
    assert response.status_code == 422, response.text
    assert response.json()["errors"][0]["field"] == "offset"
    assert client.get(f"/v1/orgs/{org}{path}", params={"offset": 2**31 - 1}).status_code == 200


def test_huge_limits_sequence_numbers_and_group_sizes_are_refused(client: TestClient, org: str) -> None:
    assert client.get(f"/v1/orgs/{org}/individuals", params={"limit": HUGE}).status_code == 422
    assert client.get("/v1/internal/changes", params={"after_seq": HUGE}).status_code == 422
    created = client.post(f"/v1/orgs/{org}/encounters", json={"group_size": HUGE})
    assert created.status_code == 422 and created.json()["errors"][0]["field"] == "group_size"
    assert client.get(f"/v1/orgs/{org}/encounters").json()["total"] == 0
