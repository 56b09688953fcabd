"""Who may do what: a table of role x endpoint, and attempts across organisations (404, not 403)."""

from __future__ import annotations

import pytest


ROLES = ("viewer", "contributor", "reviewer", "admin")
SOME_ID = "00000000-0000-4000-8000-000000000000"

# (method, path, json body, least role allowed)
TABLE = [
    ("GET", "/v1/species", None, "viewer"),
    ("GET", "/v1/stats", None, "viewer"),
    ("GET", "/v1/individuals", None, "viewer"),
    ("GET", "/v1/individuals/HW-1", None, "viewer"),
    ("GET", "/v1/encounters", None, "viewer"),
    ("GET", "/v1/identifications", None, "viewer"),
    ("GET", "/v1/exports/encounters.csv", None, "viewer"),
    ("POST", "/v1/comments", {"encounter_id": SOME_ID, "body": "nice"}, "viewer"),
    ("POST", "/v1/individuals", {"catalogue_code": "HW-NEW", "species": "humpback_whale"}, "contributor"),
    ("PATCH", f"/v1/encounters/{SOME_ID}", {"notes": "x"}, "contributor"),
    ("PATCH", "/v1/individuals/HW-1", {"name": "Salt"}, "reviewer"),
    ("POST", f"/v1/identifications/{SOME_ID}:decide", {"decision": "rejected"}, "reviewer"),
    ("POST", "/v1/individuals:merge", {"target": "HW-1", "sources": ["HW-2"]}, "reviewer"),
    ("POST", "/v1/individuals/HW-1:split", {"annotation_ids": [SOME_ID], "new_individual": {
        "catalogue_code": "HW-9", "species": "humpback_whale"}}, "reviewer"),
    ("GET", "/v1/audit", None, "reviewer"),
    ("GET", "/v1/users", None, "admin"),
    ("POST", "/v1/users", {"email": "a@b.org", "display_name": "A", "password": "0123456789ab"}, "admin"),
    ("GET", "/v1/api-keys", None, "admin"),
    ("POST", "/v1/api-keys", {"name": "k", "role": "viewer"}, "admin"),
    ("DELETE", f"/v1/api-keys/{SOME_ID}", None, "admin"),
]


@pytest.mark.parametrize(("method", "path", "body", "least"), TABLE, ids=[f"{m} {p}" for m, p, _, _ in TABLE])
async def test_role_table(embedded, method: str, path: str, body: dict | None, least: str) -> None:
    _org, keys = await embedded.org_with_keys("roles-lab")
    for role in ROLES:
        response = await embedded.gateway.request(method, path, json=body, headers={"X-API-Key": keys[role]})
        allowed = ROLES.index(role) >= ROLES.index(least)
        if allowed:
            assert response.status_code not in {401, 403}, (role, response.status_code, response.text)
        else:
            assert response.status_code == 403, (role, response.status_code, response.text)
            assert response.json()["needed_role"] == least


async def test_identify_and_store_need_their_roles(embedded) -> None:
    _org, keys = await embedded.org_with_keys("upload-lab")
    stored = await embedded.gateway.post("/v1/identify?store=true", content=b"\xff\xd8\xff",
                                         headers={"X-API-Key": keys["viewer"], "Content-Type": "image/jpeg"})
    assert stored.status_code == 403
    enrol = await embedded.gateway.post("/v1/encounters", headers={"X-API-Key": keys["viewer"]},
                                        files={"images": ("a.jpg", b"\xff\xd8\xff", "image/jpeg")})
    assert enrol.status_code == 403


async def test_no_key_bad_key_and_revoked_key_are_401(embedded) -> None:
    _org, keys = await embedded.org_with_keys("auth-lab")
    assert (await embedded.gateway.get("/v1/individuals")).status_code == 401
    bad = await embedded.gateway.get("/v1/individuals", headers={"X-API-Key": "fp_nothing_here"})
    assert bad.status_code == 401 and bad.json()["type"].endswith("/unauthenticated")
    listed = await embedded.gateway.get("/v1/api-keys", headers={"X-API-Key": keys["admin"]})
    viewer_key_id = next(k["id"] for k in listed.json() if k["role"] == "viewer")
    assert (await embedded.gateway.get("/v1/individuals", headers={"X-API-Key": keys["viewer"]})).status_code == 200
    revoked = await embedded.gateway.delete(f"/v1/api-keys/{viewer_key_id}", headers={"X-API-Key": keys["admin"]})
    assert revoked.status_code == 200
    after = await embedded.gateway.get("/v1/individuals", headers={"X-API-Key": keys["viewer"]})
    assert after.status_code == 401


async def test_users_log_in_and_refresh_tokens(embedded) -> None:
    _org, keys = await embedded.org_with_keys("token-lab")
    created = await embedded.gateway.post("/v1/users", headers={"X-API-Key": keys["admin"]}, json={
        "email": "ana@whales.org", "display_name": "Ana", "password": "a long passphrase", "role": "reviewer"})
    assert created.status_code == 201, created.text
    wrong = await embedded.gateway.post("/v1/auth/token", data={"username": "ana@whales.org", "password": "nope"})
    assert wrong.status_code == 401
    tokens = (await embedded.gateway.post("/v1/auth/token", data={
        "username": "ana@whales.org", "password": "a long passphrase"})).json()
    bearer = {"Authorization": f"Bearer {tokens['access_token']}"}
    assert (await embedded.gateway.get("/v1/audit", headers=bearer)).status_code == 200
    assert (await embedded.gateway.get("/v1/users", headers=bearer)).status_code == 403
    refreshed = await embedded.gateway.post("/v1/auth/refresh", json={"refresh_token": tokens["refresh_token"]})
    assert refreshed.status_code == 200
    assert (await embedded.gateway.get("/v1/audit", headers={
        "Authorization": f"Bearer {refreshed.json()['access_token']}"})).status_code == 200
    misuse = await embedded.gateway.get("/v1/audit", headers={"Authorization": f"Bearer {tokens['refresh_token']}"})
    assert misuse.status_code == 401


async def test_organisations_never_see_each_other(embedded) -> None:
    _a, a_keys = await embedded.org_with_keys("lab-a")
    _b, b_keys = await embedded.org_with_keys("lab-b")
    made = await embedded.gateway.post("/v1/individuals", headers={"X-API-Key": a_keys["admin"]},
                                       json={"catalogue_code": "A-1", "species": "humpback_whale"})
    assert made.status_code == 201
    individual_id = made.json()["id"]
    for ref in ("A-1", individual_id):
        response = await embedded.gateway.get(f"/v1/individuals/{ref}", headers={"X-API-Key": b_keys["admin"]})
        assert response.status_code == 404, response.text
    patched = await embedded.gateway.patch(f"/v1/individuals/{individual_id}", json={"name": "stolen"},
                                           headers={"X-API-Key": b_keys["admin"]})
    assert patched.status_code == 404
    merged = await embedded.gateway.post("/v1/individuals:merge", json={"target": "A-1", "sources": ["A-1"]},
                                         headers={"X-API-Key": b_keys["admin"]})
    assert merged.status_code == 404
    listing = await embedded.gateway.get("/v1/individuals", headers={"X-API-Key": b_keys["admin"]})
    assert listing.json()["items"] == []
    mine = await embedded.gateway.get("/v1/individuals/A-1", headers={"X-API-Key": a_keys["viewer"]})
    assert mine.json()["name"] is None
