"""No Docker engine runs here, so the compose file is checked against the code instead."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from finprint.services import DEFAULT_PORTS, SERVICES
from finprint.settings_doc import env_names

REPO = Path(__file__).resolve().parents[2]
COMPOSE = yaml.safe_load((REPO / "docker-compose.yml").read_text())
COMPOSE_SERVICES = COMPOSE["services"]
SHARED_DOCKERFILE = "services/Dockerfile"


def _built_services() -> dict[str, dict]:
    return {name: spec for name, spec in COMPOSE_SERVICES.items() if "build" in spec}


def test_compose_has_the_infrastructure_and_all_five_services() -> None:
    for name in ("postgres", "minio", "triton", "prometheus", "grafana", *SERVICES):
        assert name in COMPOSE_SERVICES, f"{name} missing from docker-compose.yml"


@pytest.mark.parametrize("name", sorted(_built_services()))
def test_build_context_and_dockerfile_exist(name: str) -> None:
    build = COMPOSE_SERVICES[name]["build"]
    context = REPO / build["context"]
    assert context.is_dir()
    dockerfile = context / build["dockerfile"]
    assert dockerfile.is_file(), f"{dockerfile} missing"
    text = dockerfile.read_text()
    assert re.search(r"^USER\s+(?!root)\S+", text, re.M), f"{dockerfile} must run as a non-root user"
    assert "HEALTHCHECK" in text


@pytest.mark.parametrize("name", SERVICES)
def test_every_env_var_is_a_real_setting(name: str) -> None:
    known = set(env_names(name))
    environment = COMPOSE_SERVICES[name].get("environment", {})
    unknown = sorted(set(environment) - known)
    assert not unknown, f"{name} sets variables no setting reads: {unknown}"


@pytest.mark.parametrize("name", SERVICES)
def test_ports_and_healthchecks_agree_with_the_service(name: str) -> None:
    spec = COMPOSE_SERVICES[name]
    port = DEFAULT_PORTS[name]
    assert [p.split(":")[-1] for p in spec["ports"]] == [str(port)]
    assert f"127.0.0.1:{port}/healthz" in " ".join(spec["healthcheck"]["test"])
    # One image for every service: it serves the service its build arguments name, on their port.
    assert spec["build"]["dockerfile"] == SHARED_DOCKERFILE
    args = spec["build"]["args"]
    assert (args["SERVICE"], args["PORT"]) == (name, str(port))
    dockerfile = (REPO / SHARED_DOCKERFILE).read_text()
    assert '"exec finprint serve \\"$FINPRINT_IMAGE_SERVICE\\" --host 0.0.0.0 --port \\"$FINPRINT_IMAGE_PORT\\""' in dockerfile
    assert "127.0.0.1:%s/healthz' % os.environ['FINPRINT_IMAGE_PORT']" in dockerfile


def test_the_migration_job_runs_on_the_catalog_image() -> None:
    # The migrations ship inside the catalog's package: the job needs the catalog's extra installed.
    migrate = COMPOSE_SERVICES["migrate"]
    assert migrate["build"] == COMPOSE_SERVICES["catalog"]["build"]
    assert migrate["command"] == ["finprint", "migrate"]


@pytest.mark.parametrize("name", sorted(_built_services()))
def test_the_shared_image_copies_in_only_the_models_a_service_reads(name: str) -> None:
    models = COMPOSE_SERVICES[name]["build"]["args"].get("MODELS", "").split()
    for path in models:
        assert (REPO / "model_repository" / path).exists(), f"{name} copies in model_repository/{path}: missing"
    expected = {"detector": ["finprint_detector"], "embedder": ["finprint_embedder"],
                "matcher": ["finprint_embedder/finprint.json"]}.get(name, [])
    assert models == expected


def test_peer_urls_point_at_compose_services_on_their_ports() -> None:
    for name, spec in _built_services().items():
        for key, value in spec.get("environment", {}).items():
            if key.endswith("_URL") and str(value).startswith("http://"):
                host, _, port = str(value).removeprefix("http://").partition(":")
                assert host in COMPOSE_SERVICES, f"{name}.{key} points at unknown host {host}"
                if host in DEFAULT_PORTS:
                    assert int(port) == DEFAULT_PORTS[host], f"{name}.{key} uses the wrong port"


def test_prometheus_scrapes_every_service() -> None:
    config = yaml.safe_load((REPO / "deploy/prometheus/prometheus.yml").read_text())
    targets = {t for job in config["scrape_configs"] for sc in job["static_configs"] for t in sc["targets"]}
    for name in SERVICES:
        assert f"{name}:{DEFAULT_PORTS[name]}" in targets
