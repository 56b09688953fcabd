"""The catalogue through the public API: individuals, encounters, media, the review queue,
comments, exports, species. Each route checks the caller's role and forwards to the catalog scoped
to the caller's organisation, so another organisation's data is simply not found (404).
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Body, Depends, Query, Response

from finprint.problems import Problem
from finprint.schemas.catalog import ExplanationOut
from finprint.schemas.gateway import DuplicateScan, PossibleDuplicate
from services.gateway.adapters.catalog import segment
from services.gateway.application import duplicates
from services.gateway.application import explain as explaining
from services.gateway.dependencies import GatewayContext, gateway_context, require
from services.gateway.domain.paging import decode_cursor, public_page
from services.gateway.domain.principal import Principal, Role

router = APIRouter(prefix="/v1", tags=["catalogue"])
Cursor = Annotated[str | None, Query(description="From the previous page's `next_cursor`.")]
PageLimit = Annotated[int, Query(ge=1, le=500)]
UUID_RE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
Viewer = Annotated[Principal, Depends(require(Role.viewer))]
Contributor = Annotated[Principal, Depends(require(Role.contributor))]
Reviewer = Annotated[Principal, Depends(require(Role.reviewer))]
Context = Annotated[GatewayContext, Depends(gateway_context)]
# Filters by sighting, shared by the lists of individuals, encounters and identifications.
Since = Annotated[str | None, Query(description="On or after this moment, with its time zone "
                                    "(e.g. 2024-06-01T00:00:00Z).", examples=["2024-06-01T00:00:00Z"])]
Until = Annotated[str | None, Query(description="Before this moment, with its time zone.")]
Location = Annotated[str | None, Query(max_length=200, description="Part of the place's name, any case.")]
Species = Annotated[str | None, Query(max_length=100, description="A key of `GET /v1/species`.")]
Dated = Annotated[bool | None, Query(description="Only dated sightings (true), or only undated ones (false).")]


def _org(principal: Principal) -> str:
    return f"/v1/orgs/{principal.org_id}"


async def _page(ctx: GatewayContext, path: str, cursor: str | None, limit: int, **filters: Any) -> dict:
    offset = decode_cursor(cursor)
    params = {"offset": offset, "limit": limit, **{k: v for k, v in filters.items() if v is not None}}
    return public_page(await ctx.catalog.forward("GET", path, params=params), offset)


async def resolve_individual(ctx: GatewayContext, principal: Principal, ref: str) -> dict:
    """An individual by catalogue code (what researchers use) or by id."""
    if UUID_RE.match(ref):
        try:
            return await ctx.catalog.forward("GET", f"{_org(principal)}/individuals/{segment(ref)}")
        except Problem as problem:
            if problem.status != 404:
                raise
    found = await ctx.catalog.individual_by_code(principal.org_id, ref)
    if found is None:
        raise Problem(404, f"Individual {ref} was not found.", slug="not-found")
    return found


async def _reindex(ctx: GatewayContext, principal: Principal, species: str | None) -> None:
    """Make the matcher pull the catalogue's changes now, so the next identify sees them."""
    if species:
        await ctx.pipeline.sync(principal.org_id, species)


# --- species ------------------------------------------------------------------------------------

@router.get("/species", summary="The species Finprint knows")
async def list_species(_: Viewer, ctx: Context) -> list[dict]:
    return await ctx.catalog.forward("GET", "/v1/species")


@router.get("/stats", summary="Figures for charts: individuals by species, sightings by month, reviews")
async def catalogue_stats(principal: Viewer, ctx: Context) -> dict:
    return await ctx.catalog.forward("GET", f"{_org(principal)}/stats")


# --- individuals --------------------------------------------------------------------------------

@router.get("/individuals", summary="Browse and search individuals",
            description="`since`, `until` and `location` keep the individuals sighted in that period, at that place.")
async def list_individuals(principal: Viewer, ctx: Context, cursor: Cursor = None, limit: PageLimit = 50,
                           species: Species = None,
                           q: Annotated[str | None, Query(max_length=100, description="Code or name.")] = None,
                           sex: Literal["female", "male", "unknown"] | None = None, since: Since = None,
                           until: Until = None, location: Location = None) -> dict:
    return await _page(ctx, f"{_org(principal)}/individuals", cursor, limit, species=species, q=q, sex=sex,
                       since=since, until=until, location=location)


@router.post("/individuals", status_code=201, summary="Catalogue a new individual")
async def create_individual(principal: Contributor, ctx: Context, body: Annotated[dict, Body(examples=[
        {"catalogue_code": "HW-0042", "species": "humpback_whale", "name": "Salt", "sex": "female"}])]) -> dict:
    return await ctx.catalog.forward("POST", f"{_org(principal)}/individuals", json=body,
                                     params={"actor": principal.subject})


@router.get("/individuals/{ref}", summary="An individual, with its sightings")
async def get_individual(ref: str, principal: Viewer, ctx: Context) -> dict:
    individual = await resolve_individual(ctx, principal, ref)
    sightings = await ctx.catalog.forward("GET", f"{_org(principal)}/encounters",
                                          params={"individual_id": individual["id"], "limit": 200})
    return {**individual, "sightings": sightings["items"], "sightings_total": sightings["total"]}


@router.patch("/individuals/{ref}", summary="Change an individual's details")
async def update_individual(ref: str, principal: Reviewer, ctx: Context, body: dict) -> dict:
    individual = await resolve_individual(ctx, principal, ref)
    return await ctx.catalog.forward("PATCH", f"{_org(principal)}/individuals/{individual['id']}", json=body,
                                     params={"actor": principal.subject})


@router.get("/individuals/{ref}/history", summary="The audit log of an individual")
async def individual_history(ref: str, principal: Viewer, ctx: Context) -> list[dict]:
    individual = await resolve_individual(ctx, principal, ref)
    return await ctx.catalog.forward("GET", f"{_org(principal)}/individuals/{individual['id']}/history")


@router.post("/individuals:merge", summary="Merge individuals catalogued twice into one")
async def merge_individuals(principal: Reviewer, ctx: Context, body: Annotated[dict, Body(examples=[
        {"target": "HW-0042", "sources": ["HW-0311"], "reason": "same notch pattern"}])]) -> dict:
    target = await resolve_individual(ctx, principal, str(body.get("target", "")))
    sources = [await resolve_individual(ctx, principal, str(s)) for s in body.get("sources") or []]
    if not sources:
        raise Problem(422, "Name at least one source individual to merge.", slug="validation-error",
                      errors=[{"field": "sources", "message": "empty", "type": "missing"}])
    result = await ctx.catalog.forward("POST", f"{_org(principal)}/individuals:merge", json={
        "target_id": target["id"], "source_ids": [s["id"] for s in sources], "reason": body.get("reason"),
        "actor": principal.subject})
    await _reindex(ctx, principal, target.get("species"))
    return result


@router.post("/individuals/{ref}:split", summary="Split some photos of an individual into a new one")
async def split_individual(ref: str, principal: Reviewer, ctx: Context, body: Annotated[dict, Body(examples=[
        {"annotation_ids": ["..."], "new_individual": {"catalogue_code": "HW-0500", "species": "humpback_whale"}}])]
        ) -> dict:
    individual = await resolve_individual(ctx, principal, ref)
    result = await ctx.catalog.forward("POST", f"{_org(principal)}/individuals/{individual['id']}:split",
                                       json={**body, "actor": principal.subject})
    await _reindex(ctx, principal, individual.get("species"))
    return result


# --- encounters and media ----------------------------------------------------------------------

@router.get("/encounters", summary="Browse encounters (sightings), newest first, the undated last",
            description="`species`: with an animal predicted or identified as that species.")
async def list_encounters(principal: Viewer, ctx: Context, cursor: Cursor = None, limit: PageLimit = 50,
                          individual: Annotated[str | None, Query(description="Catalogue code or id.")] = None,
                          since: Since = None, until: Until = None, species: Species = None,
                          location: Location = None, dated: Dated = None) -> dict:
    individual_id = (await resolve_individual(ctx, principal, individual))["id"] if individual else None
    return await _page(ctx, f"{_org(principal)}/encounters", cursor, limit, individual_id=individual_id,
                       since=since, until=until, species=species, location=location, dated=dated)


@router.get("/encounters/{encounter_id}", summary="An encounter")
async def get_encounter(encounter_id: str, principal: Viewer, ctx: Context) -> dict:
    return await ctx.catalog.forward("GET", f"{_org(principal)}/encounters/{segment(encounter_id)}")


@router.patch("/encounters/{encounter_id}", summary="Correct an encounter's details")
async def update_encounter(encounter_id: str, principal: Contributor, ctx: Context, body: dict) -> dict:
    return await ctx.catalog.forward("PATCH", f"{_org(principal)}/encounters/{segment(encounter_id)}", json=body)


@router.get("/media/{media_id}", summary="An image's metadata")
async def get_media(media_id: str, principal: Viewer, ctx: Context) -> dict:
    return await ctx.catalog.forward("GET", f"{_org(principal)}/media/{segment(media_id)}")


@router.get("/media/{media_id}/url", summary="A download URL for the image that expires")
async def media_url(media_id: str, principal: Viewer, ctx: Context) -> dict:
    return await ctx.catalog.forward("GET", f"{_org(principal)}/media/{segment(media_id)}/url")


# --- the review queue --------------------------------------------------------------------------

Decision = Literal["pending", "confirmed", "new_individual", "rejected"]


@router.get("/identifications", summary="The review queue (pending by default)",
            description="Each identification names its photo's sighting (`encounter_id`, `occurred_at`, "
            "`location_name`). `species`: of an animal predicted as that species; `since`, `until`, `location`, "
            "`dated`: of a photo whose sighting was then, there, or undated. `decided_by=auto-accept` with "
            "`decision=confirmed`: the matches confirmed without review (`PUT /v1/settings`), which a reviewer "
            "revises with `:decide` like any other.")
async def list_identifications(principal: Viewer, ctx: Context, cursor: Cursor = None, limit: PageLimit = 50,
                               decision: Decision | None = "pending", species: Species = None, since: Since = None,
                               until: Until = None, location: Location = None, dated: Dated = None,
                               decided_by: Annotated[str | None, Query(max_length=200)] = None) -> dict:
    return await _page(ctx, f"{_org(principal)}/identifications", cursor, limit, decision=decision,
                       species=species, since=since, until=until, location=location, dated=dated,
                       decided_by=decided_by)


@router.get("/identifications/{identification_id}", summary="An identification with its candidates")
async def get_identification(identification_id: str, principal: Viewer, ctx: Context) -> dict:
    return await ctx.catalog.forward("GET", f"{_org(principal)}/identifications/{segment(identification_id)}")


@router.get("/identifications/{identification_id}/explanations/{candidate}",
            summary="Why this match: heatmaps of the photo under review and a candidate's photo",
            description="`candidate`: a catalogue code (or individual id) among the identification's candidates. "
            "Each photo gets a heatmap of the regions that drive the similarity (sliding occlusion by the embedder: "
            "hiding a high cell lowers the pair's cosine the most) and a PNG overlay (`overlay_url`, presigned), "
            "to show side by side. Computed on first request (a few seconds on a CPU), kept in the object store "
            "for the next.")
async def explain_candidate(identification_id: str, candidate: str, principal: Viewer, ctx: Context
                            ) -> ExplanationOut:
    return await explaining.explain_candidate(ctx.pipeline, ctx.catalog, principal.org_id, identification_id,
                                              candidate)


@router.post("/identifications/{identification_id}:decide", summary="Confirm a candidate, declare a new "
             "individual, or reject")
async def decide(identification_id: str, principal: Reviewer, ctx: Context, body: Annotated[dict, Body(examples=[
        {"decision": "confirmed", "individual_id": "HW-0042"},
        {"decision": "new_individual", "new_individual": {"catalogue_code": "HW-0501", "species": "humpback_whale"}},
        {"decision": "rejected"}])]) -> dict:
    payload = {**body, "decided_by": principal.subject}
    species = None
    if body.get("decision") == "confirmed" and body.get("individual_id"):
        individual = await resolve_individual(ctx, principal, str(body["individual_id"]))
        payload["individual_id"] = individual["id"]
        species = individual.get("species")
    elif body.get("decision") == "new_individual" and isinstance(body.get("new_individual"), dict):
        species = body["new_individual"].get("species")
    result = await ctx.catalog.forward(
        "POST", f"{_org(principal)}/identifications/{segment(identification_id)}:decide", json=payload)
    # A rejection (e.g. of an auto-accepted match) takes the photo out of its species' index now.
    await _reindex(ctx, principal, species or result.get("species"))
    return result


# --- possible duplicates ------------------------------------------------------------------------

DuplicateStatus = Literal["pending", "merged", "dismissed"]


@router.post("/duplicates:scan", summary="Find individuals catalogued twice and file them for review",
             description="Compares the individuals of each species (or of `species`) by their galleries; pairs closer "
             "than the species' calibrated cut (model card, docs/models.md) join the queue of `GET /v1/duplicates`. "
             "A nightly job runs the same for every organisation (`finprint duplicates`). Pairs already decided are "
             "not filed again.")
async def scan_duplicates(principal: Reviewer, ctx: Context, body: Annotated[dict | None, Body(examples=[
        {"species": ["humpback_whale"]}])] = None) -> DuplicateScan:
    species = (body or {}).get("species")
    if species is not None and (not isinstance(species, list) or not all(isinstance(s, str) for s in species)):
        raise Problem(422, "`species` is a list of species keys.", slug="validation-error",
                      errors=[{"field": "species", "message": "a list of strings", "type": "list_type"}])
    return await duplicates.scan(ctx.pipeline, ctx.catalog, principal.org_id, principal.subject, species)


@router.get("/duplicates", summary="Possible duplicates: two individuals' galleries side by side (pending by default)")
async def list_duplicates(principal: Viewer, ctx: Context, cursor: Cursor = None, limit: PageLimit = 20,
                          status: DuplicateStatus | None = "pending", species: Species = None) -> dict:
    page = await _page(ctx, f"{_org(principal)}/duplicates", cursor, limit, status=status, species=species)
    items = await duplicates.review_items(ctx.catalog, principal.org_id, page["items"])
    return {**page, "items": [i.model_dump() for i in items]}


@router.get("/duplicates/{pair_id}", summary="A possible duplicate")
async def get_duplicate(pair_id: str, principal: Viewer, ctx: Context) -> PossibleDuplicate:
    pair = await ctx.catalog.forward("GET", f"{_org(principal)}/duplicates/{segment(pair_id)}")
    [item] = await duplicates.review_items(ctx.catalog, principal.org_id, [pair])
    return item


@router.post("/duplicates/{pair_id}:decide", summary="Merge the two individuals (one click), or dismiss the pair")
async def decide_duplicate(pair_id: str, principal: Reviewer, ctx: Context, body: Annotated[dict, Body(examples=[
        {"decision": "merged"}, {"decision": "merged", "keep": "HW-0311"}, {"decision": "dismissed"}])]
        ) -> PossibleDuplicate:
    payload = {**body, "decided_by": principal.subject}
    if body.get("keep"):
        payload["keep"] = (await resolve_individual(ctx, principal, str(body["keep"])))["id"]
    pair = await ctx.catalog.forward("POST", f"{_org(principal)}/duplicates/{segment(pair_id)}:decide",
                                     json=payload)
    if pair["status"] == "merged":
        await _reindex(ctx, principal, pair["species"])
    [item] = await duplicates.review_items(ctx.catalog, principal.org_id, [pair])
    return item


# --- comments, audit, exports --------------------------------------------------------------------

@router.get("/comments", summary="Threaded comments on an encounter or an identification")
async def list_comments(principal: Viewer, ctx: Context, encounter_id: str | None = None,
                        identification_id: str | None = None) -> list[dict]:
    params = {k: v for k, v in {"encounter_id": encounter_id, "identification_id": identification_id}.items() if v}
    return await ctx.catalog.forward("GET", f"{_org(principal)}/comments", params=params)


@router.post("/comments", status_code=201, summary="Comment, or reply to a comment")
async def add_comment(principal: Viewer, ctx: Context, body: Annotated[dict, Body(examples=[
        {"identification_id": "...", "body": "The trailing-edge notch matches."}])]) -> dict:
    return await ctx.catalog.forward("POST", f"{_org(principal)}/comments",
                                     json={**body, "author": principal.subject})


@router.get("/audit", summary="The organisation's audit log")
async def audit_log(principal: Reviewer, ctx: Context, cursor: Cursor = None, limit: PageLimit = 100) -> dict:
    return await _page(ctx, f"{_org(principal)}/audit", cursor, limit)


EXPORTS = {"encounters.csv": "text/csv", "dataset.zip": "application/zip", "dwca.zip": "application/zip"}


@router.get("/exports/{name}", summary="Exports: encounters.csv, dataset.zip (a folder per individual), "
            "dwca.zip (Darwin Core Archive for GBIF/OBIS)")
async def export(name: Literal["encounters.csv", "dataset.zip", "dwca.zip"], principal: Viewer,
                 ctx: Context) -> Response:
    response = await ctx.catalog.client.request("GET", f"{_org(principal)}/exports/{name}")
    return Response(response.content, media_type=EXPORTS[name],
                    headers={"Content-Disposition": f'attachment; filename="{name}"'})
