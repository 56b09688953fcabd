"""Settings shared by every service, read from the environment (pydantic-settings).

Each service subclasses :class:`ServiceSettings` with its own env prefix
(``FINPRINT_GATEWAY_``, ``FINPRINT_CATALOG_``...). ``finprint settings-doc`` renders every
field of every service into docs/configuration.md, so the table never drifts from the code.
"""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class ServiceSettings(BaseSettings):
    """Fields every service has. Subclasses set ``model_config`` with their own prefix."""

    model_config = SettingsConfigDict(env_prefix="FINPRINT_", extra="ignore")

    log_level: str = Field("INFO", description="Log level of the JSON request and event logs.")
    request_timeout_s: float = Field(
        30.0, gt=0, description="Timeout for calls this service makes to other services, seconds."
    )
    retry_after_s: int = Field(
        5, ge=1, description="Retry-After seconds sent with a 503 when a dependency is unavailable."
    )
    max_body_bytes: int = Field(
        40 * 1024 * 1024, gt=0, description="Largest request body accepted, bytes (413 beyond)."
    )
