from __future__ import annotations

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from finprint.settings import ServiceSettings


class GatewaySettings(ServiceSettings):
    """Settings of the gateway (env prefix ``FINPRINT_GATEWAY_``)."""

    model_config = SettingsConfigDict(env_prefix="FINPRINT_GATEWAY_", extra="ignore")

    detector_url: str = Field("http://127.0.0.1:8001", description="Base URL of the detector service.")
    embedder_url: str = Field("http://127.0.0.1:8002", description="Base URL of the embedder service.")
    matcher_url: str = Field("http://127.0.0.1:8003", description="Base URL of the matcher service.")
    catalog_url: str = Field("http://127.0.0.1:8004", description="Base URL of the catalog service.")
