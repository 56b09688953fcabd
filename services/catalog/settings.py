from __future__ import annotations

from pydantic_settings import SettingsConfigDict

from finprint.settings import ServiceSettings


class CatalogSettings(ServiceSettings):
    """Settings of the catalog (env prefix ``FINPRINT_CATALOG_``)."""

    model_config = SettingsConfigDict(env_prefix="FINPRINT_CATALOG_", extra="ignore")
