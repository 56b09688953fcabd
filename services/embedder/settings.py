from __future__ import annotations

from pydantic_settings import SettingsConfigDict

from finprint.settings import ServiceSettings


class EmbedderSettings(ServiceSettings):
    """Settings of the embedder (env prefix ``FINPRINT_EMBEDDER_``)."""

    model_config = SettingsConfigDict(env_prefix="FINPRINT_EMBEDDER_", extra="ignore")
