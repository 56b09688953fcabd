"""Model versions: what each shard serves, and the operators' upgrade (re-embed, then a blue/green swap)
and rollback. docs/model-upgrades.md tells the procedure."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends
from pydantic import Field

from finprint.problems import Problem
from finprint.schemas.common import Inbound
from finprint.schemas.embeddings import MODEL_VERSION_PATTERN
from services.gateway.dependencies import GatewayContext, gateway_context, require
from services.gateway.domain.principal import Principal, Role
from services.gateway.ingest.progress import JobProgress, job_progress

router = APIRouter(prefix="/v1", tags=["model versions"])
Viewer = Annotated[Principal, Depends(require(Role.viewer))]
Admin = Annotated[Principal, Depends(require(Role.admin))]
Context = Annotated[GatewayContext, Depends(gateway_context)]


class ModelUpgrade(Inbound):
    model_version: str = Field(pattern=MODEL_VERSION_PATTERN, max_length=100, examples=["finprint_embedder:3"],
                               description="A version the embedder serves (its `extra_model_versions`).")


class ModelRollback(Inbound):
    species_group: str | None = Field(None, max_length=64, description="One shard; every shard when absent.")


async def _embedder_model(ctx: GatewayContext, version: str | None = None) -> dict[str, Any]:
    params = {"model_version": version} if version else {}
    response = await ctx.pipeline.embedder.request("GET", "/v1/model", params=params, idempotent=True)
    return response.json()


@router.get("/model", summary="The models served, and per species the model version its index answers from")
async def served_models(principal: Viewer, ctx: Context) -> dict[str, Any]:
    embedder = await _embedder_model(ctx)
    shards = await ctx.catalog.forward("GET", f"/v1/orgs/{principal.org_id}/model-generations")
    return {"embedder": {"default": embedder["model"], "served_versions": embedder.get("served_versions", [])},
            "shards": shards}


@router.post("/admin/model-upgrades", status_code=201, response_model=JobProgress,
             summary="Re-embed the catalogue with another model version, then swap to it (an ingest job)")
async def start_model_upgrade(body: ModelUpgrade, principal: Admin, ctx: Context) -> JobProgress:
    """Every stored photo is embedded again by `model_version` in the background, on the ingest queue
    (progress: `GET /v1/ingest/jobs/{id}`); identify answers from the serving version meanwhile. When the
    job has every photo, each species swaps to the new version at once; the old one is kept for a rollback."""
    try:
        await _embedder_model(ctx, body.model_version)
    except Problem as problem:
        if problem.status != 404:
            raise
        raise Problem(422, f"the embedder does not serve {body.model_version}: {problem.detail}. Add its version "
                      "to FINPRINT_EMBEDDER_EXTRA_MODEL_VERSIONS first (docs/model-upgrades.md).",
                      slug="model-version-not-served") from None
    job = await ctx.catalog.forward("POST", f"/v1/orgs/{principal.org_id}/model-upgrades",
                                    json={"model_version": body.model_version, "actor": principal.subject})
    return job_progress(job)


@router.post("/admin/model-rollback", summary="Serve the previous model version again (its index was kept)")
async def rollback_model(body: ModelRollback, principal: Admin, ctx: Context) -> dict[str, Any]:
    return await ctx.catalog.forward("POST", f"/v1/orgs/{principal.org_id}/model-generations:rollback",
                                     json={"species_group": body.species_group, "actor": principal.subject})
