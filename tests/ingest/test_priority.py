"""Bulk calls are marked as such and a worker keeps only a few in flight per peer."""

from __future__ import annotations

import asyncio

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from services.gateway.ingest.priority import BULK, PRIORITY_HEADER, BulkTransport, bulk_transports


class Peer:
    """A service that records how many calls it is serving at once, and their priority header."""

    def __init__(self) -> None:
        self.in_flight = 0
        self.most_in_flight = 0
        self.priorities: list[str | None] = []
        self.app = Starlette(routes=[Route("/work", self.work, methods=["POST"])])

    async def work(self, request: Request) -> JSONResponse:
        self.in_flight += 1
        self.most_in_flight = max(self.most_in_flight, self.in_flight)
        self.priorities.append(request.headers.get(PRIORITY_HEADER))
        await asyncio.sleep(0.01)
        self.in_flight -= 1
        return JSONResponse({"ok": True})


async def _calls(transport: httpx.AsyncBaseTransport, n: int) -> None:
    async with httpx.AsyncClient(transport=transport, base_url="http://embedder") as client:
        responses = await asyncio.gather(*(client.post("/work") for _ in range(n)))
    assert all(r.status_code == 200 for r in responses)


def test_bulk_calls_are_marked_and_bounded() -> None:
    peer = Peer()
    asyncio.run(_calls(BulkTransport(httpx.ASGITransport(app=peer.app), limit=3), 24))
    assert peer.priorities == [BULK] * 24
    assert peer.most_in_flight == 3


def test_interactive_calls_are_not_limited() -> None:
    peer = Peer()
    asyncio.run(_calls(httpx.ASGITransport(app=peer.app), 24))
    assert peer.priorities == [None] * 24
    assert peer.most_in_flight > 3


def test_peers_on_one_host_share_one_limit() -> None:
    transports = bulk_transports(["http://127.0.0.1:8001", "http://127.0.0.1:8002", "http://catalog"], limit=2)
    assert set(transports) == {"127.0.0.1", "catalog"}
