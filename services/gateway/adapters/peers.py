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
    matchers: list[ServiceClient]
    """One client per matcher shard, in shard order."""
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

        shards = settings.matcher_shard_count
        return cls(
            detector=client("detector", settings.detector_url),
            embedder=client("embedder", settings.embedder_url),
            # Shard N's URL is the template with {shard} = N (a single matcher needs no template).
            matchers=[client("matcher" if shards == 1 else f"matcher-{n}", settings.matcher_url.replace("{shard}", str(n)))
                      for n in range(shards)],
            catalog=client("catalog", settings.catalog_url),
        )

    def all(self) -> dict[str, ServiceClient]:
        clients = {"detector": self.detector, "embedder": self.embedder, "catalog": self.catalog}
        clients.update({m.name: m for m in self.matchers})
        return clients

    async def aclose(self) -> None:
        for client in self.all().values():
            await client.aclose()
