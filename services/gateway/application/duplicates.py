"""Possible duplicates: individuals of one species catalogued twice, found by the matcher (galleries
closer than the model card's cut), filed into the review queue, merged or dismissed by a reviewer.

``scan`` is what the nightly job (``finprint duplicates``, deploy/k8s/jobs/duplicates-cronjob.yaml) and
``POST /v1/duplicates:scan`` run for an organisation; the queue shows both galleries side by side.
"""

from __future__ import annotations

from typing import Any

from finprint.problems import Problem
from finprint.schemas.gateway import DuplicateScan, DuplicateScanSpecies, DuplicateSide, PossibleDuplicate
from services.gateway.adapters.catalog import CatalogClient, segment
from services.gateway.adapters.pipeline import Pipeline

GALLERY_PHOTOS = 6
SCAN_LIMIT = 5000
"""Pairs one scan files per species at most (best first): a first scan of a large archive files the
closest, the next night's the rest."""


async def _pairs(pipeline: Pipeline, org_id: str, group: str, version: str) -> dict[str, Any]:
    """The matcher's pairs for one species, from the index of the version its shard serves (the embedder's
    default, or another one during or after a model upgrade)."""
    for _ in range(2):
        try:
            found = await pipeline.matcher_for(org_id, group).post_json("/v1/duplicates", {
                "org_id": org_id, "species_group": group, "model_version": version, "limit": SCAN_LIMIT},
                idempotent=True)
            return {**found, "model_version": version}
        except Problem as problem:
            if problem.status != 409 or not problem.extensions.get("serving_version"):
                raise
            version = str(problem.extensions["serving_version"])
    raise Problem(409, f"the {group} shard changed its model version twice during a scan; scan again",
                  slug="model-version-mismatch")


async def scan(pipeline: Pipeline, catalog: CatalogClient, org_id: str, actor: str,
               species: list[str] | None = None) -> DuplicateScan:
    """Every species index of the organisation (or those named) compared with itself; pairs filed."""
    version = await pipeline.embedder_version()
    if not species:
        species = [s["key"] for s in await catalog.forward("GET", "/v1/species") if s.get("is_cetacean", True)]
    results: dict[str, DuplicateScanSpecies] = {}
    for group in species:
        found = await _pairs(pipeline, org_id, group, version)
        if not found["individuals"]:
            continue
        summary = DuplicateScanSpecies(cut=found["cut"], individuals=found["individuals"], found=len(found["pairs"]))
        if found["pairs"]:
            filed = await catalog.forward("POST", f"/v1/orgs/{org_id}/duplicates:file", json={
                "species": group, "model_version": found["model_version"], "filed_by": actor, "pairs": [
                    {"individual_a_id": p["individual_a"], "individual_b_id": p["individual_b"], "score": p["score"],
                     "annotation_a_id": p["embedding_a"], "annotation_b_id": p["embedding_b"]}
                    for p in found["pairs"]]})
            summary = summary.model_copy(update=filed)
        results[group] = summary
    return DuplicateScan(model_version=version, species=results)


async def _side(catalog: CatalogClient, org_id: str, individual: dict[str, Any], closest: str | None) -> DuplicateSide:
    page = await catalog.forward("GET", f"/v1/orgs/{org_id}/annotations",
                                 params={"individual_id": individual["id"], "limit": GALLERY_PHOTOS})
    photos = [a["media_id"] for a in page["items"]]
    if closest:
        try:
            first = (await catalog.forward("GET", f"/v1/orgs/{org_id}/annotations/{segment(closest)}"))["media_id"]
            photos = [first, *(m for m in photos if m != first)][:GALLERY_PHOTOS]
        except Problem as problem:
            if problem.status != 404:  # a photo removed since the scan: the gallery as it is
                raise
    return DuplicateSide(id=individual["id"], catalogue_code=individual.get("catalogue_code"),
                         name=individual.get("name"), status=individual.get("status", "active"),
                         photos=list(dict.fromkeys(photos)))


async def review_items(catalog: CatalogClient, org_id: str, pairs: list[dict[str, Any]]) -> list[PossibleDuplicate]:
    """The catalog's pairs with both individuals and their galleries, as the review page shows them."""
    ids = sorted({i for p in pairs for i in (p["individual_a_id"], p["individual_b_id"])})
    individuals = await catalog.individuals_by_id(org_id, ids)
    items = []
    for pair in pairs:
        sides = [await _side(catalog, org_id, individuals.get(pair[f"individual_{x}_id"], {"id": pair[f"individual_{x}_id"]}),
                             pair.get(f"annotation_{x}_id")) for x in ("a", "b")]
        items.append(PossibleDuplicate(
            id=pair["id"], species=pair["species"], score=pair["score"], model_version=pair["model_version"],
            status=pair["status"], a=sides[0], b=sides[1], merge=f"/v1/duplicates/{pair['id']}:decide",
            decided_by=pair.get("decided_by"), decided_at=pair.get("decided_at")))
    return items
