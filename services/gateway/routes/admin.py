"""Administration of an organisation: users and API keys (admin role)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Body, Depends

from finprint.schemas.catalog import OrganisationSettings
from services.gateway.adapters.catalog import segment
from services.gateway.dependencies import GatewayContext, gateway_context, require
from services.gateway.domain.principal import Principal, Role

router = APIRouter(prefix="/v1", tags=["administration"])
Admin = Annotated[Principal, Depends(require(Role.admin))]
Viewer = Annotated[Principal, Depends(require(Role.viewer))]
Context = Annotated[GatewayContext, Depends(gateway_context)]


@router.get("/users", summary="The organisation's users")
async def list_users(principal: Admin, ctx: Context) -> list[dict]:
    return await ctx.catalog.forward("GET", f"/v1/orgs/{principal.org_id}/users")


@router.post("/users", status_code=201, summary="Add a user")
async def create_user(principal: Admin, ctx: Context, body: Annotated[dict, Body(examples=[
        {"email": "ana@whales.org", "display_name": "Ana", "password": "a long passphrase", "role": "reviewer"}])]
        ) -> dict:
    return await ctx.catalog.forward("POST", f"/v1/orgs/{principal.org_id}/users", json=body)


@router.get("/api-keys", summary="The organisation's API keys (never the keys themselves)")
async def list_api_keys(principal: Admin, ctx: Context) -> list[dict]:
    return await ctx.catalog.forward("GET", f"/v1/orgs/{principal.org_id}/api-keys")


@router.post("/api-keys", status_code=201, summary="Create an API key (shown once)")
async def create_api_key(principal: Admin, ctx: Context, body: Annotated[dict, Body(examples=[
        {"name": "partner platform", "role": "contributor"}])]) -> dict:
    return await ctx.catalog.forward("POST", f"/v1/orgs/{principal.org_id}/api-keys", json=body)


@router.delete("/api-keys/{key_id}", summary="Revoke an API key")
async def revoke_api_key(key_id: str, principal: Admin, ctx: Context) -> dict:
    revoked = await ctx.catalog.forward("DELETE", f"/v1/orgs/{principal.org_id}/api-keys/{segment(key_id)}")
    # A revoked key must stop working at once in this process, not after the verification cache expires.
    ctx.api_key_cache.clear()
    return revoked


@router.get("/settings", summary="The organisation's settings (auto-accept precision target)")
async def get_settings(principal: Viewer, ctx: Context) -> OrganisationSettings:
    return OrganisationSettings.model_validate(await ctx.catalog.settings(principal.org_id))


@router.put("/settings", summary="Change the organisation's settings (audited)",
            description="`auto_accept_precision`: a stored match (`POST /v1/encounters`, `POST /v1/identify?store=true`, "
            "ingest) whose top candidate clears its species' cut for this precision target is confirmed without "
            "review, decided by `auto-accept` and audited with its probability and the cut; null turns it off. "
            "The cuts and their measured precision are on the model card (docs/models.md).")
async def put_settings(principal: Admin, ctx: Context, body: OrganisationSettings) -> OrganisationSettings:
    updated = await ctx.catalog.forward("PUT", f"/v1/orgs/{principal.org_id}/settings",
                                        json={**body.model_dump(), "updated_by": principal.subject})
    return OrganisationSettings.model_validate(updated)
