"""Errors as ``application/problem+json`` (RFC 9457) with stable ``type`` URIs.

Route code raises :class:`Problem` (or one of its subclasses); the handlers installed by
:func:`install_problem_handlers` turn it, FastAPI's validation errors, HTTP errors and any
unexpected exception into a problem document. A stack trace never reaches a client: unexpected
errors are logged with the request id and answered with a generic 500.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import ValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException

from finprint.logs import current_request_id

PROBLEM_MEDIA_TYPE = "application/problem+json"
PROBLEM_BASE = "https://finprint.dev/problems/"
log = logging.getLogger("finprint.problems")

_TITLES_BY_STATUS = {
    400: ("bad-request", "Bad request"),
    401: ("unauthenticated", "Authentication required"),
    403: ("forbidden", "Forbidden"),
    404: ("not-found", "Not found"),
    405: ("method-not-allowed", "Method not allowed"),
    409: ("conflict", "Conflict"),
    413: ("payload-too-large", "Payload too large"),
    415: ("unsupported-media-type", "Unsupported media type"),
    422: ("validation-error", "Request validation failed"),
    429: ("rate-limited", "Too many requests"),
    500: ("internal-error", "Internal server error"),
    503: ("dependency-unavailable", "Service temporarily unavailable"),
}


class Problem(Exception):
    """An error with an RFC 9457 body. ``slug`` becomes the stable ``type`` URI."""

    def __init__(
        self,
        status: int,
        detail: str,
        *,
        slug: str | None = None,
        title: str | None = None,
        headers: dict[str, str] | None = None,
        **extensions: Any,
    ) -> None:
        default_slug, default_title = _TITLES_BY_STATUS.get(status, ("error", "Error"))
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.slug = slug or default_slug
        self.title = title or default_title
        self.headers = headers or {}
        self.extensions = extensions

    def body(self, instance: str | None = None) -> dict[str, Any]:
        body: dict[str, Any] = {
            "type": PROBLEM_BASE + self.slug,
            "title": self.title,
            "status": self.status,
            "detail": self.detail,
        }
        if instance:
            body["instance"] = instance
        request_id = current_request_id()
        if request_id:
            body["request_id"] = request_id
        body.update(self.extensions)
        return body


class NotFound(Problem):
    def __init__(self, what: str, ident: object) -> None:
        super().__init__(404, f"{what} {ident!s} was not found.", slug="not-found")


class DependencyUnavailable(Problem):
    """A service this one depends on failed or timed out: the client should retry later."""

    def __init__(self, dependency: str, reason: str, retry_after_s: int = 5) -> None:
        super().__init__(
            503,
            f"{dependency} is unavailable ({reason}); nothing was changed, retry later.",
            slug="dependency-unavailable",
            headers={"Retry-After": str(retry_after_s)},
            dependency=dependency,
        )


class InvalidImage(Problem):
    """The uploaded bytes are not an image this service accepts; ``reason`` is a stable slug."""

    def __init__(self, reason: str, detail: str, status: int = 422) -> None:
        super().__init__(status, detail, slug=f"invalid-image/{reason}", title="Invalid image", reason=reason)


def problem_response(problem: Problem, request: Request | None = None) -> JSONResponse:
    instance = request.url.path if request is not None else None
    return JSONResponse(
        problem.body(instance), status_code=problem.status, headers=problem.headers, media_type=PROBLEM_MEDIA_TYPE
    )


def _field_name(loc: tuple[Any, ...] | list[Any]) -> str:
    # FastAPI prefixes the location with "body"/"query"/"path"; users know the field itself.
    parts = [str(p) for p in loc]
    if parts and parts[0] in {"body", "query", "path", "header", "cookie", "form"}:
        parts = parts[1:]
    return ".".join(parts) or "body"


async def _on_problem(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, Problem)
    return problem_response(exc, request)


def problem_from_validation(exc: RequestValidationError | ValidationError) -> Problem:
    """A 422 naming every invalid field (for validation FastAPI does not do itself, e.g. form fields)."""
    errors = [
        {"field": _field_name(err.get("loc", ())), "message": err.get("msg", "invalid"), "type": err.get("type")}
        for err in exc.errors()
    ]
    names = ", ".join(sorted({e["field"] for e in errors}))
    return Problem(422, f"Invalid value for: {names}.", slug="validation-error", errors=errors)


async def _on_validation(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    return problem_response(problem_from_validation(exc), request)


async def _on_http(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    detail = exc.detail if isinstance(exc.detail, str) else "Request failed."
    problem = Problem(exc.status_code, detail, headers=dict(exc.headers or {}))
    return problem_response(problem, request)


async def _on_unexpected(request: Request, exc: Exception) -> JSONResponse:
    log.error("unhandled error", exc_info=exc, extra={"fields": {"path": request.url.path}})
    problem = Problem(500, "An unexpected error occurred; it has been logged with this request id.")
    return problem_response(problem, request)


def install_problem_handlers(app: FastAPI) -> None:
    app.add_exception_handler(Problem, _on_problem)
    app.add_exception_handler(RequestValidationError, _on_validation)
    app.add_exception_handler(StarletteHTTPException, _on_http)
    app.add_exception_handler(Exception, _on_unexpected)
