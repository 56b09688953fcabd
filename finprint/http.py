"""HTTP clients for calls between services.

Services talk only through their HTTP contracts. :class:`ServiceClient` wraps ``httpx`` with
what every call needs: the caller's request id passed on in ``X-Request-ID``, a timeout, bounded
retries of idempotent calls, and a failure of the other side turned into
:class:`~finprint.problems.DependencyUnavailable` (a 503 with Retry-After for our own client).

In the embedded default the same clients reach the other apps in process: ``transports`` maps a
service's host name (``http://catalog``) to an ``httpx.ASGITransport`` of its app.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

import httpx

from finprint.logs import REQUEST_ID_HEADER, current_request_id
from finprint.problems import DependencyUnavailable, Problem

log = logging.getLogger("finprint.http")
IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "PUT", "DELETE", "OPTIONS"})


class ServiceClient:
    """A client for one peer service, e.g. ``ServiceClient("catalog", "http://catalog:8000")``."""

    def __init__(
        self,
        name: str,
        base_url: str,
        *,
        timeout_s: float = 30.0,
        retries: int = 2,
        retry_after_s: int = 5,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.name = name
        self.retries = retries
        self.retry_after_s = retry_after_s
        self._client = httpx.AsyncClient(base_url=base_url, timeout=timeout_s, transport=transport)

    async def aclose(self) -> None:
        await self._client.aclose()

    async def request(
        self, method: str, path: str, *, idempotent: bool | None = None, **kwargs: Any
    ) -> httpx.Response:
        """Send a request; retry idempotent ones on connection errors and 502/503/504.

        A 4xx from the peer is the caller's problem and is re-raised as the same problem;
        anything else that fails becomes DependencyUnavailable.
        """
        method = method.upper()
        may_retry = idempotent if idempotent is not None else method in IDEMPOTENT_METHODS
        headers = dict(kwargs.pop("headers", None) or {})
        request_id = current_request_id()
        if request_id:
            headers[REQUEST_ID_HEADER] = request_id
        attempts = 1 + (self.retries if may_retry else 0)
        reason = "no attempt made"
        for attempt in range(attempts):
            if attempt:
                await asyncio.sleep(min(0.1 * 2**attempt, 1.0))
            try:
                response = await self._client.request(method, path, headers=headers, **kwargs)
            except httpx.TimeoutException:
                reason = "timed out"
                continue
            except httpx.TransportError as exc:
                reason = f"unreachable: {type(exc).__name__}"
                continue
            if response.status_code in {502, 503, 504}:
                reason = f"answered {response.status_code}"
                continue
            if response.status_code >= 500:
                raise DependencyUnavailable(self.name, f"answered {response.status_code}", self.retry_after_s)
            if response.status_code >= 400:
                raise _problem_from_peer(response)
            return response
        log.warning("dependency failed", extra={"fields": {"dependency": self.name, "reason": reason}})
        raise DependencyUnavailable(self.name, reason, self.retry_after_s)

    async def get_json(self, path: str, **kwargs: Any) -> Any:
        return (await self.request("GET", path, **kwargs)).json()

    async def post_json(self, path: str, body: Any, *, idempotent: bool | None = None, **kwargs: Any) -> Any:
        return (await self.request("POST", path, json=body, idempotent=idempotent, **kwargs)).json()

    async def ready(self) -> None:
        """Readiness check: the peer's own /readyz answers 200."""
        request_id = current_request_id()
        headers = {REQUEST_ID_HEADER: request_id} if request_id else {}
        response = await self._client.get("/readyz", timeout=5.0, headers=headers)
        if response.status_code != 200:
            raise RuntimeError(f"{self.name} /readyz answered {response.status_code}: {response.text[:300]}")


def _problem_from_peer(response: httpx.Response) -> Problem:
    """Pass a peer's 4xx problem through unchanged (same type, same detail)."""
    try:
        body = response.json()
    except ValueError:
        body = {}
    if not isinstance(body, dict):
        body = {}
    detail = str(body.get("detail") or response.text[:300] or "request refused")
    slug = str(body.get("type", "")).rsplit("/problems/", 1)[-1] or None
    extensions = {k: v for k, v in body.items() if k not in {"type", "title", "status", "detail", "instance", "request_id"}}
    headers = {"Retry-After": response.headers["Retry-After"]} if "Retry-After" in response.headers else None
    return Problem(response.status_code, detail, slug=slug, title=body.get("title"), headers=headers, **extensions)


def make_client(
    name: str,
    base_url: str,
    *,
    timeout_s: float,
    retry_after_s: int,
    transports: Mapping[str, httpx.AsyncBaseTransport] | None = None,
) -> ServiceClient:
    """A client for ``base_url``, going in process when ``transports`` has an app for its host."""
    host = urlsplit(base_url).hostname or ""
    transport = (transports or {}).get(host)
    return ServiceClient(name, base_url, timeout_s=timeout_s, retry_after_s=retry_after_s, transport=transport)
