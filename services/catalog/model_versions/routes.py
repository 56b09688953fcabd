"""Routes of model versions: start a re-embedding, the generations each shard serves, a rollback, and
the workers' write of a re-embedded vector."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse
from pydantic import Field

from finprint.schemas.catalog import EmbeddingIn
from finprint.schemas.common import Inbound
from finprint.schemas.embeddings import MODEL_VERSION_PATTERN
from services.catalog.ingest import jobs
from services.catalog.model_versions import service as versions
from services.catalog.shared.dependencies import DbSession, OrgId

router = APIRouter(prefix="/v1/orgs/{org_id}", tags=["model versions"])


class ReembedRequest(Inbound):
    model_version: str = Field(pattern=MODEL_VERSION_PATTERN, max_length=100, examples=["finprint_embedder:3"])
    actor: str | None = Field(None, max_length=200)


class RollbackRequest(Inbound):
    species_group: str | None = Field(None, max_length=64, description="One shard only; every shard when absent.")
    actor: str | None = Field(None, max_length=200)


class RollbackResponse(Inbound):
    shards: list[str] = Field(description="`species: from -> to` of each shard rolled back.")


class StoredEmbedding(Inbound):
    embedding_id: str
    annotation_id: str
    model_version: str
    change_seq: int


@router.post("/model-upgrades", status_code=201, summary="Re-embed the catalogue with a model version (an ingest "
             "job; 200 with the running job when it is already under way)")
def start_reembed(org_id: OrgId, payload: ReembedRequest, db: DbSession) -> JSONResponse:
    job, created = versions.start_reembed(db, org_id, payload.model_version, payload.actor)
    body = jobs.job_out(db, job).model_dump(mode="json")
    db.commit()
    return JSONResponse(body, status_code=201 if created else 200)


@router.get("/model-generations", summary="Per shard: embeddings by model version and the generation it serves")
def model_generations(org_id: OrgId, db: DbSession) -> dict[str, dict]:
    return versions.upgrade_summary(db, org_id)


@router.post("/model-generations:rollback", summary="Serve the previous generation again (its index was kept)")
def rollback(org_id: OrgId, payload: RollbackRequest, db: DbSession) -> RollbackResponse:
    shards = versions.rollback(db, org_id, payload.actor, payload.species_group)
    db.commit()
    return RollbackResponse(shards=shards)


@router.put("/annotations/{annotation_id}/embeddings", summary="Store an annotation's embedding of one model "
            "version (a re-embedding worker; a replay replaces it)")
def store_embedding(org_id: OrgId, annotation_id: str, payload: EmbeddingIn, db: DbSession) -> StoredEmbedding:
    stored = versions.store_embedding(db, org_id, annotation_id, payload)
    db.commit()
    return StoredEmbedding(embedding_id=stored.id, annotation_id=annotation_id, model_version=stored.model_version,
                           change_seq=stored.change_seq)
