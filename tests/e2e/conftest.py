"""The whole system as real processes, two ways: the embedded default, and the five services as
separate uvicorn processes on PostgreSQL + the S3 server. Both are driven through the typed client."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from finprint_testing.postgres import PostgresServer
from finprint_testing.s3 import S3Server
from finprint_testing.system import RunningSystem, embedded_system, separate_services
from tests.photos import individuals_with


@dataclass
class Deployment:
    system: RunningSystem
    new_key: "KeyMaker"

    @property
    def url(self) -> str:
        return self.system.gateway_url


class KeyMaker:
    """``finprint apikey create`` run as a user would, against the deployment's own database."""

    def __init__(self, args: list[str]) -> None:
        self.args = args

    def __call__(self, org: str, role: str) -> str:
        result = subprocess.run(
            [sys.executable, "-m", "finprint.cli", "apikey", "create", "--org", org, "--role", role, *self.args],
            capture_output=True, text=True, check=True,
        )
        return result.stdout.strip().splitlines()[-1]


@pytest.fixture(scope="module", params=["embedded", "separate"])
def deployment(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployment]:
    tmp = tmp_path_factory.mktemp(f"system-{request.param}")
    if request.param == "embedded":
        data = tmp / "data"
        with embedded_system(data, tmp) as system:
            yield Deployment(system, KeyMaker(["--data-dir", str(data)]))
        return
    postgres: PostgresServer = request.getfixturevalue("postgres_server")
    s3: S3Server = request.getfixturevalue("s3_server")
    with postgres.fresh_database() as database_url:
        bucket = f"e2e-{tmp.name.lower().replace('_', '-')}"[:60]
        storage = {"OBJECT_STORE": "s3", "S3_ENDPOINT": s3.endpoint, "S3_ACCESS_KEY": s3.access_key,
                   "S3_SECRET_KEY": s3.secret_key, "S3_BUCKET": bucket, "S3_SECURE": "false"}
        env = {"FINPRINT_CATALOG_DATABASE_URL": database_url, "FINPRINT_CATALOG_AUTO_MIGRATE": "true",
               "FINPRINT_GATEWAY_JWT_SECRET": "e2e-secret-" + "x" * 32,
               **{f"FINPRINT_CATALOG_{k}": v for k, v in storage.items()},
               **{f"FINPRINT_MATCHER_{k}": v for k, v in storage.items()}}
        with separate_services(env, tmp) as system:
            yield Deployment(system, KeyMaker(["--database-url", database_url]))


@dataclass(frozen=True)
class Whale:
    code: str
    photos: list[Path]


@pytest.fixture(scope="session")
def humpbacks(shared_data: Path) -> list[Whale]:
    """Six humpbacks with at least three photos each (deterministic choice)."""
    return [Whale(f"HW-{n}", paths) for n, paths in enumerate(individuals_with(shared_data, photos=3, count=6))]
