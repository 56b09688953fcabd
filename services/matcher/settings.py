from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator
from pydantic_settings import SettingsConfigDict

from finprint.objectstore import ObjectStoreSettings
from finprint.paths import default_model_repository
from finprint.settings import ServiceSettings


class MatcherSettings(ServiceSettings, ObjectStoreSettings):
    """Settings of the matcher (env prefix ``FINPRINT_MATCHER_``)."""

    model_config = SettingsConfigDict(env_prefix="FINPRINT_MATCHER_", extra="ignore")

    catalog_url: str = Field(
        "http://127.0.0.1:8004",
        description="Base URL of the catalog, the source of truth the indexes rebuild from.",
    )
    catalog_page_size: int = Field(
        2000,
        ge=1,
        le=5000,
        description="Embeddings (or changes) fetched per catalog request when syncing "
        "(the catalog allows 5000).",
    )
    sync_interval_s: float = Field(
        3.0, gt=0, description="Seconds between polls of the catalog's change log (POST /v1/sync forces one)."
    )
    snapshot_interval_s: float = Field(
        300.0,
        gt=0,
        description="Seconds between snapshots to the object store, taken only when something changed.",
    )
    snapshot_on_shutdown: bool = Field(
        True, description="Write a snapshot when the matcher stops cleanly, so the next start replays less."
    )
    reconcile_interval_s: float = Field(
        600.0,
        gt=0,
        description="Seconds between comparisons of the indexes with the catalogue's embeddings (ids and "
        "count per index; also run at start, and by POST /v1/reconcile); a difference is repaired by a "
        "rebuild from the catalogue.",
    )
    threshold_refresh_interval_s: float = Field(
        30.0,
        gt=0,
        description="Seconds between re-reads of organisations' threshold overrides (set via any shard).",
    )
    model_repository: Path = Field(
        default_factory=default_model_repository,
        description="Model repository holding finprint_embedder/finprint.json "
        "(the new-individual thresholds).",
    )
    fallback_new_individual_threshold: float = Field(
        0.5,
        ge=-1.0,
        le=1.0,
        description="Cosine threshold used when the embedder's finprint.json is missing (uncalibrated).",
    )
    new_individual_temperature: float = Field(
        0.05,
        gt=0,
        description="Logistic temperature of the new-individual probability around the threshold, in cosine "
        "units (finprint.json `new_individual_temperature` wins when present).",
    )
    approximate_index_min_size: int = Field(
        25_000,
        ge=2,
        description="Embeddings in one index from which it switches from exact (flat) to approximate (IVF) "
        "search; back to exact below half of it.",
    )
    ivf_nlist: int | None = Field(
        None,
        ge=1,
        description="IVF lists; empty: about 2*sqrt(size), a power of two, re-trained as the index grows.",
    )
    ivf_nprobe: int | None = Field(
        None,
        ge=1,
        description="IVF lists visited per query (recall against latency); empty: nlist/32, at least 16.",
    )
    ivf_train_points_per_list: int = Field(
        40, ge=10, description="Training sample per IVF list (k-means on a fixed-seed sample)."
    )
    ivf_retrain_growth: float = Field(
        4.0, gt=1, description="Re-train an IVF index when it has grown this many times since it was trained."
    )
    omp_threads: int | None = Field(
        None,
        ge=1,
        description="FAISS OpenMP threads for batch searches, writes and index training; empty: all cores. "
        "A single-query search always uses one (measured faster on a busy machine, see docs/matcher.md).",
    )
    use_gpu: Literal["auto", "never", "always"] = Field(
        "auto", description="Search on a GPU: auto when faiss-gpu is installed and a GPU is visible."
    )
    shard_index: int = Field(0, ge=0, description="This shard's number, 0 .. shard_count-1.")
    shard_count: int = Field(
        1,
        ge=1,
        description="Number of matcher shards; a shard owns the (org, species group) keys that "
        "finprint.schemas.matcher.shard_for maps to shard_index (the gateway routes with it).",
    )
    shard_keys: list[str] | None = Field(
        None,
        description="Explicit keys this shard owns, as `org_id:species_group` (JSON list); "
        "replaces the hash ownership of shard_index/shard_count.",
    )

    @model_validator(mode="after")
    def _shard_index_within_count(self) -> MatcherSettings:
        if self.shard_index >= self.shard_count:
            raise ValueError(f"shard_index {self.shard_index} must be below shard_count {self.shard_count}")
        for key in self.shard_keys or []:
            if ":" not in key:
                raise ValueError(f"shard key {key!r} must be `org_id:species_group`")
        return self
