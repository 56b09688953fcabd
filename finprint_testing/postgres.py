"""A real PostgreSQL for tests and benchmarks, with a fresh database per run.

The machine's server is used when one answers on 127.0.0.1:5432 (trust auth, user postgres);
otherwise a private cluster is created (``initdb``, trust auth, fsync off) and run on a free
port, then stopped by PID. Either way each run gets its own database ``finprint_test_<random>``,
dropped at the end, so parallel runs never see each other's rows.

As a pytest plugin: the session fixture ``postgres_url`` gives a SQLAlchemy URL
(``postgresql+psycopg://postgres@127.0.0.1:5432/finprint_test_...``). From a script::

    with start_postgres() as server, server.fresh_database() as url:
        ...
"""

from __future__ import annotations

import os
import pwd
import secrets
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest

from finprint_testing.processes import ServerProcess, free_port, port_open

MACHINE_PORT = 5432
HOST = "127.0.0.1"
SUPERUSER = "postgres"


@dataclass(frozen=True)
class PostgresServer:
    host: str
    port: int
    user: str = SUPERUSER

    def url(self, database: str) -> str:
        """SQLAlchemy URL (psycopg 3 driver)."""
        return f"postgresql+psycopg://{self.user}@{self.host}:{self.port}/{database}"

    def _admin_connect(self) -> psycopg.Connection:
        return psycopg.connect(
            host=self.host,
            port=self.port,
            user=self.user,
            dbname="postgres",
            autocommit=True,
            connect_timeout=5,
        )

    def answers(self) -> bool:
        try:
            with self._admin_connect() as connection:
                connection.execute("SELECT 1")
            return True
        except psycopg.OperationalError:
            return False

    @contextmanager
    def fresh_database(self) -> Iterator[str]:
        """Create ``finprint_test_<random>``, yield its URL, drop it (with any open connections)."""
        name = f"finprint_test_{secrets.token_hex(6)}"
        with self._admin_connect() as connection:
            connection.execute(f'CREATE DATABASE "{name}"')
        try:
            yield self.url(name)
        finally:
            with self._admin_connect() as connection:
                connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _postgres_binary(name: str) -> str:
    found = shutil.which(name)
    if found:
        return found
    for candidate in sorted(Path("/usr/lib/postgresql").glob(f"*/bin/{name}"), reverse=True):
        return str(candidate)
    raise FileNotFoundError(f"{name} not found: install PostgreSQL or run one on {HOST}:{MACHINE_PORT}")


def _as_postgres_user() -> list[str]:
    """initdb and postgres refuse to run as root: run them as the ``postgres`` account instead."""
    if os.geteuid() != 0:
        return []
    pwd.getpwnam("postgres")  # KeyError when the account does not exist: nothing else would work
    return ["runuser", "-u", "postgres", "--"]


@dataclass(frozen=True)
class Cluster:
    """A cluster initialised in a folder of its own, and the command line that serves it."""

    workdir: Path
    server: PostgresServer
    argv: list[str]


@contextmanager
def initialised_cluster(folder_prefix: str, *settings: str) -> Iterator[Cluster]:
    """``initdb`` in a temporary folder (as the ``postgres`` account when root), and the ``postgres``
    command serving it on a free port of 127.0.0.1, tuned for tests (no fsync) plus ``settings``
    (``name=value``); the folder is removed at the end."""
    workdir = Path(tempfile.mkdtemp(prefix=folder_prefix))
    data_dir = workdir / "data"
    prefix = _as_postgres_user()
    if prefix:
        shutil.chown(workdir, "postgres")
    port = free_port()
    try:
        init = ServerProcess(
            "initdb",
            [*prefix, _postgres_binary("initdb"), "-D", str(data_dir), "-U", SUPERUSER, "--auth=trust", "--no-sync"],
            workdir / "initdb.log",
        )
        if init.proc.wait(120) != 0:
            raise RuntimeError(f"initdb failed:\n{init.log_tail()}")
        init.stop()
        options = [f"listen_addresses={HOST}", "fsync=off", "synchronous_commit=off", "full_page_writes=off",
                   *settings]
        argv = [*prefix, _postgres_binary("postgres"), "-D", str(data_dir), "-p", str(port), "-k", str(workdir),
                *(arg for option in options for arg in ("-c", option))]
        yield Cluster(workdir, PostgresServer(HOST, port), argv)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


@contextmanager
def _private_cluster() -> Iterator[PostgresServer]:
    with initialised_cluster("finprint-pg-") as cluster:
        process = ServerProcess("postgres", cluster.argv, cluster.workdir / "postgres.log")
        try:
            process.wait_ready(cluster.server.answers, timeout_s=60)
            yield cluster.server
        finally:
            process.stop()


@contextmanager
def start_postgres() -> Iterator[PostgresServer]:
    """The machine's PostgreSQL if it answers on 127.0.0.1:5432, else a private cluster."""
    machine = PostgresServer(HOST, MACHINE_PORT)
    if port_open(MACHINE_PORT) and machine.answers():
        yield machine
        return
    with _private_cluster() as server:
        yield server


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    with start_postgres() as server:
        yield server


@pytest.fixture(scope="session")
def postgres_url(postgres_server: PostgresServer) -> Iterator[str]:
    """A database of its own for this test run, dropped at the end."""
    with postgres_server.fresh_database() as url:
        yield url
