"""API keys and passwords for the gateway, threaded comments, ingest job bookkeeping."""

from __future__ import annotations

import hashlib

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from services.catalog.adapters.db.models import ApiKey, User

from .helpers import Catalogue

pytestmark = pytest.mark.servers


def test_an_api_key_verifies_to_its_organisation_and_role_until_revoked(
    client: TestClient, cat: Catalogue
) -> None:
    created = cat.post("/api-keys", {"name": "partner", "role": "reviewer"})
    key = created["key"]
    assert key.startswith(f"fp_{created['prefix']}_")
    principal = client.post("/v1/auth/api-keys:verify", json={"key": key}).json()
    assert (principal["org_id"], principal["role"], principal["kind"]) == (cat.org_id, "reviewer", "api_key")

    with client.app.state.catalog.sessions() as session:
        stored = session.scalar(select(ApiKey).where(ApiKey.id == created["id"]))
        assert stored.secret_sha256 == hashlib.sha256(key.encode()).hexdigest()
        assert key not in (stored.prefix, stored.secret_sha256, stored.name)
    assert "key" not in cat.client.get(cat.url("/api-keys")).json()[0]

    for wrong in (key[:-1] + ("A" if key[-1] != "A" else "B"), "fp_nope_x", "garbage"):
        assert client.post("/v1/auth/api-keys:verify", json={"key": wrong}).status_code == 401
    assert cat.client.delete(cat.url(f"/api-keys/{created['id']}")).json()["revoked_at"] is not None
    assert client.post("/v1/auth/api-keys:verify", json={"key": key}).status_code == 401


def test_passwords_are_argon2_hashed_and_verified(client: TestClient, cat: Catalogue) -> None:
    email = f"ana-{cat.org_id[:8]}@whales.org"
    user = cat.post(
        "/users",
        {"email": email.upper(), "display_name": "Ana", "password": "correct horse battery", "role": "admin"},
    )
    assert user["email"] == email and "password" not in str(user)
    with client.app.state.catalog.sessions() as session:
        assert session.get(User, user["id"]).password_hash.startswith("$argon2")
    ok = client.post("/v1/auth/passwords:verify", json={"email": email, "password": "correct horse battery"})
    assert ok.status_code == 200 and ok.json()["org_id"] == cat.org_id and ok.json()["role"] == "admin"
    assert (
        client.post("/v1/auth/passwords:verify", json={"email": email, "password": "wrong"}).status_code
        == 401
    )
    assert (
        client.post(
            "/v1/auth/passwords:verify", json={"email": "nobody@x.org", "password": "whatever12"}
        ).status_code
        == 401
    )
    duplicate = cat.client.post(
        cat.url("/users"), json={"email": email, "display_name": "A", "password": "0123456789"}
    )
    assert duplicate.status_code == 409
    short = cat.client.post(
        cat.url("/users"), json={"email": "b@x.org", "display_name": "B", "password": "short"}
    )
    assert short.status_code == 422 and short.json()["errors"][0]["field"] == "password"


def test_organisations_are_found_by_slug_and_slugs_are_unique(client: TestClient, cat: Catalogue) -> None:
    organisation = client.get(f"/v1/orgs/{cat.org_id}").json()
    found = client.get("/v1/orgs", params={"slug": organisation["slug"]}).json()
    assert [o["id"] for o in found] == [cat.org_id]
    assert client.get("/v1/orgs", params={"slug": "no-such-lab"}).json() == []
    again = client.post("/v1/orgs", json={"slug": organisation["slug"], "name": "Copy"})
    assert again.status_code == 409
    assert client.post("/v1/orgs", json={"slug": "Not A Slug!", "name": "x"}).status_code == 422


def test_comments_are_threaded(cat: Catalogue) -> None:
    enrolled = cat.sighting(None)
    encounter_id, identification_id = enrolled["encounter"]["id"], enrolled["identifications"][0]["id"]
    root = cat.post("/comments", {"encounter_id": encounter_id, "author": "ana", "body": "Is this HW-0042?"})
    reply = cat.post(
        "/comments",
        {
            "encounter_id": encounter_id,
            "parent_id": root["id"],
            "author": "ben",
            "body": "The notch says yes.",
        },
    )
    cat.post(
        "/comments",
        {"encounter_id": encounter_id, "parent_id": reply["id"], "author": "ana", "body": "Agreed"},
    )
    cat.post(
        "/comments", {"identification_id": identification_id, "author": "cy", "body": "low quality crop"}
    )

    thread = cat.client.get(cat.url("/comments"), params={"encounter_id": encounter_id}).json()
    assert [c["author"] for c in thread] == ["ana"]
    assert thread[0]["replies"][0]["author"] == "ben"
    assert thread[0]["replies"][0]["replies"][0]["body"] == "Agreed"
    on_identification = cat.client.get(
        cat.url("/comments"), params={"identification_id": identification_id}
    ).json()
    assert [c["body"] for c in on_identification] == ["low quality crop"]

    wrong_thread = cat.client.post(
        cat.url("/comments"),
        json={"identification_id": identification_id, "parent_id": root["id"], "author": "x", "body": "y"},
    )
    assert wrong_thread.status_code == 422
    both = cat.client.post(
        cat.url("/comments"),
        json={
            "encounter_id": encounter_id,
            "identification_id": identification_id,
            "author": "x",
            "body": "y",
        },
    )
    assert both.status_code == 422


def test_ingest_items_are_added_once_and_progress_is_counted(cat: Catalogue) -> None:
    job = cat.post("/ingest-jobs", {"name": "2019 archive", "source": "s3://archive/2019/"})
    added = cat.post(
        f"/ingest-jobs/{job['id']}/items", {"item_keys": ["a.jpg", "b.jpg", "a.jpg"]}, expect=200
    )
    assert added == {"added": 2, "already_present": 1}
    again = cat.post(f"/ingest-jobs/{job['id']}/items", {"item_keys": ["b.jpg", "c.jpg"]}, expect=200)
    assert again == {"added": 1, "already_present": 1}

    items = cat.client.get(cat.url(f"/ingest-jobs/{job['id']}/items")).json()["items"]
    media = cat.upload()["media"]
    first = items[0]["id"]
    running = cat.client.patch(cat.url(f"/ingest-jobs/{job['id']}/items/{first}"), json={"status": "running"})
    assert running.json()["attempts"] == 1
    done = cat.client.patch(
        cat.url(f"/ingest-jobs/{job['id']}/items/{first}"),
        json={"status": "done", "media_id": media["id"], "result": {"individual": "HW-1"}},
    )
    assert done.json()["media_id"] == media["id"]
    cat.client.patch(
        cat.url(f"/ingest-jobs/{job['id']}/items/{items[1]['id']}"),
        json={"status": "failed", "error": "not an image"},
    )
    progress = cat.client.get(cat.url(f"/ingest-jobs/{job['id']}")).json()
    assert progress["counts"] == {"done": 1, "failed": 1, "pending": 1}
    failed = cat.client.get(cat.url(f"/ingest-jobs/{job['id']}/items"), params={"status": "failed"}).json()
    assert [i["error"] for i in failed["items"]] == ["not an image"]
    assert (
        cat.client.patch(cat.url(f"/ingest-jobs/{job['id']}"), json={"status": "completed"}).json()["status"]
        == "completed"
    )
