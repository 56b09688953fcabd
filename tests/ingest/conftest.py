"""Bulk ingestion against the system as real processes: manifests of real photos, real workers."""

from __future__ import annotations

import csv
import json
import os
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from finprint_testing.processes import ServerProcess
from finprint_testing.system import RunningSystem
from tests.photos import labelled_photos

MANIFEST_COLUMNS = ["image", "observed_at", "latitude", "longitude", "location", "observer", "species",
                    "individual_id"]


@dataclass(frozen=True)
class Manifest:
    path: Path
    images: Path
    rows: list[dict[str, str]]

    @property
    def keys(self) -> list[str]:
        return [row["image"] for row in self.rows]


def write_manifest(folder: Path, rows: list[dict[str, str]], sources: Mapping[str, Path | bytes]) -> Manifest:
    """A manifest and its images folder (links to the shared photos, or the given bytes)."""
    images = folder / "images"
    images.mkdir(parents=True)
    for name, source in sources.items():
        (images / name).parent.mkdir(parents=True, exist_ok=True)
        if isinstance(source, Path):
            (images / name).symlink_to(source)
        else:
            (images / name).write_bytes(source)
    path = folder / "manifest.csv"
    with open(path, "w", newline="") as handle:
        writer = csv.DictWriter(handle, MANIFEST_COLUMNS)
        writer.writeheader()
        writer.writerows(rows)
    return Manifest(path, images, rows)


@pytest.fixture(scope="session")
def humpback_photos(shared_data: Path) -> tuple[dict[str, list[Path]], list[Path]]:
    """Photos of named humpbacks by individual, and photos of unnamed ones (deterministic order)."""
    return labelled_photos(shared_data)


def run_ingest_cli(manifest: Manifest, url: str, api_key: str, *extra: str, timeout_s: float = 600) -> dict:
    """``finprint ingest`` as a user runs it; returns its last line, which must be one JSON object."""
    result = subprocess.run(
        [sys.executable, "-m", "finprint.cli", "ingest", "--manifest", str(manifest.path), "--images",
         str(manifest.images), "--url", url, "--api-key", api_key, "--poll-s", "0.5", *extra],
        capture_output=True, text=True, timeout=timeout_s, check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


def worker_env(system: RunningSystem, **settings: str) -> dict[str, str]:
    """A worker reaches the four services by the gateway's URL settings, like the gateway itself."""
    urls = system.urls
    return {**os.environ,
            "FINPRINT_GATEWAY_DETECTOR_URL": urls["detector"], "FINPRINT_GATEWAY_EMBEDDER_URL": urls["embedder"],
            "FINPRINT_GATEWAY_MATCHER_URL": urls["matcher"], "FINPRINT_GATEWAY_CATALOG_URL": urls["catalog"],
            **{f"FINPRINT_GATEWAY_{k.upper()}": v for k, v in settings.items()}}


@pytest.fixture
def start_worker(tmp_path: Path) -> Iterator:
    """Start ``finprint worker`` processes (stopped, by PID, at the end)."""
    started: list[ServerProcess] = []

    def start(name: str, job_id: str, env: dict[str, str]) -> ServerProcess:
        process = ServerProcess(name, [sys.executable, "-m", "finprint.cli", "worker", "--job-id", job_id,
                                       "--worker-id", name], tmp_path / f"{name}.log", env=env)
        started.append(process)
        return process

    yield start
    for process in started:
        process.stop()


class RequestGate:
    """A TCP forwarder in front of one service that can stop letting requests through.

    Once :meth:`hold_requests` is called, whatever a client sends is held, neither forwarded nor
    refused: the request's sender waits for an answer that does not come (its connection stays
    open, so it sees no failure to retry or give up on). Answers already under way still reach it.
    A test uses it to know where a process is: a worker whose detector call is held is inside a
    batch, so it cannot be recording that batch's outcomes at the same time.
    """

    def __init__(self, upstream_url: str) -> None:
        upstream = urlsplit(upstream_url)
        self._upstream = (upstream.hostname or "127.0.0.1", upstream.port or 80)
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self._listener.getsockname()[1]}"
        self._holding = threading.Event()
        self._held = threading.Event()
        self._closed = threading.Event()
        self._sockets: list[socket.socket] = [self._listener]
        self._lock = threading.Lock()
        threading.Thread(target=self._accept, name="request-gate", daemon=True).start()

    def hold_requests(self) -> None:
        self._holding.set()

    def wait_until_a_request_is_held(self, timeout_s: float, who: str) -> None:
        if not self._held.wait(timeout_s):
            raise AssertionError(f"{who} sent no request in {timeout_s:.0f} s once the gate held them")

    def close(self) -> None:
        self._closed.set()
        with self._lock:
            for sock in self._sockets:
                sock.close()

    def _track(self, *sockets: socket.socket) -> None:
        with self._lock:
            self._sockets.extend(sockets)

    def _accept(self) -> None:
        while not self._closed.is_set():
            try:
                client, _ = self._listener.accept()
                upstream = socket.create_connection(self._upstream)
            except OSError:
                return
            self._track(client, upstream)
            threading.Thread(target=self._pump, args=(client, upstream, True), daemon=True).start()
            threading.Thread(target=self._pump, args=(upstream, client, False), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket, is_request: bool) -> None:
        try:
            while data := source.recv(65536):
                if is_request and self._holding.is_set():
                    self._held.set()
                    self._closed.wait()  # held until the test ends; the connection stays open
                    return
                sink.sendall(data)
            sink.shutdown(socket.SHUT_WR)  # the end of this direction, passed on
        except OSError:
            pass  # either side went away (the client was killed, or the gate closed)


@pytest.fixture
def request_gate() -> Iterator:
    """Make :class:`RequestGate`s in front of services (closed at the end)."""
    gates: list[RequestGate] = []

    def make(upstream_url: str) -> RequestGate:
        gates.append(RequestGate(upstream_url))
        return gates[-1]

    yield make
    for gate in gates:
        gate.close()
