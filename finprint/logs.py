"""Structured JSON logs with a request id that crosses service boundaries.

The request id is accepted from ``X-Request-ID`` (or made), kept in a context variable for the
request's lifetime, written on every log line and passed on by :mod:`finprint.http`.
"""

from __future__ import annotations

import contextvars
import json
import logging
import sys
import time
import uuid

REQUEST_ID_HEADER = "X-Request-ID"
_request_id: contextvars.ContextVar[str | None] = contextvars.ContextVar("request_id", default=None)
_service: contextvars.ContextVar[str | None] = contextvars.ContextVar("service", default=None)


def current_request_id() -> str | None:
    return _request_id.get()


def bind_request(request_id: str | None, service: str) -> tuple[contextvars.Token, contextvars.Token]:
    """Set the request id (a new one when the caller sent none or a malformed one) and service."""
    if not request_id or len(request_id) > 128 or not request_id.isprintable():
        request_id = uuid.uuid4().hex
    return _request_id.set(request_id), _service.set(service)


def unbind_request(tokens: tuple[contextvars.Token, contextvars.Token]) -> None:
    _request_id.reset(tokens[0])
    _service.reset(tokens[1])


class JsonFormatter(logging.Formatter):
    """One JSON object per line; extra fields passed as ``extra={"fields": {...}}``."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        service = _service.get()
        if service:
            entry["service"] = service
        request_id = _request_id.get()
        if request_id:
            entry["request_id"] = request_id
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            entry.update(fields)
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


class _StderrHandler(logging.StreamHandler):
    """Writes to whatever ``sys.stderr`` is now, not the one at set-up: a process that swaps
    stderr (pytest's capture, a daemon redirecting it) keeps its logs instead of failing."""

    @property  # type: ignore[override]
    def stream(self):  # noqa: ANN201 - logging's own attribute
        return sys.stderr

    @stream.setter
    def stream(self, _value: object) -> None:
        pass


def configure_logging(level: str = "INFO") -> None:
    """Route the root logger (and uvicorn's) to stderr as JSON lines. Safe to call twice."""
    handler = _StderrHandler()
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # uvicorn's access log would duplicate our one-line-per-request log.
    logging.getLogger("uvicorn.access").disabled = True
    # httpx logs every call between services at INFO; our access log already has them.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    for name in ("uvicorn", "uvicorn.error"):
        logging.getLogger(name).handlers[:] = []
        logging.getLogger(name).propagate = True
