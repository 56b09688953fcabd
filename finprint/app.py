"""The factory every service builds its FastAPI app with.

``create_service_app`` gives each service the same skeleton: JSON request logs with a request
id, Prometheus metrics, problem+json errors, a body size limit, ``/healthz`` (the process is
alive), ``/readyz`` (its dependencies answer) and ``/metrics``. The service adds its routers and
readiness checks; nothing else about the plumbing differs between services.
"""

from __future__ import annotations

import asyncio
import logging
import time
import unicodedata
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

import httpx

from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.responses import JSONResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from finprint import __version__
from finprint.logs import REQUEST_ID_HEADER, bind_request, current_request_id, unbind_request
from finprint.metrics import PROMETHEUS_CONTENT_TYPE, ServiceMetrics
from finprint.problems import PROBLEM_MEDIA_TYPE, Problem, install_problem_handlers, problem_response
from finprint.settings import ServiceSettings

ReadinessCheck = Callable[[], Awaitable[dict[str, Any] | None]]
"""Raises when not ready; may return details for the /readyz body (e.g. the model versions served)."""
"""Raises (any exception) when a dependency is not ready; its message is reported."""

Lifespan = Callable[[FastAPI], AbstractAsyncContextManager[None]]
Transports = Mapping[str, httpx.AsyncBaseTransport]
"""In-process transports to other services by name (the embedded runner's), for an app's clients."""
access_log = logging.getLogger("finprint.access")


@dataclass
class ServiceState:
    """What the factory hangs on ``app.state.service`` for routes and dependencies to use."""

    name: str
    settings: ServiceSettings
    metrics: ServiceMetrics
    readiness_checks: dict[str, ReadinessCheck] = field(default_factory=dict)


class RequestContextMiddleware:
    """Binds the request id, enforces the body limit, logs one line and records metrics per request.

    Pure ASGI rather than BaseHTTPMiddleware so streaming bodies are not buffered and the
    context variable holding the request id stays visible to the route code.
    """

    def __init__(self, app: ASGIApp, service: ServiceState) -> None:
        self.app = app
        self.service = service

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        tokens = bind_request(headers.get(REQUEST_ID_HEADER.lower()), self.service.name)
        request_id = current_request_id() or ""
        started = time.perf_counter()
        status = 500
        limit = self.service.settings.max_body_bytes

        declared = headers.get("content-length")
        if declared and declared.isdigit() and int(declared) > limit:
            try:
                await self._send_problem(_body_too_large(limit), scope, receive, send, request_id)
                self._finish(scope, 413, started)
            finally:
                unbind_request(tokens)
            return

        received = 0
        too_large = False
        response_started = False

        async def limited_receive() -> Message:
            # Past the limit the app is told the client left; the 413 is sent in its place.
            nonlocal received, too_large
            if too_large:
                return {"type": "http.disconnect"}
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    too_large = True
                    return {"type": "http.disconnect"}
            return message

        async def send_with_id(message: Message) -> None:
            nonlocal status, response_started
            if too_large:
                return
            if message["type"] == "http.response.start":
                status = message["status"]
                response_started = True
                message["headers"] = list(message.get("headers", [])) + [
                    (REQUEST_ID_HEADER.encode(), request_id.encode())
                ]
            await send(message)

        try:
            await self.app(scope, limited_receive, send_with_id)
        except Exception as exc:
            if not too_large:
                # Logged here, where the request id is still bound; the client gets no internals.
                access_log.error("unhandled error", exc_info=exc, extra={"fields": {"path": scope.get("path")}})
                if response_started:
                    raise
                status = 500
                await self._send_problem(
                    Problem(500, "An unexpected error occurred; it has been logged with this request id."),
                    scope, receive, send, request_id,
                )
        finally:
            if too_large and not response_started:
                status = 413
                await self._send_problem(_body_too_large(limit), scope, receive, send, request_id)
            self._finish(scope, status, started)
            unbind_request(tokens)

    @staticmethod
    async def _send_problem(problem: Problem, scope: Scope, receive: Receive, send: Send, request_id: str) -> None:
        response = problem_response(problem)
        response.headers[REQUEST_ID_HEADER] = request_id
        await response(scope, receive, send)

    def _finish(self, scope: Scope, status: int, started: float) -> None:
        seconds = time.perf_counter() - started
        route = scope.get("route")
        template = getattr(route, "path", None) or "unmatched"
        method = scope.get("method", "")
        self.service.metrics.observe_request(template, method, status, seconds)
        if template in {"/healthz", "/metrics"}:
            return  # probes every few seconds would drown the log
        access_log.info(
            "request",
            extra={
                "fields": {
                    "method": method,
                    "path": scope.get("path"),
                    "route": template,
                    "status": status,
                    "duration_ms": round(seconds * 1000, 2),
                }
            },
        )


def _body_too_large(limit: int) -> Problem:
    return Problem(413, f"The request body is larger than the limit of {limit} bytes.")


def _unprintable(value: str) -> bool:
    return any(unicodedata.category(char) == "Cc" for char in value)


def _parameter_error(name: str, where: str, message: str, kind: str) -> Problem:
    return Problem(422, f"Invalid value for: {name}.", slug="validation-error",
                   errors=[{"field": name, "in": where, "message": message, "type": kind}])


def plain_parameters(request: Request) -> None:
    """Refuse path and query parameters with control characters, and path parameters with `.`/`..` segments.

    One check in front of every route of every service, because each route puts its ids into the URL of a
    call to another service (httpx refuses control characters there, and a `..` segment walks up the peer's
    path) or into SQL (PostgreSQL refuses NUL): without it each would fail in its own way, often as a 500.
    """
    for name, value in request.path_params.items():
        if not isinstance(value, str):
            continue
        if _unprintable(value):
            raise _parameter_error(name, "path", "contains a control character", "control_character")
        if any(segment in {".", ".."} for segment in value.split("/")):
            raise _parameter_error(name, "path", "may not be `.` or `..`", "dot_segment")
    for name, value in request.query_params.multi_items():
        if _unprintable(value):
            raise _parameter_error(name, "query", "contains a control character", "control_character")


PROBLEM_SCHEMA = {
    "type": "object",
    "description": "An error, as RFC 9457 problem details; `type` is a stable URI naming the kind of error.",
    "required": ["type", "title", "status", "detail"],
    "properties": {
        "type": {"type": "string", "examples": ["https://finprint.dev/problems/validation-error"]},
        "title": {"type": "string"}, "status": {"type": "integer", "minimum": 400, "maximum": 599},
        "detail": {"type": "string"}, "instance": {"type": "string"}, "request_id": {"type": "string"},
        "errors": {"type": "array", "items": {"type": "object", "properties": {
            "field": {"type": "string"}, "message": {"type": "string"}}}},
    },
}


def _document_problems(app: FastAPI) -> None:
    """Say in the OpenAPI what every error is: FastAPI documents its own 422 body, which the problem handlers
    replace; a client (and schemathesis's conformance check) must be told the problem document instead."""
    build = app.openapi

    def openapi() -> dict:
        if app.openapi_schema:
            return app.openapi_schema
        schema = build()
        content = {PROBLEM_MEDIA_TYPE: {"schema": {"$ref": "#/components/schemas/Problem"}}}
        for path_item in schema.get("paths", {}).values():
            for operation in path_item.values():
                responses = operation.setdefault("responses", {})
                if "422" in responses:
                    responses["422"] = {"description": "Invalid request: each invalid field in `errors`.",
                                        "content": content}
                responses.setdefault("default", {"description": "An error (problem details).", "content": content})
        components = schema.setdefault("components", {}).setdefault("schemas", {})
        components.pop("HTTPValidationError", None)
        components.pop("ValidationError", None)
        components["Problem"] = PROBLEM_SCHEMA
        app.openapi_schema = schema
        return schema

    app.openapi = openapi  # type: ignore[method-assign]


def _probe_router(service: ServiceState) -> APIRouter:
    router = APIRouter(tags=["operations"])

    @router.get("/healthz", summary="Liveness: the process is up")
    async def healthz() -> dict[str, str]:
        return {"status": "ok", "service": service.name, "version": __version__}

    @router.get("/readyz", summary="Readiness: every dependency answers")
    async def readyz() -> JSONResponse:
        results = await run_readiness_checks(service.readiness_checks)
        ready = all(r["ready"] for r in results.values())
        body = {"ready": ready, "service": service.name, "checks": results}
        return JSONResponse(body, status_code=200 if ready else 503,
                            headers={} if ready else {"Retry-After": str(service.settings.retry_after_s)})

    @router.get("/metrics", summary="Prometheus metrics", response_class=Response)
    async def metrics() -> Response:
        return Response(service.metrics.render(), media_type=PROMETHEUS_CONTENT_TYPE)

    return router


async def run_readiness_checks(checks: dict[str, ReadinessCheck], timeout_s: float = 5.0) -> dict[str, dict]:
    """Run the checks concurrently; each reports ready (with what it returned, e.g. the versions served)
    or the reason it is not."""

    async def one(check: ReadinessCheck) -> dict:
        try:
            details = await asyncio.wait_for(check(), timeout_s)
            return {"ready": True, **(details or {})}
        except Exception as exc:  # any failure means not ready; the reason goes to the operator
            return {"ready": False, "reason": f"{type(exc).__name__}: {exc}"[:500]}

    names = list(checks)
    outcomes = await asyncio.gather(*(one(checks[n]) for n in names))
    return dict(zip(names, outcomes))


def create_service_app(
    name: str,
    settings: ServiceSettings,
    *,
    title: str,
    description: str,
    routers: Sequence[APIRouter] = (),
    lifespan: Lifespan | None = None,
    metrics: ServiceMetrics | None = None,
) -> FastAPI:
    """Build a service's app. Readiness checks are registered on ``app.state.service``."""
    state = ServiceState(name=name, settings=settings, metrics=metrics or ServiceMetrics(name))

    @asynccontextmanager
    async def run_lifespan(app: FastAPI) -> AsyncIterator[None]:
        if lifespan is None:
            yield
            return
        async with lifespan(app):
            yield

    app = FastAPI(title=title, description=description, version=__version__, lifespan=run_lifespan,
                  dependencies=[Depends(plain_parameters)])
    app.state.service = state
    install_problem_handlers(app)
    _document_problems(app)
    app.add_middleware(RequestContextMiddleware, service=state)
    app.include_router(_probe_router(state))
    for router in routers:
        app.include_router(router)
    return app


class ServiceRuntime(Protocol):
    """What a service keeps loaded for its routes (the detector's or the embedder's model)."""

    async def start(self) -> None: ...

    async def close(self) -> None: ...

    async def check_ready(self) -> dict[str, Any] | None: ...


S = TypeVar("S", bound=ServiceSettings)


def create_runtime_app(
    name: str,
    settings: S,
    runtime_class: Callable[[S, ServiceMetrics], ServiceRuntime],
    *,
    title: str,
    description: str,
    routers: Sequence[APIRouter] = (),
) -> FastAPI:
    """The app of a service whose state is one runtime built from its settings and metrics: started
    and closed with the app, its readiness check ``model``, and on ``app.state.<name>`` for routes."""
    metrics = ServiceMetrics(name)
    runtime = runtime_class(settings, metrics)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        await runtime.start()
        try:
            yield
        finally:
            await runtime.close()

    app = create_service_app(name, settings, title=title, description=description, routers=routers,
                             lifespan=lifespan, metrics=metrics)
    setattr(app.state, name, runtime)
    app.state.service.readiness_checks["model"] = runtime.check_ready
    return app


def service_state(request: Request) -> ServiceState:
    """FastAPI dependency: the calling app's :class:`ServiceState`."""
    return request.app.state.service
