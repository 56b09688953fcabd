from __future__ import annotations

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import SettingsConfigDict

from finprint.imaging import ImageLimitSettings
from finprint.outbound import AllowRule, OutboundGuard
from finprint.settings import ServiceSettings

OUTBOUND_ALLOW_VARIABLE = "FINPRINT_GATEWAY_OUTBOUND_ALLOW"


class GatewaySettings(ServiceSettings, ImageLimitSettings):
    """Settings of the gateway (env prefix ``FINPRINT_GATEWAY_``)."""

    model_config = SettingsConfigDict(env_prefix="FINPRINT_GATEWAY_", extra="ignore")

    detector_url: str = Field("http://127.0.0.1:8001", description="Base URL of the detector service.")
    embedder_url: str = Field("http://127.0.0.1:8002", description="Base URL of the embedder service.")
    matcher_url: str = Field(
        "http://127.0.0.1:8003",
        description="Base URL of the matcher. With several shards, a template with `{shard}` "
        "(e.g. http://matcher-{shard}.matcher-headless:8003).",
    )
    matcher_shard_count: int = Field(1, ge=1, description="Number of matcher shards (see docs/matcher.md).")
    catalog_url: str = Field("http://127.0.0.1:8004", description="Base URL of the catalog service.")
    decode_once: bool = Field(
        True,
        description="Decode each photo once here (within max_image_bytes and max_image_pixels) and send the "
        "detector and the embedder its pixels, when the two take the same input (their GET /v1/model); off: "
        "each service gets the photo's bytes and decodes them itself.",
    )
    jwt_secret: SecretStr | None = Field(
        None,
        description="HMAC secret signing user access and refresh tokens. Required when serving users; "
        "the embedded default keeps one in its data directory.",
    )
    access_token_ttl_s: int = Field(900, gt=0, description="Lifetime of an access token, seconds.")
    refresh_token_ttl_s: int = Field(30 * 24 * 3600, gt=0, description="Lifetime of a refresh token, seconds.")
    rate_limit: str = Field(
        "600/minute", description="Requests allowed per API key or user (limits syntax, e.g. `100/minute`)."
    )
    identify_rate_limit: str = Field(
        "120/minute", description="Identify and enrol requests allowed per API key or user."
    )
    rate_limit_storage_uri: str = Field(
        "memory://",
        description="Where rate-limit counters live: `memory://` for one process, `redis://host:6379` "
        "when several gateway replicas must share them.",
    )
    api_key_cache_s: float = Field(
        30.0, ge=0, description="How long a verified API key is trusted before asking the catalog again."
    )
    embedded_worker: bool = Field(
        False, description="Run one bulk-ingestion worker inside the gateway process (the embedded default)."
    )
    ingest_batch_size: int = Field(
        8, ge=1, le=500, description="Items an ingest worker leases and processes concurrently at a time."
    )
    ingest_lease_s: float = Field(
        60.0, gt=0, le=3600,
        description="How long a leased item stays a worker's without renewal; a dead worker's items are "
        "taken again after this.",
    )
    ingest_max_attempts: int = Field(
        5, ge=1, description="Leases an item may get before it fails (its workers kept dying or timing out)."
    )
    ingest_poll_s: float = Field(1.0, gt=0, description="How often an idle ingest worker asks for items.")
    encounter_photo_concurrency: int = Field(
        4, ge=1,
        description="Photos of one encounter analysed at the same time (identify by encounter, enrolment).",
    )
    encounter_max_photos: int = Field(
        20, ge=1, description="Most photos one encounter identification takes."
    )
    ingest_bulk_concurrency: int = Field(
        4, ge=1,
        description="Calls a worker keeps in flight per peer host (bulk work leaves the rest of each "
        "service's capacity to interactive requests).",
    )
    outbound_allow: str = Field(
        "",
        description="Endpoints a caller's input (an S3 ingest source) may name even though they are loopback, "
        "private or link-local: comma-separated `host`, `host:port` or CIDR ranges (e.g. "
        "`minio.internal:9000,10.20.0.0/16`). Anything else must resolve to public addresses only.",
    )
    outbound_allow_public: bool = Field(
        True,
        description="Whether a caller's input may name any public endpoint; false: only those in "
        "`outbound_allow`.",
    )

    @field_validator("outbound_allow")
    @classmethod
    def _allow_entries_parse(cls, value: str) -> str:
        for entry in value.split(","):
            if entry.strip():
                AllowRule.parse(entry)  # a ValueError names the entry at start, not at the first ingest
        return value

    def outbound_guard(self) -> OutboundGuard:
        """The guard every connection named by a caller's input goes through (finprint/outbound.py)."""
        return OutboundGuard.from_entries(self.outbound_allow.split(","), allow_public=self.outbound_allow_public,
                                          setting=OUTBOUND_ALLOW_VARIABLE)
