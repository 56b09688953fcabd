"""Bulk work yields to interactive requests.

Every call a worker makes carries ``X-Priority: bulk`` (services and proxies can tell the two
apart, e.g. in their access logs and metrics), and a worker keeps at most ``limit`` model calls in
flight per peer. Interactive identify requests are never limited this way, so however many
images a job has, a worker only ever holds a few of the detector's and embedder's slots; the
rest of their capacity (their micro-batches, their thread pools) stays free for people waiting on
an answer.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Mapping
from urllib.parse import urlsplit

import httpx

PRIORITY_HEADER = "X-Priority"
BULK = "bulk"


class BulkTransport(httpx.AsyncBaseTransport):
    """Wraps a transport: marks each request as bulk and bounds how many are in flight."""

    def __init__(self, inner: httpx.AsyncBaseTransport, limit: int) -> None:
        self.inner = inner
        self.slots = asyncio.Semaphore(limit)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        request.headers[PRIORITY_HEADER] = BULK
        async with self.slots:
            response = await self.inner.handle_async_request(request)
            # Read the body inside the slot: the peer is busy until it has sent it.
            await response.aread()
        return response

    async def aclose(self) -> None:
        await self.inner.aclose()


def bulk_transports(urls: Iterable[str], limit: int,
                    inner: Mapping[str, httpx.AsyncBaseTransport] | None = None) -> dict[str, httpx.AsyncBaseTransport]:
    """A bulk transport per peer host: over ``inner`` (in-process apps) where given, else over sockets.

    Peers on one host (several services on 127.0.0.1) share the host's transport and its limit.
    """
    transports: dict[str, httpx.AsyncBaseTransport] = {}
    for url in urls:
        host = urlsplit(url).hostname or ""
        if host not in transports:
            base = (inner or {}).get(host) or httpx.AsyncHTTPTransport()
            transports[host] = BulkTransport(base, limit)
    return transports
