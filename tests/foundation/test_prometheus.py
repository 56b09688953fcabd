"""Operations scrape /metrics with a real Prometheus: the metrics must be scrapeable and useful."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import httpx
import pytest

from finprint_testing.prometheus import start_prometheus
from finprint_testing.system import embedded_system

pytestmark = [pytest.mark.servers, pytest.mark.slow]
REPO = Path(__file__).resolve().parents[2]


def test_deployed_prometheus_config_is_valid() -> None:
    result = subprocess.run(["promtool", "check", "config", str(REPO / "deploy/prometheus/prometheus.yml")],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_alert_rules_fire_as_their_unit_tests_expect() -> None:
    # The rule tests feed series (a service down, 10% of identify requests failing, a lagging matcher)
    # and state which alerts must fire, with which labels and text, and which must not.
    result = subprocess.run(["promtool", "test", "rules", str(REPO / "deploy/prometheus/alerts_test.yml")],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_prometheus_scrapes_request_metrics_by_route_and_status(tmp_path: Path) -> None:
    with embedded_system(tmp_path / "data", tmp_path) as system:
        for _ in range(3):
            httpx.get(f"{system.gateway_url}/readyz")
        httpx.get(f"{system.gateway_url}/no-such-page")
        target = system.gateway_url.removeprefix("http://")
        with start_prometheus([target]) as prometheus:
            deadline = time.monotonic() + 30
            series: list = []
            while time.monotonic() < deadline and not series:
                series = prometheus.query('finprint_http_requests_total{route="/readyz",status="200"}')
                time.sleep(0.5)
            assert series, prometheus.targets()
            assert float(series[0]["value"][1]) >= 3
            assert series[0]["metric"]["service"] == "gateway"
            missing = prometheus.query('finprint_http_requests_total{route="unmatched",status="404"}')
            assert missing and float(missing[0]["value"][1]) >= 1
            # The process figures operations dashboards need: what the service costs in CPU and memory.
            cpu = prometheus.query("process_cpu_seconds_total")
            assert cpu and float(cpu[0]["value"][1]) > 0
            memory = prometheus.query("process_resident_memory_bytes")
            assert memory and float(memory[0]["value"][1]) > 10 * 1024 * 1024
