"""Identify: which species and which catalogued individual a photo (or an encounter's photos) shows.

Nothing is stored here; ``POST /v1/identify?store=true`` hands its analysis to the enrolment service.
"""

from __future__ import annotations

from collections.abc import Sequence

from finprint.schemas.gateway import (
    NO_CETACEAN,
    EncounterIdentifyResponse,
    EncounterPhoto,
    FusedIdentification,
    IdentifyModels,
    IdentifyResponse,
)
from finprint.schemas.matcher import QueryResult
from services.gateway.adapters.catalog import CatalogClient
from services.gateway.adapters.pipeline import Pipeline, WrongModelVersion
from services.gateway.adapters.uploads import Upload
from services.gateway.application.analysis import Analysis, analyse, analyse_all, resolve_candidates
from services.gateway.domain.identify import (
    fused_embedding,
    identify_result,
    mean_species,
    public_candidates,
    public_ranking,
    species_group,
)


def _names(individuals: dict[str, dict]) -> dict[str, str | None]:
    return {i: ind.get("name") for i, ind in individuals.items()}


async def identify(pipeline: Pipeline, catalog: CatalogClient, org_id: str, upload: Upload,
                   precision_target: float | None = None) -> tuple[IdentifyResponse, Analysis]:
    """``precision_target``: the organisation's auto-accept target, when the answer is to be stored."""
    analysis = await analyse(pipeline, org_id, upload, precision_target=precision_target)
    models = IdentifyModels(detector=analysis.detect.model,
                            embedder=analysis.embed.model if analysis.embed else None)
    if analysis.embed is None:
        return IdentifyResponse(results=[], reason=analysis.detect.reason or NO_CETACEAN, model=models), analysis
    individuals = await resolve_candidates(catalog, org_id, [analysis])
    codes, names = analysis.codes or {}, _names(individuals)
    results = [
        identify_result(det, res.species, match, codes, names, version)
        for det, res, match, version in zip(analysis.detect.detections, analysis.embed.results, analysis.matches,
                                            analysis.versions)
    ]
    return IdentifyResponse(results=results, model=models), analysis


def _most_confident(analysis: Analysis) -> int:
    assert analysis.embed is not None
    return max(range(len(analysis.detect.detections)), key=lambda i: analysis.detect.detections[i].score)


async def _fused_search(pipeline: Pipeline, org_id: str, group: str,
                        used: list[tuple[Analysis, int]]) -> QueryResult | None:
    """The mean of the photos' embeddings searched in the fused species' shard. Only embeddings of the
    version that shard serves are averaged; mid-upgrade, photos of other species may have been searched
    with another version, and should none be of the one it serves, there is no fused answer."""
    version = used[0][0].versions[used[0][1]]
    for _ in range(2):
        vectors = [a.vectors[i] for a, i in used if a.versions[i] == version]
        if not vectors:
            return None
        try:
            return (await pipeline.search(org_id, group, version, fused_embedding(vectors))).match
        except WrongModelVersion as wrong:
            version = wrong.serving
    return None


async def identify_encounter(pipeline: Pipeline, catalog: CatalogClient, org_id: str, uploads: Sequence[Upload],
                             concurrency: int) -> EncounterIdentifyResponse:
    """Several photos of one animal: each photo's own answer, and one answer from all of them."""
    analyses = await analyse_all(pipeline, org_id, uploads, concurrency)
    used = [(a, _most_confident(a)) for a in analyses if a.embed is not None]
    models = IdentifyModels(detector=analyses[0].detect.model,
                            embedder=next((a.embed.model for a, _ in used if a.embed), None))
    fused_match = None
    fused_species: list = []
    if used:
        fused_species = mean_species([a.embed.results[i].species for a, i in used if a.embed])
        group = species_group(fused_species)
        fused_match = await _fused_search(pipeline, org_id, group, used)
    ids = sorted(set().union(*(a.candidate_ids() for a in analyses))
                 | {c.individual_id for c in (fused_match.candidates if fused_match else [])})
    individuals = await catalog.individuals_by_id(org_id, ids)
    codes = {i: ind["catalogue_code"] for i, ind in individuals.items()}
    names = _names(individuals)
    photos = []
    for upload, analysis in zip(uploads, analyses):
        if analysis.embed is None:
            photos.append(EncounterPhoto(filename=upload.filename, result=None,
                                         reason=analysis.detect.reason or NO_CETACEAN))
            continue
        best = _most_confident(analysis)
        photos.append(EncounterPhoto(filename=upload.filename, result=identify_result(
            analysis.detect.detections[best], analysis.embed.results[best].species, analysis.matches[best],
            codes, names, analysis.versions[best])))
    if not used:
        return EncounterIdentifyResponse(fused=None, photos=photos, reason=NO_CETACEAN, model=models)
    fused = FusedIdentification(
        species=fused_species, candidates=public_candidates(fused_match, codes, names),
        new_individual=1.0 if fused_match is None else fused_match.new_individual,
        top_candidate_probability=None if fused_match is None else fused_match.top_candidate_probability,
        ranking=public_ranking(fused_match, codes), photos_used=len(used))
    return EncounterIdentifyResponse(fused=fused, photos=photos, model=models)
