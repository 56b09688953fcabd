"""Every service app gets the same skeleton: probes, metrics, problem+json, request ids, body limit."""

from __future__ import annotations

import json
import logging

import httpx
import pytest
from fastapi import APIRouter
from pydantic import BaseModel, Field

from finprint.app import create_service_app
from finprint.problems import DependencyUnavailable
from finprint.settings import ServiceSettings


class Sighting(BaseModel):
    latitude: float = Field(ge=-90, le=90)
    longitude: float = Field(ge=-180, le=180)


def _demo_app(max_body_bytes: int = 1_000_000):
    router = APIRouter()

    @router.post("/sightings")
    async def create(sighting: Sighting) -> dict:
        return {"ok": True, "lat": sighting.latitude}

    @router.get("/boom")
    async def boom() -> dict:
        raise RuntimeError("secret internal detail /etc/passwd")

    @router.get("/down")
    async def down() -> dict:
        raise DependencyUnavailable("catalog", "timed out", retry_after_s=7)

    @router.get("/items/{item_id}")
    async def item(item_id: int) -> dict:
        return {"id": item_id}

    settings = ServiceSettings(max_body_bytes=max_body_bytes)
    return create_service_app("demo", settings, title="demo", description="", routers=[router])


def _client(app) -> httpx.AsyncClient:
    # raise_app_exceptions=False: see the response a real client gets, as uvicorn would send it.
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app, raise_app_exceptions=False),
                             base_url="http://demo")


async def test_healthz_and_readyz_report_checks() -> None:
    app = _demo_app()

    async def failing() -> None:
        raise ConnectionError("db refused")

    async with _client(app) as client:
        assert (await client.get("/healthz")).json()["status"] == "ok"
        assert (await client.get("/readyz")).status_code == 200
        app.state.service.readiness_checks["database"] = failing
        response = await client.get("/readyz")
    assert response.status_code == 503
    assert response.headers["Retry-After"]
    body = response.json()
    assert body["ready"] is False
    assert body["checks"]["database"] == {"ready": False, "reason": "ConnectionError: db refused"}


async def test_validation_error_names_the_field() -> None:
    async with _client(_demo_app()) as client:
        response = await client.post("/sightings", json={"latitude": 123.0, "longitude": 4})
    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"
    body = response.json()
    assert body["type"] == "https://finprint.dev/problems/validation-error"
    assert "latitude" in body["detail"]
    assert [e["field"] for e in body["errors"]] == ["latitude"]


async def test_unexpected_error_is_a_500_problem_without_internals(caplog: pytest.LogCaptureFixture) -> None:
    async with _client(_demo_app()) as client:
        with caplog.at_level(logging.ERROR):
            response = await client.get("/boom", headers={"X-Request-ID": "req-boom-1"})
    assert response.status_code == 500
    assert response.headers["content-type"] == "application/problem+json"
    text = response.text
    assert "secret internal detail" not in text and "Traceback" not in text
    assert response.json()["request_id"] == "req-boom-1"
    assert any("secret internal detail" in (r.exc_text or str(r.exc_info)) for r in caplog.records)


async def test_dependency_failure_is_503_with_retry_after() -> None:
    async with _client(_demo_app()) as client:
        response = await client.get("/down")
    assert response.status_code == 503
    assert response.headers["Retry-After"] == "7"
    assert response.json()["dependency"] == "catalog"


async def test_request_id_is_echoed_or_created() -> None:
    async with _client(_demo_app()) as client:
        given = await client.get("/healthz", headers={"X-Request-ID": "abc-123"})
        made = await client.get("/healthz")
    assert given.headers["X-Request-ID"] == "abc-123"
    assert len(made.headers["X-Request-ID"]) == 32


async def test_body_over_the_limit_is_413_by_header_and_by_stream() -> None:
    async with _client(_demo_app(max_body_bytes=100)) as client:
        declared = await client.post("/sightings", content=b"x" * 500,
                                     headers={"content-type": "application/json"})

        async def chunks():
            for _ in range(10):
                yield b"x" * 50

        streamed = await client.post("/sightings", content=chunks(), headers={"content-type": "application/json"})
    assert declared.status_code == 413 and streamed.status_code == 413
    assert streamed.json()["type"].endswith("/payload-too-large")


async def test_metrics_count_requests_by_route_template_and_status() -> None:
    async with _client(_demo_app()) as client:
        await client.get("/items/1")
        await client.get("/items/2")
        await client.get("/items/not-a-number")
        text = (await client.get("/metrics")).text
    assert 'finprint_http_requests_total{method="GET",route="/items/{item_id}",service="demo",status="200"} 2.0' in text
    assert 'route="/items/{item_id}",service="demo",status="422"} 1.0' in text
    assert "finprint_http_request_duration_seconds_bucket" in text


async def test_access_log_is_one_json_line_with_request_id(capfd: pytest.CaptureFixture) -> None:
    from finprint.logs import configure_logging

    configure_logging("INFO")
    async with _client(_demo_app()) as client:
        await client.get("/items/7", headers={"X-Request-ID": "log-me-7"})
    lines = [json.loads(line) for line in capfd.readouterr().err.splitlines() if line.startswith("{")]
    access = [line for line in lines if line.get("msg") == "request" and line.get("request_id") == "log-me-7"]
    assert len(access) == 1
    assert access[0]["route"] == "/items/{item_id}" and access[0]["status"] == 200
    assert access[0]["service"] == "demo"
