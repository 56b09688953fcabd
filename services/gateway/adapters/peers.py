"""Clients of the four services the gateway orchestrates."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import httpx

from finprint.http import ServiceClient, make_client
from services.gateway.settings import GatewaySettings


@dataclass
class Peers:
    detector: ServiceClient
    embedder: ServiceClient
    matcher: ServiceClient
    catalog: ServiceClient

    @classmethod
    def from_settings(
        cls, settings: GatewaySettings, transports: Mapping[str, httpx.AsyncBaseTransport] | None = None
    ) -> Peers:
        def client(name: str, url: str) -> ServiceClient:
            return make_client(
                name, url, timeout_s=settings.request_timeout_s, retry_after_s=settings.retry_after_s,
                transports=transports,
            )

        return cls(
            detector=client("detector", settings.detector_url),
            embedder=client("embedder", settings.embedder_url),
            matcher=client("matcher", settings.matcher_url),
            catalog=client("catalog", settings.catalog_url),
        )

    def all(self) -> dict[str, ServiceClient]:
        return {"detector": self.detector, "embedder": self.embedder, "matcher": self.matcher, "catalog": self.catalog}

    async def aclose(self) -> None:
        for client in self.all().values():
            await client.aclose()
