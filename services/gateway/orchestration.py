"""Identify and enrol: detector -> embedder -> matcher -> catalog, in that order.

Every call has a timeout and idempotent calls are retried (finprint.http); a failing step ends
the request with a 503 and Retry-After. The catalogue is written last, in ONE catalog call that is
a single transaction, so it holds the whole enrolment or none of it.
"""

from __future__ import annotations

import asyncio
import base64
from dataclasses import dataclass, field

import numpy as np

from finprint.schemas.detector import DetectResponse, Detection
from finprint.schemas.embedder import EmbedResponse
from finprint.schemas.embeddings import encode_vector
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
from services.gateway.adapters.pipeline import Pipeline
from services.gateway.adapters.uploads import Upload
from services.gateway.domain.identify import (
    fused_embedding,
    identify_result,
    mean_species,
    public_candidates,
    public_ranking,
    species_group,
)


@dataclass
class Analysis:
    """What the models and the matcher say about one photo, before anything is stored."""

    detect: DetectResponse
    embed: EmbedResponse | None
    vectors: list[np.ndarray]
    groups: list[str]
    matches: list[QueryResult | None]
    codes: dict[str, str] = field(default_factory=dict)
    """Catalogue codes of the candidate individuals, by catalogue id."""

    @property
    def model_version(self) -> str | None:
        return None if self.embed is None else f"{self.embed.model.name}:{self.embed.model.version}"


def _whole_photo(detect: DetectResponse) -> Detection:
    return Detection(box=(0, 0, detect.image.width, detect.image.height), view="other",
                     score=detect.cetacean_probability, view_scores={})


# The embedder is given the whole photo (its letterbox bars trimmed), never the detector's box.
# The embedder learnt from photos that are already crops of the animal, and the detector's boxes
# (its class-activation map, one region per photo) cover a tight core of it, often one lobe of a
# fluke. Measured with `finprint evaluate --api` on the validation individuals (2026-12-04,
# embedder 2): MAP@5 with the whole photo / the box / the box grown 2x about its centre was
# humpback 0.662 / 0.276 / 0.476, right whale 0.572 / 0.327 / 0.518, beluga 0.528 / 0.243 / 0.449.
# On full aerial frames (whale small in the frame) the box gained 0.04 on 17 queries, within noise.
def embedding_region(detect: DetectResponse) -> tuple[int, int, int, int]:
    """The region of the photo the embedder sees: all of it."""
    return (0, 0, detect.image.width, detect.image.height)


async def analyse(pipeline: Pipeline, org_id: str, upload: Upload, *, known_cetacean: bool = False) -> Analysis:
    """Detect, embed and search one photo.

    ``known_cetacean``: the uploader states which animal this is, so a photo the detector missed is
    taken whole rather than refused (a researcher's identified photo must not be lost to a false
    negative of the detector).
    """
    decoded = await pipeline.decode(upload.data)
    detect = await pipeline.detect(upload.data, upload.content_type, decoded)
    if not detect.detections and known_cetacean:
        detect = detect.model_copy(update={"detections": [_whole_photo(detect)], "reason": None})
    if not detect.detections:
        return Analysis(detect, None, [], [], [])
    boxes = [embedding_region(detect) for _ in detect.detections]
    embed, vectors = await pipeline.embed(upload.data, upload.filename, upload.content_type, boxes, decoded)
    groups = [species_group(result.species) for result in embed.results]
    version = f"{embed.model.name}:{embed.model.version}"
    matches = await asyncio.gather(*(pipeline.search(org_id, g, version, v) for g, v in zip(groups, vectors)))
    return Analysis(detect, embed, vectors, groups, list(matches))


def _candidate_ids(analysis: Analysis) -> list[str]:
    ids = {c.individual_id for m in analysis.matches if m for c in m.candidates}
    return sorted(ids)


async def resolve_candidates(catalog: CatalogClient, org_id: str, analysis: Analysis) -> dict[str, dict]:
    """Look up the candidate individuals (fills ``analysis.codes``); returns them by catalogue id."""
    individuals = await catalog.individuals_by_id(org_id, _candidate_ids(analysis))
    analysis.codes = {i: ind["catalogue_code"] for i, ind in individuals.items()}
    return individuals


async def identify(pipeline: Pipeline, catalog: CatalogClient, org_id: str, upload: Upload) -> tuple[
        IdentifyResponse, Analysis]:
    analysis = await analyse(pipeline, org_id, upload)
    models = IdentifyModels(detector=analysis.detect.model,
                            embedder=analysis.embed.model if analysis.embed else None)
    if analysis.embed is None:
        return IdentifyResponse(results=[], reason=analysis.detect.reason or NO_CETACEAN, model=models), analysis
    individuals = await resolve_candidates(catalog, org_id, analysis)
    codes = analysis.codes
    names = {i: ind.get("name") for i, ind in individuals.items()}
    results = [
        identify_result(det, res.species, match, codes, names)
        for det, res, match in zip(analysis.detect.detections, analysis.embed.results, analysis.matches)
    ]
    return IdentifyResponse(results=results, model=models), analysis


def _most_confident(analysis: Analysis) -> int:
    assert analysis.embed is not None
    return max(range(len(analysis.detect.detections)), key=lambda i: analysis.detect.detections[i].score)


async def analyse_all(pipeline: Pipeline, org_id: str, uploads: list[Upload], concurrency: int) -> list[Analysis]:
    """Every photo analysed, at most ``concurrency`` at a time (the model services batch them)."""
    limit = asyncio.Semaphore(concurrency)

    async def one(upload: Upload) -> Analysis:
        async with limit:
            return await analyse(pipeline, org_id, upload)

    return list(await asyncio.gather(*(one(u) for u in uploads)))


async def identify_encounter(pipeline: Pipeline, catalog: CatalogClient, org_id: str, uploads: list[Upload],
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
        vector = fused_embedding([a.vectors[i] for a, i in used])
        fused_match = await pipeline.search(org_id, group, used[0][0].model_version or "", vector)
    ids = sorted({c.individual_id for a in analyses for m in a.matches if m for c in m.candidates}
                 | {c.individual_id for c in (fused_match.candidates if fused_match else [])})
    individuals = await catalog.individuals_by_id(org_id, ids)
    codes = {i: ind["catalogue_code"] for i, ind in individuals.items()}
    names = {i: ind.get("name") for i, ind in individuals.items()}
    photos = []
    for upload, analysis in zip(uploads, analyses):
        if analysis.embed is None:
            photos.append(EncounterPhoto(filename=upload.filename, result=None,
                                         reason=analysis.detect.reason or NO_CETACEAN))
            continue
        best = _most_confident(analysis)
        photos.append(EncounterPhoto(filename=upload.filename, result=identify_result(
            analysis.detect.detections[best], analysis.embed.results[best].species, analysis.matches[best],
            codes, names)))
    if not used:
        return EncounterIdentifyResponse(fused=None, photos=photos, reason=NO_CETACEAN, model=models)
    fused = FusedIdentification(
        species=fused_species, candidates=public_candidates(fused_match, codes, names),
        new_individual=1.0 if fused_match is None else fused_match.new_individual,
        ranking=public_ranking(fused_match, codes), photos_used=len(used))
    return EncounterIdentifyResponse(fused=fused, photos=photos, model=models)


def box_xywh(detection: Detection) -> dict[str, float]:
    x0, y0, x1, y1 = detection.box
    return {"x": x0, "y": y0, "width": max(1, x1 - x0), "height": max(1, y1 - y0)}


def enrol_annotations(analysis: Analysis, decision: dict | None = None) -> list[dict]:
    """The catalog's EnrolAnnotation list for an analysed photo.

    ``decision`` (confirmed / new_individual fields) applies when the uploader said who the animal is;
    otherwise each annotation waits in the review queue with the matcher's candidates.
    """
    assert analysis.embed is not None
    annotations = []
    for det, res, vector, match, group in zip(analysis.detect.detections, analysis.embed.results, analysis.vectors,
                                              analysis.matches, analysis.groups):
        annotation = {
            "box": box_xywh(det),
            "view": det.view,
            "species": group,
            "species_score": next(s.score for s in res.species if s.species == group),
            "embedding": {"model_version": analysis.model_version, "vector": encode_vector(vector)},
            "candidates": [] if match is None else [
                {"individual_id": c.individual_id, "score": c.score, "catalogue_code": analysis.codes.get(c.individual_id)}
                for c in match.candidates
            ],
            "new_individual_probability": 1.0 if match is None else match.new_individual,
            "decision": "pending",
        }
        annotations.append({**annotation, **(decision or {})})
    return annotations


def image_payload(upload: Upload) -> dict[str, str]:
    return {"content_base64": base64.b64encode(upload.data).decode("ascii"), "filename": upload.filename}



async def known_individual_decision(catalog: CatalogClient, org_id: str, actor: str, code: str | None,
                                    species: str) -> tuple[dict | None, str]:
    """What the uploader said about the animal: confirmed (known code) or new (unknown code).

    Returns the decision fields of the annotations (None when the animal is not named) and the
    species group they are filed under: a known individual's own species wins over the model's.
    """
    if not code:
        return None, species
    existing = await catalog.individual_by_code(org_id, code)
    if existing is not None:
        return {"decision": "confirmed", "individual_id": existing["id"], "decided_by": actor}, existing["species"]
    decision = {"decision": "new_individual", "decided_by": actor,
                "new_individual": {"catalogue_code": code, "species": species}}
    return decision, species


def file_under(analysis: Analysis, species: str) -> None:
    """Every animal of the photo is filed under ``species`` (the uploader named the animal)."""
    analysis.groups = [species] * len(analysis.groups)
