"""Run Finprint as real processes: the embedded default, or the five services separately.

Used by the end-to-end tests and the benchmarks; every process listens on 127.0.0.1 only and
is stopped by PID.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator, Mapping
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

from finprint.services import BUILD_ORDER, SERVICES
from finprint_testing.processes import ServerProcess, free_port


def ready(url: str) -> bool:
    """The service (or ``finprint up``) at ``url`` answers 200 on ``/readyz``."""
    return httpx.get(f"{url}/readyz", timeout=2.0).status_code == 200


def service_addresses() -> tuple[dict[str, int], dict[str, str]]:
    """A free port of 127.0.0.1 for each service, and its URL."""
    ports = {name: free_port() for name in SERVICES}
    return ports, {name: f"http://127.0.0.1:{port}" for name, port in ports.items()}


def peer_wiring(urls: Mapping[str, str]) -> dict[str, str]:
    """The settings that point the gateway and the matcher at the other services."""
    return {
        "FINPRINT_GATEWAY_DETECTOR_URL": urls["detector"],
        "FINPRINT_GATEWAY_EMBEDDER_URL": urls["embedder"],
        "FINPRINT_GATEWAY_MATCHER_URL": urls["matcher"],
        "FINPRINT_GATEWAY_CATALOG_URL": urls["catalog"],
        "FINPRINT_MATCHER_CATALOG_URL": urls["catalog"],
    }


def serve_argv(name: str, port: int) -> list[str]:
    """``finprint serve`` of one service on 127.0.0.1:``port``, with this interpreter."""
    return [sys.executable, "-m", "finprint.cli", "serve", name, "--host", "127.0.0.1", "--port", str(port)]


@dataclass
class RunningSystem:
    gateway_url: str
    urls: dict[str, str]
    processes: dict[str, ServerProcess]


@contextmanager
def embedded_system(data_dir: Path, log_dir: Path, env: Mapping[str, str] | None = None,
                    timeout_s: float = 120.0) -> Iterator[RunningSystem]:
    """``finprint up`` in a child process on a free port."""
    port = free_port()
    process = ServerProcess(
        "finprint-up",
        [sys.executable, "-m", "finprint.cli", "up", "--host", "127.0.0.1", "--port", str(port),
         "--data-dir", str(data_dir)],
        log_dir / "finprint-up.log",
        env={**os.environ, **(env or {})},
    )
    url = f"http://127.0.0.1:{port}"
    try:
        process.wait_ready(lambda: ready(url), timeout_s)
        yield RunningSystem(url, {"gateway": url}, {"gateway": process})
    finally:
        process.stop()


@contextmanager
def separate_services(env: Mapping[str, str], log_dir: Path, timeout_s: float = 120.0) -> Iterator[RunningSystem]:
    """The five services as separate uvicorn processes wired by their URL settings.

    ``env`` carries the storage settings (database URL, object store); peer URLs are added here.
    """
    ports, urls = service_addresses()
    full_env = {**os.environ, **peer_wiring(urls), **env}
    with ExitStack() as stack:
        processes: dict[str, ServerProcess] = {}
        for name in BUILD_ORDER:
            process = ServerProcess(name, serve_argv(name, ports[name]), log_dir / f"{name}.log", env=full_env)
            stack.callback(process.stop)
            processes[name] = process
        for name, process in processes.items():
            process.wait_ready(lambda u=urls[name]: ready(u), timeout_s)
        yield RunningSystem(urls["gateway"], urls, processes)
