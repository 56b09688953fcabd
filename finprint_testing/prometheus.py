"""A real Prometheus server (Debian's ``prometheus``) scraping given targets on 127.0.0.1.

pytest plugin: the ``prometheus_server`` factory fixture; ``start_prometheus`` for scripts.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from finprint_testing.processes import ServerProcess, free_port


@dataclass
class PrometheusServer:
    url: str
    process: ServerProcess

    def query(self, promql: str) -> list[dict[str, Any]]:
        response = httpx.get(f"{self.url}/api/v1/query", params={"query": promql}, timeout=5.0)
        response.raise_for_status()
        return response.json()["data"]["result"]

    def targets(self) -> list[dict[str, Any]]:
        return httpx.get(f"{self.url}/api/v1/targets", timeout=5.0).json()["data"]["activeTargets"]


def _config(targets: Sequence[str], interval_ms: int) -> str:
    listed = ", ".join(f'"{t}"' for t in targets)
    return (
        f"global:\n  scrape_interval: {interval_ms}ms\n  evaluation_interval: {interval_ms}ms\n"
        f"scrape_configs:\n  - job_name: finprint\n    static_configs:\n      - targets: [{listed}]\n"
    )


@contextmanager
def start_prometheus(targets: Sequence[str], interval_ms: int = 500, timeout_s: float = 30.0) -> Iterator[PrometheusServer]:
    binary = shutil.which("prometheus")
    if binary is None:
        raise RuntimeError("prometheus is not installed: run scripts/install-system-packages.sh")
    with tempfile.TemporaryDirectory(prefix="finprint-prometheus-") as tmp:
        workdir = Path(tmp)
        (workdir / "prometheus.yml").write_text(_config(targets, interval_ms))
        port = free_port()
        process = ServerProcess(
            "prometheus",
            [binary, f"--config.file={workdir / 'prometheus.yml'}", f"--storage.tsdb.path={workdir / 'data'}",
             f"--web.listen-address=127.0.0.1:{port}"],
            workdir / "prometheus.log",
        )
        url = f"http://127.0.0.1:{port}"
        try:
            process.wait_ready(lambda: httpx.get(f"{url}/-/ready", timeout=1.0).status_code == 200, timeout_s)
            yield PrometheusServer(url, process)
        finally:
            process.stop()


@pytest.fixture
def prometheus_server():
    """Factory: ``with prometheus_server(["127.0.0.1:8000"]) as prom: ...``."""
    return start_prometheus
