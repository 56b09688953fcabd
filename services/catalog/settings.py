from __future__ import annotations

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from finprint.imaging import ImageLimitSettings
from finprint.objectstore import ObjectStoreSettings
from finprint.settings import ServiceSettings


class CatalogSettings(ServiceSettings, ObjectStoreSettings, ImageLimitSettings):
    """Settings of the catalog (env prefix ``FINPRINT_CATALOG_``)."""

    model_config = SettingsConfigDict(env_prefix="FINPRINT_CATALOG_", extra="ignore")

    database_url: str = Field(
        "sqlite:///./data/finprint.db",
        description="SQLAlchemy URL of the catalogue database: postgresql+psycopg://... or sqlite:///...",
    )
    database_pool_size: int = Field(5, ge=1, description="Connections kept open per process (PostgreSQL).")
    database_pool_timeout_s: float = Field(
        30.0, gt=0, description="How long a request waits for a free database connection (PostgreSQL: the pool "
        "holds database_pool_size plus twice as many more) before it is answered 503 with Retry-After.")
    auto_migrate: bool = Field(
        False,
        description="Run the Alembic migrations to head when the app starts (the embedded default does).",
    )
    presign_expiry_s: int = Field(
        900, ge=1, le=7 * 24 * 3600, description="Lifetime of presigned image download URLs, seconds."
    )
    public_base_url: str = Field(
        "",
        description="Base URL clients reach the catalog's /v1/objects route at (local object store); "
        "empty gives URLs relative to the catalog.",
    )
    page_size_max: int = Field(1000, ge=1, description="Largest page a list endpoint returns.")
