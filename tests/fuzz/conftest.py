"""The system for the schemathesis runs: the five services as separate processes on a fresh PostgreSQL
database and the S3 server, seeded through the public API with real photos so that fuzzed requests reach
the success paths (an organisation, keys, individuals, an enrolled encounter, a review item, an ingest job).
"""

from __future__ import annotations

import base64
import io
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
import schemathesis
from PIL import Image
from schemathesis.config import SchemathesisConfig

from finprint.imaging import ImageLimits, load_model_input
from finprint_testing.postgres import PostgresServer
from finprint_testing.s3 import S3Server
from finprint_testing.system import RunningSystem, separate_services
from tests.e2e.conftest import KeyMaker, Whale, humpbacks  # noqa: F401 - humpbacks is a fixture

# The detector's and the embedder's pixels routes take a NumPy .npy body: bytes, sent as any binary body.
schemathesis.serializer.alias("application/x-npy", "application/octet-stream")

SEED = int(os.environ.get("FINPRINT_FUZZ_SEED", "20"))
"""Every run draws the same requests (schemathesis and Hypothesis seeded, Hypothesis derandomised); an
exploratory run may draw others with FINPRINT_FUZZ_SEED."""


@dataclass
class Seeds:
    """What the seeding created: the values fuzzed path parameters are sometimes set to, by name."""

    org_id: str
    admin_key: str
    admin_key_id: str
    spare_key_id: str
    path_values: dict[str, dict[str, str]] = field(default_factory=dict)
    """service -> path parameter name -> a value that exists."""
    bodies: dict[str, dict[tuple[str, str], Any]] = field(default_factory=dict)
    """service -> (METHOD, path template) -> a request body that succeeds, given the seeded objects."""
    photo: bytes = b""
    pixels_npy: bytes = b""
    index_key: dict[str, Any] = field(default_factory=dict)
    vector: list[float] = field(default_factory=list)


@pytest.fixture(scope="module")
def fuzzed_system(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory,
                  postgres_server: PostgresServer, s3_server: S3Server) -> Iterator[tuple[RunningSystem, str]]:
    tmp = tmp_path_factory.mktemp("fuzz")
    with postgres_server.fresh_database() as database_url:
        storage = {"OBJECT_STORE": "s3", "S3_ENDPOINT": s3_server.endpoint, "S3_ACCESS_KEY": s3_server.access_key,
                   "S3_SECRET_KEY": s3_server.secret_key, "S3_BUCKET": f"fuzz-{tmp.name.lower()}"[:60].replace("_", "-"),
                   "S3_SECURE": "false"}
        env = {"FINPRINT_CATALOG_DATABASE_URL": database_url, "FINPRINT_CATALOG_AUTO_MIGRATE": "true",
               "FINPRINT_GATEWAY_JWT_SECRET": "fuzz-secret-" + "x" * 32,
               # The fuzzer is one caller sending far more than a person would; limits are tested elsewhere.
               "FINPRINT_GATEWAY_RATE_LIMIT": "1000000/minute", "FINPRINT_GATEWAY_IDENTIFY_RATE_LIMIT": "1000000/minute",
               **{f"FINPRINT_CATALOG_{k}": v for k, v in storage.items()},
               **{f"FINPRINT_MATCHER_{k}": v for k, v in storage.items()}}
        with separate_services(env, tmp) as system:
            yield system, database_url


def _ok(response: httpx.Response) -> Any:
    assert response.status_code < 300, (response.request.method, response.request.url, response.text[:500])
    return response.json()


@pytest.fixture(scope="module")
def seeds(fuzzed_system: tuple[RunningSystem, str], humpbacks: list[Whale]) -> Seeds:  # noqa: F811
    system, database_url = fuzzed_system
    admin_key = KeyMaker(["--database-url", database_url])("fuzz-lab", "admin")
    gateway = httpx.Client(base_url=system.gateway_url, headers={"X-API-Key": admin_key}, timeout=120)
    catalog = httpx.Client(base_url=system.urls["catalog"], timeout=60)
    with gateway, catalog:
        for whale in humpbacks[:3]:
            _ok(gateway.post("/v1/individuals", json={"catalogue_code": whale.code, "species": "humpback_whale"}))
        known = humpbacks[0]
        enrolled = _ok(gateway.post("/v1/encounters", data={"individual_id": known.code, "notes": "seeded"},
                                    files=[("images", (p.name, p.read_bytes(), "image/jpeg")) for p in known.photos[:2]]))
        stored = _ok(gateway.post("/v1/identify?store=true", files={
            "image": (known.photos[2].name, known.photos[2].read_bytes(), "image/jpeg")}))
        identification_id = stored["results"][0]["identification_id"]
        # Why this match, computed once: the catalog's GET of it answers 200 from then on.
        _ok(gateway.get(f"/v1/identifications/{identification_id}/explanations/{known.code}"))
        # The same shot again under a second code: a possible duplicate, filed by a scan.
        _ok(gateway.post("/v1/encounters", data={"individual_id": "FZ-TWICE"},
                         files=[("images", ("twice.jpg", _reencoded(known.photos[0]), "image/jpeg"))]))
        _ok(gateway.post("/v1/duplicates:scan", json={"species": ["humpback_whale"]}))
        pair_id = _ok(gateway.get("/v1/duplicates"))["items"][0]["id"]
        _ok(gateway.post("/v1/comments", json={"encounter_id": enrolled["encounter"]["id"], "body": "seeded"}))
        job = _ok(gateway.post("/v1/ingest/jobs", files={"manifest": ("m.csv", b"image\na.jpg\nb.jpg\n", "text/csv")}))
        spare_key = _ok(gateway.post("/v1/api-keys", json={"name": "spare", "role": "viewer"}))
        user = {"email": "fuzz@whales.org", "display_name": "Fuzz", "password": "a long fuzzing passphrase"}
        _ok(gateway.post("/v1/users", json={**user, "role": "reviewer"}))
        tokens = _ok(gateway.post("/v1/auth/token", data={"username": user["email"], "password": user["password"]}))
        org_id = enrolled["encounter"]["org_id"]
        admin_key_id = next(k["id"] for k in _ok(gateway.get("/v1/api-keys")) if k["role"] == "admin")
        media = enrolled["media"][0]
        annotation_id = enrolled["annotations"][0]["id"]
        individual_id = _ok(gateway.get(f"/v1/individuals/{known.code}"))["id"]
        item = _ok(catalog.get(f"/v1/orgs/{org_id}/ingest-jobs/{job['id']}/items"))["items"][0]
        embedding = _ok(catalog.get("/v1/internal/embeddings", params={"org_id": org_id}))["records"][0]
    photo = humpbacks[1].photos[0].read_bytes()  # never enrolled: an enrolment of it is no duplicate
    model = httpx.get(f"{system.urls['detector']}/v1/model", timeout=30).json()
    pixels = load_model_input(photo, model["input_size"], ImageLimits()).pixels[np.newaxis]
    npy = io.BytesIO()
    np.save(npy, pixels)
    ids = {"encounter_id": enrolled["encounter"]["id"], "media_id": media["id"], "identification_id": identification_id,
           "job_id": job["id"], "key_id": spare_key["id"], "pair_id": pair_id}
    encounter_id = enrolled["encounter"]["id"]
    new_code = {"catalogue_code": "FZ-NEW", "species": "humpback_whale"}
    bodies = {
        "gateway": {
            ("POST", "/v1/auth/token"): {"username": user["email"], "password": user["password"]},
            ("POST", "/v1/auth/refresh"): {"refresh_token": tokens["refresh_token"]},
            ("POST", "/v1/comments"): {"encounter_id": encounter_id, "body": "fuzzed"},
            ("POST", "/v1/individuals"): new_code,
            ("POST", "/v1/individuals:merge"): {"target": humpbacks[1].code, "sources": [humpbacks[2].code]},
            ("POST", "/v1/individuals/{ref}:split"): {"annotation_ids": [annotation_id], "new_individual": {
                **new_code, "catalogue_code": "FZ-SPLIT"}},
            ("POST", "/v1/identifications/{identification_id}:decide"): {"decision": "rejected"},
            # A photo of its own: the fuzzed identify?store=true has stored the other one by then.
            ("POST", "/v1/encounters"): {"images": [humpbacks[2].photos[0].read_bytes()], "individual_id": known.code},
            ("POST", "/v1/ingest/jobs"): {"manifest": b"image\nc.jpg\n"},
            ("PATCH", "/v1/encounters/{encounter_id}"): {"notes": "fuzzed"},
            ("PATCH", "/v1/individuals/{ref}"): {"name": "Fuzzed"},
            ("POST", "/v1/duplicates/{pair_id}:decide"): {"decision": "dismissed"},
            ("POST", "/v1/duplicates:scan"): {"species": ["humpback_whale"]},
            ("PUT", "/v1/settings"): {"auto_accept_precision": None},
        },
        "catalog": {
            ("POST", "/v1/auth/api-keys:verify"): {"key": spare_key["key"]},
            ("POST", "/v1/auth/passwords:verify"): {"email": user["email"], "password": user["password"]},
            ("POST", "/v1/orgs/{org_id}/individuals"): new_code,
            ("POST", "/v1/orgs/{org_id}/comments"): {"encounter_id": encounter_id, "body": "fuzzed", "author": "fz"},
            ("POST", "/v1/orgs/{org_id}/annotations"): {"media_id": media["id"],
                                                        "box": {"x": 0, "y": 0, "width": 50, "height": 40}},
            ("POST", "/v1/orgs/{org_id}/identifications"): {"annotation_id": annotation_id},
            ("POST", "/v1/orgs/{org_id}/users"): {**user, "email": "other@whales.org"},
            ("POST", "/v1/orgs/{org_id}/api-keys"): {"name": "fuzzed", "role": "viewer"},
            ("POST", "/v1/orgs/{org_id}/media"): {"file": photo},
            ("POST", "/v1/orgs/{org_id}/ingest-jobs/{job_id}/items"): {"item_keys": ["d.jpg"]},
            ("PATCH", "/v1/orgs/{org_id}/encounters/{encounter_id}"): {"notes": "fuzzed"},
            ("PUT", "/v1/orgs/{org_id}/settings"): {"auto_accept_precision": None, "updated_by": "fz"},
            ("POST", "/v1/orgs/{org_id}/duplicates:file"): {
                "species": "humpback_whale", "model_version": embedding["model_version"], "pairs": [], "filed_by": "fz"},
            ("POST", "/v1/orgs/{org_id}/duplicates/{pair_id}:decide"): {"decision": "dismissed", "decided_by": "fz"},
            ("PUT", "/v1/orgs/{org_id}/identifications/{identification_id}/explanations/{individual_id}"): {
                "model_version": embedding["model_version"], "similarity": 0.5, "grid": 1, "window": 1,
                **{side: {"media_id": media["id"], "heatmap": [[0.1]], "overlay_png_base64": _tiny_png()}
                   for side in ("query", "candidate")}},
        },
        "embedder": {
            ("POST", "/v1/explain"): {"images": [photo, humpbacks[1].photos[1].read_bytes()]},
        },
    }
    return Seeds(
        bodies=bodies,
        org_id=org_id, admin_key=admin_key, admin_key_id=admin_key_id, spare_key_id=spare_key["id"], photo=photo, pixels_npy=npy.getvalue(),
        index_key={k: embedding[k] for k in ("org_id", "species_group", "model_version")},
        vector=_vector(embedding["vector"]),
        path_values={
            "gateway": {**ids, "ref": known.code, "image": "a.jpg", "candidate": known.code},
            "catalog": {**ids, "org_id": org_id, "individual_id": individual_id, "annotation_id": annotation_id,
                        "item_id": item["id"], "item_key": "a.jpg", "sha256": media["sha256"]},
            "matcher": {"org_id": org_id, "embedding_id": embedding["embedding_id"]},
        },
    )


def _reencoded(path: Path) -> bytes:
    with Image.open(path) as image:
        buffer = io.BytesIO()
        image.convert("RGB").save(buffer, "JPEG", quality=80)
    return buffer.getvalue()


def _tiny_png() -> str:
    buffer = io.BytesIO()
    Image.new("RGB", (2, 2), "red").save(buffer, "PNG")
    return base64.b64encode(buffer.getvalue()).decode()


def _vector(encoded: str) -> list[float]:
    return np.frombuffer(base64.b64decode(encoded), dtype="<f4").astype(float).tolist()


def fuzz_config(headers: dict[str, str] | None = None) -> SchemathesisConfig:
    """Fuzzing and stateful phases, bounded and seeded; only the two checks the issue asks for."""
    config = SchemathesisConfig.from_dict({
        "seed": SEED,
        "generation": {"deterministic": True, "max-examples": 8, "database": "none"},
        "phases": {"examples": {"enabled": True}, "coverage": {"enabled": False}, "fuzzing": {"enabled": True},
                   "stateful": {"enabled": True, "max-steps": 6}},
        "checks": {"enabled": False, "not_a_server_error": {"enabled": True},
                   "response_schema_conformance": {"enabled": True}},
        **({"headers": headers} if headers else {}),
    })
    return config


def load_schema(base_url: str, headers: dict[str, str] | None = None) -> schemathesis.BaseSchema:
    schema = schemathesis.openapi.from_url(f"{base_url}/openapi.json", config=fuzz_config(headers))
    schema.config.update(base_url=base_url)
    return schema
