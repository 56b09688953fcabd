"""``finprint backup`` / ``finprint restore`` as a round trip on the running system.

Both deployments: the five separate services on PostgreSQL + the S3 server, and the embedded
default (SQLite + a folder). A small catalogue of real photos is enrolled and reviewed, a backup is
taken while the system runs, restored into a fresh database and object store, and the system is
started again on the restored storage: the individuals, encounters, media bytes, review queue,
stats, the three exports and an identify answer must be what they were. A backup with one byte
changed anywhere, or a file missing, is refused and leaves the target untouched.
"""

from __future__ import annotations

import io
import json
import os
import re
import shutil
import subprocess
import sys
import time
import uuid
import zipfile
from collections.abc import Iterator, Mapping
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import psycopg
import pytest

from finprint.client import FinprintClient
from finprint.objectstore import S3ObjectStore
from finprint_testing.postgres import PostgresServer
from finprint_testing.s3 import S3Server
from finprint_testing.system import embedded_system, separate_services

if TYPE_CHECKING:
    from tests.e2e.conftest import Whale

pytestmark = [pytest.mark.slow, pytest.mark.servers]

JWT = {"FINPRINT_GATEWAY_JWT_SECRET": "backup-secret-" + "x" * 32}
REFUSED = 2


def finprint(*args: str, env: Mapping[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """The ``finprint`` command line, as an operator runs it."""
    return subprocess.run([sys.executable, "-m", "finprint.cli", *args], capture_output=True, text=True,
                          env={**os.environ, **(env or {})}, timeout=600)


def new_key(location: list[str], org: str = "backup-lab") -> str:
    done = finprint("apikey", "create", "--org", org, "--role", "admin", *location)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip().splitlines()[-1]


def s3_env(s3: S3Server, bucket: str) -> dict[str, str]:
    storage = {"OBJECT_STORE": "s3", "S3_ENDPOINT": s3.endpoint, "S3_ACCESS_KEY": s3.access_key,
               "S3_SECRET_KEY": s3.secret_key, "S3_BUCKET": bucket, "S3_SECURE": "false"}
    return {**{f"FINPRINT_CATALOG_{k}": v for k, v in storage.items()},
            **{f"FINPRINT_MATCHER_{k}": v for k, v in storage.items()}}


def separate_env(database_url: str, s3: S3Server, bucket: str) -> dict[str, str]:
    return {"FINPRINT_CATALOG_DATABASE_URL": database_url, "FINPRINT_CATALOG_AUTO_MIGRATE": "true",
            **JWT, **s3_env(s3, bucket)}


def bucket_name() -> str:
    return f"backup-{uuid.uuid4().hex[:12]}"


def bucket(s3: S3Server, name: str) -> S3ObjectStore:
    return S3ObjectStore(s3.endpoint, s3.access_key, s3.secret_key, name, secure=False)


def tables(database_url: str) -> list[str]:
    url = database_url.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(url) as connection:
        rows = connection.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'"
        ).fetchall()
    return [row[0] for row in rows]


# --- building a catalogue and looking at it ------------------------------------------------------


@dataclass
class Catalogue:
    key: str
    query: Path
    """A photo never enrolled, identified before and after."""


def build_catalogue(url: str, key: str, whales: list[Whale]) -> Catalogue:
    """Four humpbacks with two photos each, one identification confirmed, one left pending, a comment."""
    with FinprintClient(url, api_key=key, timeout_s=120) as fp:
        for n, whale in enumerate(whales[:4]):
            fp.enrol(whale.photos[:2], individual_id=whale.code, observed_at=f"2024-07-0{n + 1}T10:00:00Z",
                     latitude=48.5 + n / 10, longitude=-123.1, location="Haro Strait", observer="R. Payne")
        confirmed = fp.identify(whales[0].photos[2], store=True).results[0]
        pending = fp.identify(whales[1].photos[2], store=True)
        fp.confirm(confirmed.identification_id, whales[0].code)
        fp.comment("Notch on the left fluke tip", encounter_id=pending.encounter_id)
    return Catalogue(key, whales[2].photos[2])


def _zip_entries(data: bytes) -> dict[str, bytes]:
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        return {name: archive.read(name) for name in sorted(archive.namelist())}


def observe(url: str, catalogue: Catalogue) -> dict[str, Any]:
    """Everything a researcher sees of the catalogue, through the public API."""
    with FinprintClient(url, api_key=catalogue.key, timeout_s=120) as fp:
        individuals = sorted(fp.individuals(), key=lambda i: i["catalogue_code"])
        encounters = sorted(fp.encounters(), key=lambda e: e["id"])
        media = {}
        for encounter in encounters:
            for media_id in encounter["media_ids"]:
                location = fp.media_url(media_id)
                image = (fp.request("GET", location) if location.startswith("/") else httpx.get(location)).content
                media[media_id] = {"meta": fp.request("GET", f"/v1/media/{media_id}").json(), "bytes": image}
        dwca = _zip_entries(fp.export("dwca.zip"))
        # The EML's publication date is the day of the export, not catalogue data.
        dwca["eml.xml"] = re.sub(rb"<pubDate>.*?</pubDate>", b"", dwca["eml.xml"])
        answer = fp.identify(catalogue.query).model_dump()
        for result in answer["results"]:
            for candidate in result["candidates"]:
                candidate["score"] = round(candidate["score"], 5)
            result["new_individual"] = round(result["new_individual"], 5)
        return {
            "individuals": individuals,
            "sightings": {i["catalogue_code"]: fp.individual(i["catalogue_code"]) for i in individuals},
            "encounters": encounters,
            "media": media,
            "pending": sorted(fp.review_queue("pending"), key=lambda i: i["id"]),
            "confirmed": sorted(fp.review_queue("confirmed"), key=lambda i: i["id"]),
            "comments": {e["id"]: fp.request("GET", "/v1/comments", params={"encounter_id": e["id"]}).json()
                         for e in encounters},
            "stats": fp.stats(),
            "encounters.csv": fp.export("encounters.csv"),
            "dataset.zip": _zip_entries(fp.export("dataset.zip")),
            "dwca.zip": dwca,
            "identify": answer,
        }


def assert_same_catalogue(before: dict[str, Any], after: dict[str, Any]) -> None:
    # Some of what is compared must exist, or equal could mean empty.
    assert len(before["individuals"]) == 4 and len(before["media"]) >= 10
    assert before["pending"] and before["confirmed"] and any(before["comments"].values())
    assert before["identify"]["results"] and before["identify"]["results"][0]["candidates"]
    assert before["encounters.csv"].count(b"\n") >= 7  # header + at least 6 encounters
    for part in before:
        assert after[part] == before[part], f"{part} differs after the restore"


def matcher_snapshot_loads(matcher_url: str) -> float:
    text = httpx.get(f"{matcher_url}/metrics").text
    found = re.search(r'^finprint_matcher_loads_total\{source="snapshot"\} (\S+)$', text, re.M)
    return float(found.group(1)) if found else 0.0


# --- the separate services on PostgreSQL + S3 -----------------------------------------------------


@dataclass
class TakenBackup:
    folder: Path
    catalogue: Catalogue
    before: dict[str, Any]
    matcher: dict[str, Any]
    manifest: dict[str, Any]


@pytest.fixture(scope="module")
def separate_backup(postgres_server: PostgresServer, s3_server: S3Server, humpbacks: list[Whale],
                    tmp_path_factory: pytest.TempPathFactory) -> Iterator[TakenBackup]:
    """A catalogue on the separate services, backed up while they run (then stopped)."""
    tmp = tmp_path_factory.mktemp("backup-separate-source")
    with postgres_server.fresh_database() as database_url:
        env = separate_env(database_url, s3_server, bucket_name())
        with separate_services(env, tmp) as system:
            key = new_key(["--database-url", database_url])
            catalogue = build_catalogue(system.gateway_url, key, humpbacks)
            matcher = system.urls["matcher"]
            org_id = httpx.post(f"{system.urls['catalog']}/v1/auth/api-keys:verify", json={"key": key}).json()["org_id"]
            httpx.put(f"{matcher}/v1/orgs/{org_id}/threshold", json={"threshold": 0.42}).raise_for_status()
            httpx.post(f"{matcher}/v1/snapshot").raise_for_status()
            # A change after the snapshot: the restored matcher must replay it from the restored change log.
            with FinprintClient(system.gateway_url, api_key=key, timeout_s=120) as fp:
                extra = fp.identify(humpbacks[3].photos[2], store=True).results[0]
                fp.confirm(extra.identification_id, humpbacks[3].code)
            httpx.post(f"{matcher}/v1/sync").raise_for_status()
            before = observe(system.gateway_url, catalogue)
            indexes = httpx.get(f"{matcher}/v1/indexes").json()
            thresholds = httpx.get(f"{matcher}/v1/orgs/{org_id}/threshold").json()
            folder = tmp / "backup"
            done = finprint("backup", "--output", str(folder), env=env)
            assert done.returncode == 0, done.stderr
        manifest = json.loads((folder / "manifest.json").read_text())
        yield TakenBackup(folder, catalogue, before, {"indexes": indexes, "thresholds": thresholds,
                                                       "org_id": org_id}, manifest)


def test_manifest_lists_every_file_with_checksums_counts_and_versions(separate_backup: TakenBackup) -> None:
    manifest = separate_backup.manifest
    listed = {entry["path"] for entry in manifest["files"]}
    on_disk = {p.relative_to(separate_backup.folder).as_posix() for p in separate_backup.folder.rglob("*")
               if p.is_file() and p != separate_backup.folder / "manifest.json"}
    assert listed == on_disk
    assert all(len(entry["sha256"]) == 64 and entry["size"] > 0 for entry in manifest["files"])
    assert "database/catalog.pgdump" in listed
    assert manifest["counts"]["objects"] == 11  # 8 enrolled + 3 identified and stored
    assert manifest["counts"]["tables"]["individuals"] == 4 and manifest["counts"]["tables"]["media"] == 11
    assert manifest["versions"]["alembic_revision"]
    assert manifest["versions"]["embedding_models"]  # e.g. {"finprint_embedder:2": 10}
    [snapshot] = manifest["versions"]["matcher_snapshots"]
    assert snapshot["applied_seq"] >= 1 and snapshot["indexes"]
    assert any(p.startswith("matcher/thresholds/") for p in listed)
    assert manifest["created_at"] <= manifest["finished_at"]


def test_round_trip_on_postgres_and_s3(separate_backup: TakenBackup, postgres_server: PostgresServer,
                                       s3_server: S3Server, tmp_path: Path) -> None:
    with ExitStack() as stack:
        database_url = stack.enter_context(postgres_server.fresh_database())
        env = separate_env(database_url, s3_server, bucket_name())
        done = finprint("restore", str(separate_backup.folder), env=env)
        assert done.returncode == 0, done.stderr
        # The target is no longer empty: a second restore is refused unless forced.
        again = finprint("restore", str(separate_backup.folder), env=env)
        assert again.returncode == REFUSED and "not empty" in again.stderr

        system = stack.enter_context(separate_services(env, tmp_path))
        after = observe(system.gateway_url, separate_backup.catalogue)
        assert_same_catalogue(separate_backup.before, after)
        matcher = system.urls["matcher"]
        # The matcher started from the restored snapshot (then replayed the change made after it).
        assert matcher_snapshot_loads(matcher) == 1
        assert httpx.get(f"{matcher}/v1/indexes").json() == separate_backup.matcher["indexes"]
        org = separate_backup.matcher["org_id"]
        assert httpx.get(f"{matcher}/v1/orgs/{org}/threshold").json() == separate_backup.matcher["thresholds"]

        forced = finprint("restore", "--force", str(separate_backup.folder), env=env)
        assert forced.returncode == 0, forced.stderr


def _flip_one_byte(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("damage", ["image", "database", "matcher snapshot", "manifest", "missing image",
                                    "no manifest"])
def test_a_damaged_backup_is_refused_and_the_target_untouched(
    damage: str, separate_backup: TakenBackup, postgres_server: PostgresServer, s3_server: S3Server,
    tmp_path: Path,
) -> None:
    folder = tmp_path / "backup"
    shutil.copytree(separate_backup.folder, folder)
    files = separate_backup.manifest["files"]
    image = next(e["path"] for e in files if e["kind"] == "object")
    snapshot = next(e["path"] for e in files if e["kind"] == "matcher" and e["path"].endswith(".npz"))
    match damage:
        case "image":
            _flip_one_byte(folder / image)
            expected = f"{image}: checksum mismatch"
        case "database":
            _flip_one_byte(folder / "database/catalog.pgdump")
            expected = "database/catalog.pgdump: checksum mismatch"
        case "matcher snapshot":
            _flip_one_byte(folder / snapshot)
            expected = f"{snapshot}: checksum mismatch"
        case "manifest":
            text = (folder / "manifest.json").read_text()
            (folder / "manifest.json").write_text(text.replace('"objects": 11', '"objects": 12', 1))
            expected = "does not match its own checksum"
        case "missing image":
            (folder / image).unlink()
            expected = f"{image}: missing"
        case _:
            (folder / "manifest.json").unlink()
            expected = "incomplete backup"
    name = bucket_name()
    with postgres_server.fresh_database() as database_url:
        env = separate_env(database_url, s3_server, name)
        done = finprint("restore", str(folder), env=env)
        assert done.returncode == REFUSED, done.stderr
        assert "refused" in done.stderr and expected in done.stderr
        verified = finprint("restore", "--verify-only", str(folder), env=env)
        assert verified.returncode == REFUSED
        assert tables(database_url) == []
    assert list(bucket(s3_server, name).list()) == []


# --- the embedded default: SQLite + a folder --------------------------------------------------------


def test_round_trip_of_the_embedded_default(humpbacks: list[Whale], tmp_path: Path) -> None:
    source, target = tmp_path / "data", tmp_path / "restored"
    # Snapshots within a second of a change, so the backup holds one as a running system would.
    env = {"FINPRINT_MATCHER_SNAPSHOT_INTERVAL_S": "1"}
    with embedded_system(source, tmp_path, env=env) as system:
        catalogue = build_catalogue(system.gateway_url, new_key(["--data-dir", str(source)]), humpbacks)
        deadline = time.monotonic() + 60
        while not list((source / "objects" / "matcher").glob("*/manifest.json")) and time.monotonic() < deadline:
            time.sleep(0.5)
        before = observe(system.gateway_url, catalogue)
        done = finprint("backup", "--data-dir", str(source), "--output", str(tmp_path / "backup"))
        assert done.returncode == 0, done.stderr
    manifest = json.loads((tmp_path / "backup" / "manifest.json").read_text())
    assert {e["path"] for e in manifest["files"] if e["kind"] == "database"} == {"database/catalog.sqlite"}
    assert manifest["counts"]["objects"] == 10 and manifest["counts"]["matcher_objects"] >= 2

    done = finprint("restore", str(tmp_path / "backup"), "--data-dir", str(target))
    assert done.returncode == 0, done.stderr
    again = finprint("restore", str(tmp_path / "backup"), "--data-dir", str(target))
    assert again.returncode == REFUSED and "not empty" in again.stderr
    (tmp_path / "restored-logs").mkdir()
    with embedded_system(target, tmp_path / "restored-logs", env=env) as system:
        after = observe(system.gateway_url, catalogue)
    assert_same_catalogue(before, after)
