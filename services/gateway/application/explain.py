"""Why this match: the embedder's heatmaps of the photo under review and a candidate's photo, kept by
the catalog (overlays in the object store) so the pair is computed once, whoever opens it next."""

from __future__ import annotations

from typing import Any

from finprint.problems import Problem
from finprint.schemas.catalog import ExplanationOut
from services.gateway.adapters.catalog import CatalogClient, segment
from services.gateway.adapters.pipeline import Pipeline


def _candidate(identification: dict[str, Any], ref: str) -> dict[str, Any]:
    """The identification's candidate named by catalogue code (what reviewers see) or individual id."""
    for candidate in identification["candidates"]:
        if ref in (candidate.get("catalogue_code"), candidate["individual_id"]):
            return candidate
    raise Problem(404, f"{ref} is not a candidate of identification {identification['id']}.", slug="not-found")


async def _candidate_photo(catalog: CatalogClient, org_id: str, candidate: dict[str, Any]) -> str:
    """The media id of the candidate's photo to compare: the one that gave its score, or (identifications
    stored before scores named their photo, or that photo since removed) its first annotated photo."""
    org = f"/v1/orgs/{org_id}"
    best = candidate.get("best_annotation_id")
    if best:
        try:
            return (await catalog.forward("GET", f"{org}/annotations/{segment(best)}"))["media_id"]
        except Problem as problem:
            if problem.status != 404:
                raise
    page = await catalog.forward("GET", f"{org}/annotations",
                                 params={"individual_id": candidate["individual_id"], "limit": 1})
    if not page["items"]:
        raise Problem(404, f"Candidate {candidate['individual_id']} has no photo to compare.", slug="not-found")
    return page["items"][0]["media_id"]


async def explain_candidate(pipeline: Pipeline, catalog: CatalogClient, org_id: str, identification_id: str,
                            ref: str) -> ExplanationOut:
    identification = await catalog.forward("GET", f"/v1/orgs/{org_id}/identifications/{segment(identification_id)}")
    candidate = _candidate(identification, ref)
    path = (f"/v1/orgs/{org_id}/identifications/{segment(identification_id)}/explanations/"
            f"{segment(candidate['individual_id'])}")
    try:
        return ExplanationOut.model_validate(await catalog.forward("GET", path))
    except Problem as problem:
        if problem.status != 404:
            raise
    candidate_media = await _candidate_photo(catalog, org_id, candidate)
    query = await catalog.media_content(org_id, identification["media_id"])
    photo = await catalog.media_content(org_id, candidate_media)
    explained = await pipeline.explain(query, photo, identification.get("model_version"))
    sides = {side: {"media_id": media_id, "heatmap": shown.heatmap, "overlay_png_base64": shown.overlay_png}
             for side, media_id, shown in zip(("query", "candidate"), (identification["media_id"], candidate_media),
                                              explained.photos)}
    saved = await catalog.forward("PUT", path, json={
        "model_version": f"{explained.model.name}:{explained.model.version}", "similarity": explained.similarity,
        "grid": explained.grid, "window": explained.window, **sides})
    return ExplanationOut.model_validate(saved)
