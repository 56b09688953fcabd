"""Backup and restore of a deployment's state: the catalogue database, the object store's objects
and the matcher's snapshots, with ONE manifest of checksums.

    finprint backup --output DIR [--data-dir D | --database-url URL]
    finprint restore DIR [--data-dir D | --database-url URL] [--force] [--verify-only]

Where the state is comes from the services' own settings (``FINPRINT_CATALOG_DATABASE_URL``, the
``FINPRINT_CATALOG_*`` and ``FINPRINT_MATCHER_*`` object-store fields), or the embedded default's
data directory (``--data-dir``, as ``finprint up``); ``--database-url`` overrides the database.

A backup is a folder::

    manifest.json                  written last: every file below with its sha256 and size, the
                                   counts, the versions, the time; its own checksum
    database/catalog.pgdump        pg_dump --format=custom (PostgreSQL), or
    database/catalog.sqlite        a copy made with SQLite's online backup API (the embedded default)
    objects/<key>                  every object of the catalog's store (images...)
    matcher/<shard>/...            the matcher's snapshots (the objects their manifests name) and
    matcher/thresholds/<org>.json  organisations' threshold overrides, which live nowhere else

It is taken while the system runs, in this order: the matcher's snapshots (so they are never
newer than the database: the matcher replays what came after), the database in one consistent
snapshot (pg_dump ``--snapshot`` of a repeatable-read transaction that also counts the rows; the
SQLite backup API), then the objects (images are stored before the rows that name them commit,
so every row in the dump finds its image). It is written into ``DIR.partial-*`` and renamed to
``DIR`` at the end: an interrupted backup never looks like one.

A restore checks every file against the manifest (presence, size, sha256) and the manifest's own
checksum before it touches anything, and refuses a corrupt or incomplete backup naming the files.
It then refuses a target that is not empty (a database with tables, an object store with
objects) unless ``--force``, writes the objects, the matcher's state and the database last (in
one transaction on PostgreSQL: pg_restore ``--single-transaction``), and checks the restored row
counts and object keys against the manifest. Run it with the services stopped.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import secrets
import shutil
import sqlite3
import subprocess
import sys
import time
from collections.abc import Mapping
from contextlib import closing
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath
from typing import Any

from sqlalchemy.engine import URL, make_url

from finprint.objectstore import (
    ObjectNotFound,
    ObjectStore,
    ObjectStoreSettings,
    object_store_from_settings,
    validate_key,
)

FORMAT = "finprint-backup"
FORMAT_VERSION = 1
MANIFEST = "manifest.json"
MATCHER_PREFIX = "matcher/"
CHUNK = 1 << 20
SNAPSHOT_READ_ATTEMPTS = 5
MIGRATIONS = "services.catalog:migrations"


class BackupError(Exception):
    """A backup that cannot be taken, or a restore refused (corrupt or incomplete backup, non-empty target)."""


# --- where the state is -------------------------------------------------------------------------


@dataclass
class Storage:
    """A deployment's state: the catalogue database and the catalog's and the matcher's object stores."""

    database_url: str
    catalog_store: ObjectStore
    matcher_store: ObjectStore
    description: dict[str, Any] = field(default_factory=dict)

    @property
    def url(self) -> URL:
        return make_url(self.database_url)

    @property
    def engine(self) -> str:
        backend = self.url.get_backend_name()
        if backend not in {"sqlite", "postgresql"}:
            raise BackupError(f"unsupported database {backend!r}: backups cover PostgreSQL and SQLite")
        return backend


def _describe_store(settings: ObjectStoreSettings) -> str:
    if settings.object_store == "s3":
        return f"s3://{settings.s3_endpoint}/{settings.s3_bucket}"
    return f"folder {Path(settings.local_object_dir).resolve()}"


def _settings(service: str, data_dir: Path | None) -> Any:
    """The service's settings from the environment; with ``data_dir``, the embedded default's values
    fill in what the environment leaves unset (as ``finprint up`` does)."""
    from finprint.services import settings_class

    overrides: dict[str, str] = {}
    if data_dir is not None:
        from finprint.embedded import embedded_environment

        prefix = f"FINPRINT_{service.upper()}_"
        for name, value in embedded_environment(data_dir).items():
            if name.startswith(prefix) and name not in os.environ:
                overrides[name[len(prefix):].lower()] = value
    return settings_class(service)(**overrides)


def storage_from_settings(data_dir: Path | None = None, database_url: str | None = None) -> Storage:
    catalog = _settings("catalog", data_dir)
    matcher = _settings("matcher", data_dir)
    url = database_url or catalog.database_url
    catalog_store = object_store_from_settings(catalog)
    same = _describe_store(catalog) == _describe_store(matcher)
    matcher_store = catalog_store if same else object_store_from_settings(matcher)
    return Storage(
        url,
        catalog_store,
        matcher_store,
        {
            "database": make_url(url).render_as_string(hide_password=True),
            "catalog_store": _describe_store(catalog),
            "matcher_store": _describe_store(matcher),
        },
    )


# --- files and checksums ------------------------------------------------------------------------


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _canonical(body: Mapping[str, Any]) -> bytes:
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def manifest_checksum(manifest: Mapping[str, Any]) -> str:
    """sha256 of the manifest without its ``checksum`` field (canonical JSON)."""
    return hashlib.sha256(_canonical({k: v for k, v in manifest.items() if k != "checksum"})).hexdigest()


class _Writer:
    """Files of a backup being written, with their entries for the manifest."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.entries: list[dict[str, Any]] = []

    def add_bytes(self, path: str, data: bytes, **entry: Any) -> None:
        target = self.root / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
        self.entries.append({"path": path, "size": len(data), "sha256": hashlib.sha256(data).hexdigest(), **entry})

    def add_file(self, path: str, **entry: Any) -> None:
        target = self.root / path
        self.entries.append({"path": path, "size": target.stat().st_size, "sha256": sha256_file(target), **entry})


def _safe_relative(path: str) -> bool:
    pure = PurePosixPath(path)
    return bool(path) and not pure.is_absolute() and "\\" not in path and all(
        part not in {"", ".", ".."} for part in path.split("/")
    )


# --- databases ------------------------------------------------------------------------------------


def _pg_binary(name: str) -> str:
    found = shutil.which(name)
    if found:
        return found
    candidates = sorted(
        Path("/usr/lib/postgresql").glob(f"*/bin/{name}"), key=lambda p: int(p.parts[-3]) if p.parts[-3].isdigit() else 0
    )
    if candidates:
        return str(candidates[-1])
    raise BackupError(f"{name} not found: install the PostgreSQL client tools (Debian: postgresql-client)")


def _pg_tool_version(name: str) -> str:
    done = subprocess.run([_pg_binary(name), "--version"], capture_output=True, text=True, check=False)
    return done.stdout.strip()


def _libpq(url: URL) -> tuple[str, dict[str, str]]:
    """A libpq connection URI without the password, and the environment that carries it."""
    env = {**os.environ}
    if url.password:
        env["PGPASSWORD"] = str(url.password)
    plain = url.set(drivername="postgresql", password=None)
    return plain.render_as_string(hide_password=False), env


def _pg_connect(url: URL, **kwargs: Any) -> Any:
    import psycopg

    return psycopg.connect(
        host=url.host or None,
        port=url.port or None,
        user=url.username or None,
        password=str(url.password) if url.password else None,
        dbname=url.database,
        connect_timeout=10,
        **{k: v for k, v in url.query.items() if isinstance(v, str)},
        **kwargs,
    )


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _tables(cursor: Any, engine: str) -> list[str]:
    if engine == "sqlite":
        cursor.execute("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'")
    else:
        cursor.execute(
            "SELECT table_name FROM information_schema.tables "
            "WHERE table_schema = current_schema() AND table_type = 'BASE TABLE'"
        )
    return sorted(row[0] for row in cursor.fetchall())


def _database_facts(cursor: Any, engine: str) -> dict[str, Any]:
    """Row counts per table, the Alembic revision and the embedding models of the catalogue."""
    tables = _tables(cursor, engine)
    counts = {}
    for table in tables:
        cursor.execute(f"SELECT count(*) FROM {_quote(table)}")
        counts[table] = int(cursor.fetchone()[0])
    revision = None
    if "alembic_version" in tables:
        cursor.execute("SELECT version_num FROM alembic_version")
        revision = ",".join(sorted(row[0] for row in cursor.fetchall())) or None
    models: dict[str, int] = {}
    if "embeddings" in tables:
        cursor.execute("SELECT model_version, count(*) FROM embeddings GROUP BY model_version")
        models = {str(name): int(n) for name, n in cursor.fetchall()}
    return {"tables": counts, "alembic_revision": revision, "embedding_models": models}


def _sqlite_path(url: URL) -> Path:
    if not url.database or url.database == ":memory:":
        raise BackupError("an in-memory SQLite database cannot be backed up or restored")
    return Path(url.database)


def _dump_sqlite(url: URL, writer: _Writer) -> dict[str, Any]:
    source = _sqlite_path(url)
    if not source.is_file():
        raise BackupError(f"no catalogue database at {source}")
    path = "database/catalog.sqlite"
    target = writer.root / path
    target.parent.mkdir(parents=True, exist_ok=True)
    # The online backup API: a consistent copy while the catalog keeps writing.
    with closing(sqlite3.connect(f"file:{source}?mode=ro", uri=True, timeout=30)) as src, closing(
        sqlite3.connect(target)
    ) as dst:
        src.backup(dst)
        dst.execute("PRAGMA journal_mode=DELETE")  # one self-contained file, no -wal beside it
    with closing(sqlite3.connect(f"file:{target}?mode=ro", uri=True)) as copy:
        facts = _database_facts(copy.cursor(), "sqlite")
    writer.add_file(path, kind="database", engine="sqlite", method="sqlite3 online backup API")
    facts["server"] = f"SQLite {sqlite3.sqlite_version}"
    return facts


def _dump_postgres(url: URL, writer: _Writer) -> dict[str, Any]:
    path = "database/catalog.pgdump"
    target = writer.root / path
    target.parent.mkdir(parents=True, exist_ok=True)
    conninfo, env = _libpq(url)
    with closing(_pg_connect(url)) as connection:
        # One snapshot for the counts and the dump: pg_dump --snapshot sees exactly what we counted.
        connection.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        snapshot = connection.execute("SELECT pg_export_snapshot()").fetchone()[0]
        facts = _database_facts(connection.cursor(), "postgresql")
        facts["server"] = connection.execute("SELECT version()").fetchone()[0].split(" on ")[0]
        done = subprocess.run(
            [_pg_binary("pg_dump"), "--format=custom", f"--snapshot={snapshot}", f"--file={target}",
             f"--dbname={conninfo}"],
            env=env, capture_output=True, text=True, check=False,
        )
        connection.rollback()
    if done.returncode != 0:
        raise BackupError(f"pg_dump failed (exit {done.returncode}): {done.stderr.strip()}")
    writer.add_file(path, kind="database", engine="postgresql", method="pg_dump --format=custom",
                    tool=_pg_tool_version("pg_dump"))
    return facts


def _database_is_empty(storage: Storage) -> bool:
    url = storage.url
    if storage.engine == "sqlite":
        path = _sqlite_path(url)
        if not path.exists():
            return True
        with closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as connection:
            return not _tables(connection.cursor(), "sqlite")
    with closing(_pg_connect(url, autocommit=True)) as connection:
        return not _tables(connection.cursor(), "postgresql")


def _restore_sqlite(url: URL, file: Path) -> None:
    target = _sqlite_path(url)
    target.parent.mkdir(parents=True, exist_ok=True)
    with closing(sqlite3.connect(f"file:{file}?mode=ro", uri=True)) as src, closing(
        sqlite3.connect(target, timeout=30)
    ) as dst:
        src.backup(dst)  # replaces the whole target database, in one step


def _restore_postgres(url: URL, file: Path, force: bool) -> None:
    conninfo, env = _libpq(url)
    argv = [_pg_binary("pg_restore"), "--exit-on-error", "--single-transaction", "--no-owner", "--no-privileges"]
    if force:
        argv += ["--clean", "--if-exists"]
    done = subprocess.run([*argv, f"--dbname={conninfo}", str(file)], env=env, capture_output=True, text=True,
                          check=False)
    if done.returncode != 0:
        raise BackupError(f"pg_restore failed (exit {done.returncode}), nothing was restored: {done.stderr.strip()}")


def _restored_facts(storage: Storage) -> dict[str, Any]:
    if storage.engine == "sqlite":
        with closing(sqlite3.connect(f"file:{_sqlite_path(storage.url)}?mode=ro", uri=True)) as connection:
            return _database_facts(connection.cursor(), "sqlite")
    with closing(_pg_connect(storage.url, autocommit=True)) as connection:
        return _database_facts(connection.cursor(), "postgresql")


def known_revisions() -> set[str]:
    """The Alembic revisions this code's migrations know."""
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    config = Config()
    config.set_main_option("script_location", MIGRATIONS)
    return {script.revision for script in ScriptDirectory.from_config(config).walk_revisions()}


# --- objects and the matcher's snapshots --------------------------------------------------------


def _copy_objects(store: ObjectStore, writer: _Writer) -> int:
    count = 0
    for key in store.list():
        if key.startswith(MATCHER_PREFIX):
            continue  # the matcher's, taken from its own store
        try:
            data, content_type = store.get(key), store.content_type(key)
        except ObjectNotFound:
            continue  # deleted while we listed (its row went with it, before the dump)
        writer.add_bytes(f"objects/{key}", data, kind="object", key=key, content_type=content_type)
        count += 1
    return count


def _copy_matcher_state(store: ObjectStore, writer: _Writer) -> list[dict[str, Any]]:
    """Each shard's current snapshot (its manifest and the objects it names) and the threshold
    overrides. A snapshot replaced while it is read (its objects deleted) is read again."""
    keys = list(store.list(MATCHER_PREFIX))
    snapshots = []
    for key in keys:
        if key.startswith(MATCHER_PREFIX + "thresholds/"):
            try:
                writer.add_bytes(key, store.get(key), kind="matcher", key=key,
                                 content_type=store.content_type(key))
            except ObjectNotFound:
                pass
        elif key.count("/") == 2 and key.endswith("/manifest.json"):
            snapshot = _copy_snapshot(store, key, writer)
            if snapshot is not None:
                snapshots.append(snapshot)
    return snapshots


def _copy_snapshot(store: ObjectStore, manifest_key: str, writer: _Writer) -> dict[str, Any] | None:
    for _attempt in range(SNAPSHOT_READ_ATTEMPTS):
        try:
            raw = store.get(manifest_key)
            manifest = json.loads(raw)
            parts = [(entry["object"], store.get(entry["object"])) for entry in manifest["indexes"]]
        except ObjectNotFound:
            continue  # a newer snapshot replaced this one meanwhile: read the new manifest
        for key, data in parts:
            validate_key(key)
            writer.add_bytes(key, data, kind="matcher", key=key, content_type="application/octet-stream")
        writer.add_bytes(manifest_key, raw, kind="matcher", key=manifest_key, content_type="application/json")
        return {
            "shard": manifest_key.split("/")[1],
            "applied_seq": manifest.get("applied_seq"),
            "format": manifest.get("format"),
            "indexes": [{**entry["key"], "size": entry.get("size")} for entry in manifest["indexes"]],
        }
    raise BackupError(f"the matcher's snapshot {manifest_key} kept changing while it was read")


# --- versions -----------------------------------------------------------------------------------


def _served_models() -> dict[str, str]:
    """The models this machine's detector and embedder settings point at (name: version)."""
    from finprint.model_repository import locate_model
    from finprint.services import settings_class

    models = {}
    for service, name in (("detector", "finprint_detector"), ("embedder", "finprint_embedder")):
        try:
            settings = settings_class(service)()
            files = locate_model(settings.model_repository, name, settings.model_version)
            models[name] = files.version
        except (FileNotFoundError, ImportError, ValueError) as exc:
            models[name] = f"unknown ({type(exc).__name__})"
    return models


def _finprint_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("finprint")
    except PackageNotFoundError:
        return "unknown"


# --- backup -------------------------------------------------------------------------------------


def backup(storage: Storage, output: Path, log: Any = None) -> dict[str, Any]:
    """Write a backup of ``storage`` to the folder ``output`` (which must not exist); its manifest."""
    say = log or (lambda message: None)
    output = Path(output)
    if output.exists() and (not output.is_dir() or any(output.iterdir())):
        raise BackupError(f"{output} already exists: a backup goes into a new folder")
    if storage.engine == "sqlite" and not _sqlite_path(storage.url).is_file():
        raise BackupError(f"no catalogue database at {_sqlite_path(storage.url)}")
    output.parent.mkdir(parents=True, exist_ok=True)
    partial = output.parent / f"{output.name}.partial-{secrets.token_hex(4)}"
    partial.mkdir()
    writer = _Writer(partial)
    started = datetime.now(UTC)
    clock = time.monotonic()
    try:
        snapshots = _copy_matcher_state(storage.matcher_store, writer)
        say(f"matcher: {len(snapshots)} snapshot(s), {len(writer.entries)} object(s)")
        if storage.engine == "sqlite":
            facts = _dump_sqlite(storage.url, writer)
        else:
            facts = _dump_postgres(storage.url, writer)
        say(f"database: {facts['server']}, revision {facts['alembic_revision']}, "
            f"{sum(facts['tables'].values())} rows in {len(facts['tables'])} tables")
        objects = _copy_objects(storage.catalog_store, writer)
        say(f"objects: {objects}")
        kinds = {kind: [e for e in writer.entries if e["kind"] == kind] for kind in ("database", "object", "matcher")}
        manifest: dict[str, Any] = {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "created_at": started.isoformat(),
            "finished_at": datetime.now(UTC).isoformat(),
            "seconds": round(time.monotonic() - clock, 3),
            "source": storage.description,
            "versions": {
                "finprint": _finprint_version(),
                "alembic_revision": facts["alembic_revision"],
                "database_server": facts["server"],
                "embedding_models": facts["embedding_models"],
                "served_models": _served_models(),
                "matcher_snapshots": snapshots,
            },
            "counts": {
                "tables": facts["tables"],
                "files": len(writer.entries),
                "bytes": sum(e["size"] for e in writer.entries),
                "objects": len(kinds["object"]),
                "object_bytes": sum(e["size"] for e in kinds["object"]),
                "matcher_objects": len(kinds["matcher"]),
            },
            "files": sorted(writer.entries, key=lambda e: e["path"]),
        }
        manifest["checksum"] = manifest_checksum(manifest)
        (partial / MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
        if output.exists():
            output.rmdir()
        partial.rename(output)
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    return manifest


# --- verification and restore -------------------------------------------------------------------


def verify(folder: Path) -> dict[str, Any]:
    """The manifest of a whole, intact backup; raises :class:`BackupError` naming what is wrong."""
    folder = Path(folder)
    path = folder / MANIFEST
    if not folder.is_dir():
        raise BackupError(f"{folder} is not a backup folder")
    if not path.is_file():
        raise BackupError(f"incomplete backup: {folder} has no {MANIFEST} (a backup writes it last)")
    try:
        manifest = json.loads(path.read_text())
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BackupError(f"corrupt backup: {MANIFEST} is not valid JSON ({exc})") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise BackupError(f"{path} is not a Finprint backup manifest")
    if manifest.get("checksum") != manifest_checksum(manifest):
        raise BackupError(f"corrupt backup: {MANIFEST} does not match its own checksum")
    if manifest.get("format_version") != FORMAT_VERSION:
        raise BackupError(
            f"backup format {manifest.get('format_version')} is not the one this finprint reads ({FORMAT_VERSION})"
        )
    problems = []
    for entry in manifest["files"]:
        name = entry["path"]
        file = folder / name
        if not _safe_relative(name):
            problems.append(f"{name}: a path outside the backup")
        elif not file.is_file():
            problems.append(f"{name}: missing")
        elif file.stat().st_size != entry["size"]:
            problems.append(f"{name}: {file.stat().st_size} bytes, the manifest says {entry['size']}")
        elif sha256_file(file) != entry["sha256"]:
            problems.append(f"{name}: checksum mismatch")
    databases = [e for e in manifest["files"] if e["kind"] == "database"]
    if len(databases) != 1:
        problems.append(f"the manifest lists {len(databases)} database files, not one")
    if problems:
        shown = "; ".join(problems[:10]) + (f"; and {len(problems) - 10} more" if len(problems) > 10 else "")
        raise BackupError(f"corrupt or incomplete backup ({len(problems)} problem(s)): {shown}")
    return manifest


def _target_contents(storage: Storage) -> list[str]:
    found = []
    if not _database_is_empty(storage):
        found.append(f"the database {storage.description.get('database')} has tables")
    if next(iter(storage.catalog_store.list()), None) is not None:
        found.append(f"the object store {storage.description.get('catalog_store')} has objects")
    if storage.matcher_store is not storage.catalog_store and next(
        iter(storage.matcher_store.list(MATCHER_PREFIX)), None
    ) is not None:
        found.append(f"the matcher's store {storage.description.get('matcher_store')} has snapshots")
    return found


def restore(folder: Path, storage: Storage, *, force: bool = False, log: Any = None,
            verified: dict[str, Any] | None = None) -> dict[str, Any]:
    """Restore the backup in ``folder`` into ``storage``; the manifest. ``verified``: the manifest
    :func:`verify` has just returned for this folder (else it is verified here first)."""
    say = log or (lambda message: None)
    folder = Path(folder)
    manifest = verified or verify(folder)
    say(f"backup verified: {manifest['counts']['files']} files, {manifest['counts']['bytes']} bytes, "
        f"taken {manifest['created_at']}")
    [database] = [e for e in manifest["files"] if e["kind"] == "database"]
    if database["engine"] != storage.engine:
        raise BackupError(
            f"the backup holds a {database['engine']} database and the target is {storage.engine}"
        )
    revision = manifest["versions"].get("alembic_revision")
    if revision and not set(revision.split(",")) <= known_revisions():
        raise BackupError(
            f"the backup's schema revision {revision} is unknown to this finprint (a newer version took it): "
            "upgrade finprint first"
        )
    found = _target_contents(storage)
    if found and not force:
        raise BackupError("the target is not empty (" + "; ".join(found) + "): restore into an empty database "
                          "and object store, or pass --force to overwrite")
    objects = [e for e in manifest["files"] if e["kind"] == "object"]
    for entry in objects:
        storage.catalog_store.put(entry["key"], (folder / entry["path"]).read_bytes(), entry["content_type"])
    say(f"objects restored: {len(objects)}")
    if force:  # the matcher's state is derived: another history's snapshots must not survive
        for key in list(storage.matcher_store.list(MATCHER_PREFIX)):
            storage.matcher_store.delete(key)
    matcher = [e for e in manifest["files"] if e["kind"] == "matcher"]
    # Snapshot objects before the manifests that name them (as the matcher writes them).
    for entry in sorted(matcher, key=lambda e: e["key"].endswith("/manifest.json")):
        storage.matcher_store.put(entry["key"], (folder / entry["path"]).read_bytes(), entry["content_type"])
    say(f"matcher objects restored: {len(matcher)}")
    if storage.engine == "sqlite":
        _restore_sqlite(storage.url, folder / database["path"])
    else:
        _restore_postgres(storage.url, folder / database["path"], force)
    facts = _restored_facts(storage)
    if facts["tables"] != manifest["counts"]["tables"]:
        differ = sorted(
            t for t in {*facts["tables"], *manifest["counts"]["tables"]}
            if facts["tables"].get(t) != manifest["counts"]["tables"].get(t)
        )
        raise BackupError(f"restored row counts differ from the backup's in {', '.join(differ)}")
    present = set(storage.catalog_store.list()) | set(storage.matcher_store.list(MATCHER_PREFIX))
    absent = [e["key"] for e in objects + matcher if e["key"] not in present]
    if absent:
        raise BackupError(f"{len(absent)} object(s) missing after the restore, e.g. {absent[0]}")
    say(f"database restored: revision {facts['alembic_revision']}, {sum(facts['tables'].values())} rows "
        f"in {len(facts['tables'])} tables, counts equal to the backup's")
    return manifest


# --- the CLI ------------------------------------------------------------------------------------


def _storage(args: argparse.Namespace) -> Storage:
    return storage_from_settings(Path(args.data_dir) if args.data_dir else None, args.database_url)


def _err(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _cmd_backup(args: argparse.Namespace) -> int:
    try:
        manifest = backup(_storage(args), Path(args.output), log=_err)
    except BackupError as exc:
        _err(f"finprint backup: {exc}")
        return 2
    counts = manifest["counts"]
    print(f"backup written to {args.output}: {counts['files']} files, {counts['bytes']} bytes "
          f"({counts['objects']} objects, {counts['matcher_objects']} matcher objects, "
          f"{sum(counts['tables'].values())} database rows), revision {manifest['versions']['alembic_revision']}")
    return 0


def _cmd_restore(args: argparse.Namespace) -> int:
    try:
        # Verified before the target is even opened (opening a local store creates its folder).
        manifest = verify(Path(args.backup))
        if args.verify_only:
            print(f"{args.backup}: intact ({manifest['counts']['files']} files, taken {manifest['created_at']})")
            return 0
        manifest = restore(Path(args.backup), _storage(args), force=args.force, log=_err, verified=manifest)
    except BackupError as exc:
        _err(f"finprint restore: refused: {exc}")
        return 2
    print(f"restored {args.backup} (taken {manifest['created_at']}); start the services on it")
    return 0


def _location(parser: argparse.ArgumentParser) -> None:
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--data-dir", default=None, help="the embedded default's data directory (finprint up)")
    group.add_argument("--database-url", default=None, help="default: FINPRINT_CATALOG_DATABASE_URL")


def add_commands(subparsers: argparse._SubParsersAction) -> None:
    take = subparsers.add_parser(
        "backup", help="back up the catalogue database, the object store and the matcher's snapshots"
    )
    take.add_argument("--output", required=True, help="a new folder for the backup")
    _location(take)
    take.set_defaults(func=_cmd_backup)

    back = subparsers.add_parser("restore", help="restore a backup into an empty database and object store")
    back.add_argument("backup", help="the backup folder (finprint backup --output)")
    back.add_argument("--force", action="store_true", help="overwrite a target that is not empty")
    back.add_argument("--verify-only", action="store_true", help="check the backup's checksums and stop")
    _location(back)
    back.set_defaults(func=_cmd_restore)
