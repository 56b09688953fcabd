"""The real-server fixtures answer: PostgreSQL (machine server or private cluster) and S3 (weed mini)."""

from __future__ import annotations

import io

import psycopg
import pytest
from minio import Minio

from finprint_testing.postgres import PostgresServer, _private_cluster, start_postgres
from finprint_testing.processes import port_open
from finprint_testing.s3 import S3Server, start_s3_server

pytestmark = pytest.mark.servers


def _plain(url: str) -> str:
    return url.replace("postgresql+psycopg://", "postgresql://")


def test_postgres_url_is_a_database_of_this_run(postgres_url: str) -> None:
    with psycopg.connect(_plain(postgres_url)) as connection:
        name = connection.execute("SELECT current_database()").fetchone()[0]
        assert name.startswith("finprint_test_") and postgres_url.endswith("/" + name)
        assert connection.execute("SELECT current_user").fetchone()[0] == "postgres"
        connection.execute("CREATE TEMPORARY TABLE probe (id int)")


def test_fresh_database_is_dropped_afterwards(postgres_server: PostgresServer) -> None:
    with postgres_server.fresh_database() as url:
        name = url.rsplit("/", 1)[1]
        with psycopg.connect(_plain(url)) as connection:  # an open connection does not block the drop
            connection.execute("SELECT 1")
    with psycopg.connect(
        host=postgres_server.host, port=postgres_server.port, user=postgres_server.user, dbname="postgres"
    ) as admin:
        exists = admin.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone()
    assert exists is None


@pytest.mark.slow
def test_private_cluster_starts_answers_and_stops() -> None:
    """The fallback when no server answers on 5432: initdb + postgres on a free port."""
    with _private_cluster() as server:
        assert server.port != 5432
        with server.fresh_database() as url, psycopg.connect(_plain(url)) as connection:
            assert connection.execute("SHOW fsync").fetchone()[0] == "off"
    assert not server.answers()


def test_start_postgres_prefers_the_machine_server() -> None:
    with start_postgres() as server:
        assert server.answers()


def test_s3_server_answers_with_its_credentials(s3_server: S3Server) -> None:
    client = Minio(
        s3_server.endpoint, access_key=s3_server.access_key, secret_key=s3_server.secret_key, secure=False
    )
    client.make_bucket("fixture-probe")
    client.put_object("fixture-probe", "hello.txt", io.BytesIO(b"hello"), 5)
    assert client.get_object("fixture-probe", "hello.txt").read() == b"hello"
    assert s3_server.endpoint.startswith("127.0.0.1:")


def test_two_s3_servers_run_side_by_side_and_stop(s3_server: S3Server) -> None:
    with start_s3_server() as second:
        assert second.endpoint != s3_server.endpoint
        client = Minio(
            second.endpoint, access_key=second.access_key, secret_key=second.secret_key, secure=False
        )
        assert client.list_buckets() == []
    assert not port_open(int(second.endpoint.rsplit(":", 1)[1]))
