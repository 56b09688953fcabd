"""The requests of the outside probe (issue 20), each sent as the probe sent it: every one gets a 4xx
application/problem+json naming what is wrong, and changes nothing."""

from __future__ import annotations

import base64
import io
import json
import subprocess
import sys
import tarfile
import threading
import zipfile
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from PIL import Image

from finprint.problems import PROBLEM_MEDIA_TYPE
from tests.gateway.conftest import Embedded, start_embedded

SOME_ID = "00000000-0000-4000-8000-000000000000"
UPSTREAM_SECRET = "internal-service-secret-body"


def _jpeg(width: int, height: int) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), (30, 90, 160)).save(buffer, "JPEG")
    return buffer.getvalue()


def _assert_problem(response, status: int) -> dict:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith(PROBLEM_MEDIA_TYPE)
    return response.json()


async def test_zip_member_escaping_the_archive_is_a_422_naming_it(embedded: Embedded) -> None:
    _org, keys = await embedded.org_with_keys("zip-slip-lab")
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as zipped:
        zipped.writestr("fine.jpg", _jpeg(64, 64))
        zipped.writestr("../../evil.jpg", _jpeg(64, 64))
    headers = {"X-API-Key": keys["contributor"]}
    response = await embedded.gateway.post("/v1/ingest/jobs", headers=headers,
                                           files={"archive": ("trip.zip", archive.getvalue(), "application/zip")})
    problem = _assert_problem(response, 422)
    assert problem["member"] == "../../evil.jpg" and "../../evil.jpg" in problem["detail"]
    assert (await embedded.gateway.get("/v1/ingest/jobs", headers=headers)).json()["total"] == 0


def _damaged_archives() -> dict[str, bytes]:
    whole = io.BytesIO()
    with zipfile.ZipFile(whole, "w", compression=zipfile.ZIP_DEFLATED) as zipped:
        zipped.writestr("a.jpg", _jpeg(64, 64) + bytes(5000))
    data = whole.getvalue()
    flipped = bytearray(data)
    flipped[60] ^= 0xFF  # inside the compressed photo: its CRC (or its deflate stream) no longer holds
    tar = io.BytesIO()
    with tarfile.open(fileobj=tar, mode="w:gz") as archive:
        info = tarfile.TarInfo("a.jpg")
        info.size = 9000
        archive.addfile(info, io.BytesIO(bytes(9000)))
    return {"bad crc": bytes(flipped), "central directory cut": data[:-30] + data[-22:],
            "truncated tar.gz": tar.getvalue()[: len(tar.getvalue()) // 2]}


@pytest.mark.parametrize("damage", list(_damaged_archives()))
async def test_a_damaged_archive_is_a_422_and_creates_no_job(embedded: Embedded, damage: str) -> None:
    _org, keys = await embedded.org_with_keys("damaged-lab")
    headers = {"X-API-Key": keys["contributor"]}
    response = await embedded.gateway.post("/v1/ingest/jobs", headers=headers, files={
        "archive": ("trip.zip", _damaged_archives()[damage], "application/octet-stream")})
    problem = _assert_problem(response, 422)
    assert problem["type"].endswith("/invalid-archive") and "trip.zip" in problem["detail"], problem
    assert (await embedded.gateway.get("/v1/ingest/jobs", headers=headers)).json()["total"] == 0


# Every operation of the public API with an id in its path, with the probe's control characters in it.
CONTROL_CHARACTER_PATHS = [
    ("GET", "/v1/ingest/jobs/%1F"),
    ("GET", "/v1/ingest/jobs/%1F/events"),
    ("GET", "/v1/ingest/jobs/%1F/items"),
    ("GET", "/v1/ingest/jobs/%1F/results.csv"),
    ("POST", "/v1/ingest/jobs/%1F:start"),
    ("PUT", "/v1/ingest/jobs/%1F/files/a.jpg"),
    ("PUT", f"/v1/ingest/jobs/{SOME_ID}/files/a%00.jpg"),
    ("GET", "/v1/media/%0E%0Aabc"),
    ("GET", "/v1/media/%0E%0Aabc/url"),
    ("GET", "/v1/encounters/%7F"),
    ("PATCH", "/v1/encounters/%7F"),
    ("GET", "/v1/identifications/%00"),
    ("POST", "/v1/identifications/%00:decide"),
    ("DELETE", "/v1/api-keys/%0B2"),
    ("GET", "/v1/individuals/%1B"),
    ("PATCH", "/v1/individuals/%1B"),
    ("GET", "/v1/individuals/%1B/history"),
    ("POST", "/v1/individuals/%1B:split"),
]


@pytest.mark.parametrize(("method", "path"), CONTROL_CHARACTER_PATHS, ids=[f"{m} {p}" for m, p in CONTROL_CHARACTER_PATHS])
async def test_control_characters_in_path_ids_are_a_422_naming_the_parameter(embedded: Embedded, method: str,
                                                                             path: str) -> None:
    _org, keys = await embedded.org_with_keys("control-lab")
    body = {"json": {}} if method in {"POST", "PATCH"} else {"content": b"x"} if method == "PUT" else {}
    response = await embedded.gateway.request(method, path, headers={"X-API-Key": keys["admin"]}, **body)
    problem = _assert_problem(response, 422)
    assert problem["errors"][0]["type"] == "control_character" and problem["errors"][0]["in"] == "path"


async def test_dot_segments_in_path_ids_do_not_walk_up_the_catalog(embedded: Embedded) -> None:
    """`%2E%2E` once reached the catalog as `/v1/orgs/{org}/encounters/..` and answered the organisation."""
    _org, keys = await embedded.org_with_keys("dots-lab")
    for path in ("/v1/encounters/%2E%2E", "/v1/media/%2E", "/v1/ingest/jobs/%2E%2E/items"):
        response = await embedded.gateway.get(path, headers={"X-API-Key": keys["admin"]})
        assert _assert_problem(response, 422)["errors"][0]["type"] == "dot_segment"
    # A percent sign is part of the id, not decoded a second time on the way to the catalog.
    encoded = await embedded.gateway.get("/v1/encounters/%252E%252E", headers={"X-API-Key": keys["admin"]})
    assert _assert_problem(encoded, 404)["detail"] == "Encounter %2E%2E was not found."


async def test_control_characters_in_query_parameters_are_a_422(embedded: Embedded) -> None:
    _org, keys = await embedded.org_with_keys("query-lab")
    response = await embedded.gateway.get("/v1/individuals", params={"species": "beluga\x00"},
                                          headers={"X-API-Key": keys["viewer"]})
    assert _assert_problem(response, 422)["errors"][0] == {
        "field": "species", "in": "query", "message": "contains a control character", "type": "control_character"}


async def test_a_cursor_past_any_catalogue_is_a_422_naming_the_cursor(embedded: Embedded) -> None:
    _org, keys = await embedded.org_with_keys("cursor-lab")
    cursor = base64.urlsafe_b64encode(json.dumps({"o": 55116789496032845103104}).encode()).decode().rstrip("=")
    response = await embedded.gateway.get("/v1/individuals", params={"cursor": cursor},
                                          headers={"X-API-Key": keys["viewer"]})
    assert _assert_problem(response, 422)["errors"][0]["field"] == "cursor"


async def test_encounter_notes_have_the_enrolment_limit_when_patched(embedded: Embedded) -> None:
    org_id, keys = await embedded.org_with_keys("notes-lab")
    encounter = (await embedded.catalog.post(f"/v1/orgs/{org_id}/encounters", json={"notes": "first"})).json()
    headers = {"X-API-Key": keys["contributor"]}
    response = await embedded.gateway.patch(f"/v1/encounters/{encounter['id']}", headers=headers,
                                            json={"notes": "n" * 100_000})
    assert _assert_problem(response, 422)["errors"][0]["field"] == "notes"
    enrolled = await embedded.gateway.post("/v1/encounters", headers=headers, data={"notes": "n" * 100_000},
                                           files={"images": ("a.jpg", _jpeg(64, 64), "image/jpeg")})
    assert _assert_problem(enrolled, 422)["errors"][0]["field"] == "notes"
    kept = await embedded.gateway.get(f"/v1/encounters/{encounter['id']}", headers=headers)
    assert kept.json()["notes"] == "first"
    assert (await embedded.gateway.patch(f"/v1/encounters/{encounter['id']}", headers=headers,
                                         json={"notes": "line one\nline two\ttabbed"})).status_code == 200


@pytest.mark.parametrize("code", ["HW\x00042", "HW-\x1f1", "HW-1\n", "HW\x7f"])
async def test_catalogue_codes_with_control_characters_are_refused(embedded: Embedded, code: str) -> None:
    _org, keys = await embedded.org_with_keys("codes-lab")
    headers = {"X-API-Key": keys["reviewer"]}
    created = await embedded.gateway.post("/v1/individuals", headers=headers,
                                          json={"catalogue_code": code, "species": "humpback_whale"})
    assert _assert_problem(created, 422)["errors"][0]["field"] == "catalogue_code"
    assert (await embedded.gateway.post("/v1/individuals", headers=headers, json={
        "catalogue_code": "HW-1", "species": "humpback_whale"})).status_code == 201
    renamed = await embedded.gateway.patch("/v1/individuals/HW-1", headers=headers, json={"catalogue_code": code})
    assert _assert_problem(renamed, 422)["errors"][0]["field"] == "catalogue_code"
    listed = (await embedded.gateway.get("/v1/individuals", headers=headers)).json()["items"]
    assert [i["catalogue_code"] for i in listed] == ["HW-1"]


async def test_a_one_pixel_image_is_too_small_to_identify(embedded: Embedded) -> None:
    _org, keys = await embedded.org_with_keys("tiny-lab")
    for photo in (_jpeg(1, 1), _jpeg(31, 400)):
        response = await embedded.gateway.post("/v1/identify", headers={"X-API-Key": keys["viewer"]},
                                               files={"image": ("tiny.jpg", photo, "image/jpeg")})
        problem = _assert_problem(response, 422)
        assert problem["reason"] == "too-small" and "32 pixels" in problem["detail"]


async def test_a_second_image_field_is_refused_not_silently_preferred(embedded: Embedded) -> None:
    _org, keys = await embedded.org_with_keys("two-lab")
    response = await embedded.gateway.post("/v1/identify", headers={"X-API-Key": keys["viewer"]}, files=[
        ("image", ("a.jpg", _jpeg(64, 64), "image/jpeg")), ("image", ("b.jpg", _jpeg(80, 80), "image/jpeg"))])
    problem = _assert_problem(response, 422)
    assert problem["errors"][0]["field"] == "image" and "exactly one" in problem["detail"]


@pytest.mark.parametrize("key", ["k" * 5000, "k" * 201, "fp_\x7fnot-a-key"])
async def test_any_malformed_api_key_is_401_with_www_authenticate(embedded: Embedded, key: str) -> None:
    response = await embedded.gateway.get("/v1/individuals", headers={"X-API-Key": key})
    assert _assert_problem(response, 401)["type"].endswith("/unauthenticated")
    assert response.headers["WWW-Authenticate"] == "Bearer"


def test_apikey_create_with_an_uppercase_slug_says_so_in_one_line(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "finprint.cli", "apikey", "create", "--org", "orgA", "--data-dir", str(tmp_path)],
        capture_output=True, text=True, check=False)
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr.strip().splitlines() == [
        "finprint apikey create: error: --org 'orgA': an organisation slug is 2 to 63 lowercase letters, "
        "digits and hyphens, not starting with a hyphen"]
    assert not (tmp_path / "catalog.db").exists()


# --- server-side request forgery through an S3 ingest source ---------------------------------------


class CountingServer(ThreadingHTTPServer):
    """A real HTTP server on 127.0.0.1 that counts every TCP connection it accepts and answers each request
    with a body that must never reach a caller of the gateway."""

    def __init__(self) -> None:
        self.connections = 0
        self.requests: list[str] = []
        super().__init__(("127.0.0.1", 0), _SecretHandler)

    def verify_request(self, request, client_address) -> bool:  # noqa: ANN001 - socketserver's signature
        self.connections += 1
        return True

    @property
    def endpoint(self) -> str:
        return f"127.0.0.1:{self.server_address[1]}"


class _SecretHandler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        self.server.requests.append(self.path)  # type: ignore[attr-defined]
        body = f"<Error><Code>{UPSTREAM_SECRET}</Code><Message>{UPSTREAM_SECRET}</Message></Error>".encode()
        self.send_response(403)
        self.send_header("Content-Type", "application/xml")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def internal_service() -> Iterator[CountingServer]:
    server = CountingServer()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def _s3_job(endpoint: str) -> dict:
    return {"name": "probe", "s3": {"endpoint": endpoint, "bucket": "photos", "secure": False,
                                    "access_key": "a", "secret_key": "b"}}


async def test_s3_sources_on_internal_addresses_are_refused_without_connecting(
        embedded: Embedded, internal_service: CountingServer) -> None:
    _org, keys = await embedded.org_with_keys("ssrf-lab")
    port = internal_service.server_address[1]
    endpoints = [internal_service.endpoint, f"localhost:{port}", f"[::ffff:127.0.0.1]:{port}", f"[::1]:{port}",
                 f"2130706433:{port}", f"127.1:{port}", "169.254.169.254:80", "10.0.0.1:9000",
                 "[fe80::1]:9000", "0.0.0.0:9000", "no-such-host.invalid:9000"]
    for endpoint in endpoints:
        response = await embedded.gateway.post("/v1/ingest/jobs", headers={"X-API-Key": keys["contributor"]},
                                               json=_s3_job(endpoint))
        problem = _assert_problem(response, 422)
        assert problem["type"].endswith("/outbound-refused"), (endpoint, problem)
        assert problem["setting"] == "FINPRINT_GATEWAY_OUTBOUND_ALLOW" and problem["field"] == "s3.endpoint"
        assert "127.0.0.1" not in problem["detail"].replace(endpoint, ""), problem["detail"]
    assert internal_service.connections == 0
    jobs = await embedded.gateway.get("/v1/ingest/jobs", headers={"X-API-Key": keys["contributor"]})
    assert jobs.json()["total"] == 0


async def test_an_allowed_endpoint_is_reached_and_its_answer_never_echoed(
        embedded_env: Path, internal_service: CountingServer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FINPRINT_GATEWAY_OUTBOUND_ALLOW", internal_service.endpoint)
    async with start_embedded() as embedded:
        _org, keys = await embedded.org_with_keys("allowed-lab")
        response = await embedded.gateway.post("/v1/ingest/jobs", headers={"X-API-Key": keys["contributor"]},
                                               json=_s3_job(internal_service.endpoint))
    problem = _assert_problem(response, 422)
    assert problem["type"].endswith("/s3-unreachable")
    assert internal_service.requests, "the allowed endpoint was never asked"
    assert UPSTREAM_SECRET not in response.text
    assert "did not answer as an S3 server" in problem["detail"]
