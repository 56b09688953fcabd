"""The system as real processes: the embedded default and each service served alone."""

from __future__ import annotations

import json
import signal
from pathlib import Path

import httpx
import pytest

from finprint.services import SERVICES
from finprint_testing.system import embedded_system, separate_services

pytestmark = [pytest.mark.slow]


def test_embedded_default_is_ready_passes_request_ids_and_stops_cleanly(tmp_path: Path) -> None:
    with embedded_system(tmp_path / "data", tmp_path) as system:
        response = httpx.get(f"{system.gateway_url}/readyz", headers={"X-Request-ID": "trace-me-42"})
        assert response.status_code == 200
        body = response.json()
        assert body["ready"] is True
        assert set(body["checks"]) == {"detector", "embedder", "matcher", "catalog"}
        assert all(check["ready"] for check in body["checks"].values())
        process = system.processes["gateway"]
        process.proc.send_signal(signal.SIGINT)
        assert process.proc.wait(30) == 0
    log = [json.loads(line) for line in (tmp_path / "finprint-up.log").read_text().splitlines()
           if line.startswith("{")]
    traced = {entry.get("service") for entry in log if entry.get("request_id") == "trace-me-42"}
    assert traced == set(SERVICES)
    assert any(entry.get("msg") == "stopped cleanly" for entry in log)
    assert (tmp_path / "data" / "finprint.db").exists()


def test_each_service_runs_alone_as_its_own_process(tmp_path: Path) -> None:
    env = {
        "FINPRINT_CATALOG_DATABASE_URL": f"sqlite:///{tmp_path / 'catalog.db'}",
        "FINPRINT_CATALOG_OBJECT_STORE": "local",
        "FINPRINT_CATALOG_LOCAL_OBJECT_DIR": str(tmp_path / "objects"),
        "FINPRINT_CATALOG_AUTO_MIGRATE": "true",
        "FINPRINT_MATCHER_OBJECT_STORE": "local",
        "FINPRINT_MATCHER_LOCAL_OBJECT_DIR": str(tmp_path / "objects"),
    }
    with separate_services(env, tmp_path) as system:
        for name, url in system.urls.items():
            health = httpx.get(f"{url}/healthz").json()
            assert health["service"] == name
            assert "finprint_http_requests_total" in httpx.get(f"{url}/metrics").text
        gateway_ready = httpx.get(f"{system.gateway_url}/readyz").json()
        assert gateway_ready["ready"] is True
        # Stop the matcher: the gateway must report which service is not ready.
        system.processes["matcher"].stop()
        response = httpx.get(f"{system.gateway_url}/readyz")
        assert response.status_code == 503
        assert response.json()["checks"]["matcher"]["ready"] is False
        assert response.json()["checks"]["catalog"]["ready"] is True
