"""The wire schemas of the ingest queue and of a job's progress (the catalog's and its workers' only)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field

from finprint.schemas.catalog import IngestJobOut
from finprint.schemas.common import Inbound


class IngestJobProgressOut(IngestJobOut):
    started_at: datetime | None = Field(None, description="When workers could first take its items.")
    finished_at: datetime | None = Field(None, description="When its last item was finished.")


class IngestItemSpec(Inbound):
    item_key: str = Field(min_length=1, max_length=1000, examples=["2019/IMG_0042.jpg"])
    payload: dict[str, Any] = Field(
        {}, description="The manifest row: observed_at, latitude, individual_id..."
    )
    content_key: str | None = Field(
        None, max_length=1000, description="The object's name in the job's S3 source, when it has one."
    )


class IngestItemsAddSpecs(Inbound):
    items: list[IngestItemSpec] = Field(min_length=1, max_length=10_000)


class ClaimRequest(Inbound):
    worker_id: str = Field(min_length=1, max_length=200)
    limit: int = Field(8, ge=1, le=500)
    lease_s: float = Field(60.0, gt=0, le=3600)
    job_id: str | None = Field(None, description="Only this job's items.")
    max_attempts: int = Field(
        5, ge=1, le=1000, description="An item claimed this often already fails instead."
    )


class ClaimedItem(BaseModel):
    id: str
    org_id: str
    job_id: str
    item_key: str
    payload: dict[str, Any]
    content_key: str | None
    attempts: int
    job_options: dict[str, Any]


class ClaimResponse(BaseModel):
    items: list[ClaimedItem]
    remaining: int = Field(
        description="Items of the job (or of all running jobs) not final yet, claimed ones included."
    )


class RenewRequest(Inbound):
    worker_id: str = Field(min_length=1, max_length=200)
    item_ids: list[str] = Field(min_length=1, max_length=500)
    lease_s: float = Field(60.0, gt=0, le=3600)


class RenewResponse(BaseModel):
    renewed: list[str] = Field(description="The items this worker still holds; the others were lost.")


class ReleaseRequest(Inbound):
    worker_id: str = Field(min_length=1, max_length=200)
    item_ids: list[str] = Field(min_length=1, max_length=500)
    reason: str = Field(max_length=2000, description="Why they were not processed (the service that failed).")


class ReleaseResponse(BaseModel):
    released: list[str] = Field(description="The items given back (those this worker still held).")


class CompleteRequest(Inbound):
    worker_id: str = Field(min_length=1, max_length=200)
    status: Literal["done", "failed", "skipped"]
    media_id: str | None = None
    result: dict[str, Any] = {}
    error: str | None = Field(None, max_length=2000)
