"""Enrolment: the one way photos enter the catalogue, whoever sends them.

``POST /v1/encounters``, ``POST /v1/identify?store=true`` and the ingest worker all come here, and the
re-embedding of stored photos with a new model version embeds them with :meth:`EnrolmentService.
embed_stored`, as enrolment embedded them. The steps are separate entry points because their callers combine them
differently:

1. :meth:`~EnrolmentService.analyse`: detector -> embedder -> matcher for every photo of the
   encounter, concurrently within ``photo_concurrency``; the same code as identify;
2. :meth:`~EnrolmentService.store`: ONE catalog call, a single transaction, that stores the photos
   (each sent once, as it was uploaded) with the encounter, annotations, identifications and any new
   individual, so the catalogue holds all of it or none of it;
3. :meth:`~EnrolmentService.index`: the matcher shard pulls the catalogue's changes now (photos of
   a named animal are searchable at once; pending ones wait for review).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
from starlette.concurrency import run_in_threadpool

from finprint.imaging import read_image_info
from finprint.problems import DependencyUnavailable, Problem
from finprint.schemas.catalog import AUTO_ACCEPT_ACTOR
from finprint.schemas.detector import Detection
from finprint.schemas.embeddings import encode_vector
from finprint.schemas.matcher import QueryResult
from services.gateway.adapters.catalog import CatalogClient
from services.gateway.adapters.pipeline import Pipeline
from services.gateway.adapters.uploads import Upload
from services.gateway.application.analysis import Analysis, analyse_all, resolve_candidates
from services.gateway.domain.enrolment import EncounterForm

log = logging.getLogger("finprint.enrolment")

Decision = Literal["pending", "confirmed", "new_individual"]


class NoCetacean(Problem):
    """A photo of the enrolment shows no cetacean (and the uploader did not name the animal)."""

    def __init__(self, index: int, filename: str, reason: str | None) -> None:
        super().__init__(422, f"No cetacean was found in image {index} ({filename}); nothing was stored.",
                         slug="no-cetacean", title="No cetacean found", image_index=index)
        self.reason = reason or "no detection"


class EnrolmentUnconfirmed(Problem):
    """The catalog did not answer the enrolment call itself, so it may have committed: the caller
    retries with the same Idempotency-Key (the catalog then replays its answer) and must not treat
    the photos as untried. To a client it is the catalog's 503, unchanged."""

    def __init__(self, cause: DependencyUnavailable) -> None:
        super().__init__(cause.status, cause.detail, slug=cause.slug, title=cause.title, headers=cause.headers,
                         **cause.extensions)


@dataclass(frozen=True)
class StoredEmbedding:
    model_version: str
    vector: np.ndarray


@dataclass(frozen=True)
class EnrolmentRequest:
    """An encounter's photos and what their uploader said about them."""

    org_id: str
    photos: Sequence[Upload]
    form: EncounterForm
    actor: str
    """Who enrols: creates the encounter and decides the identifications when the animal is named."""
    uploaded_by: str | None
    idempotency_key: str | None
    fingerprint: str
    """Identifies the caller's original request: what is derived from it (the analyses) may differ
    on a retry, since the first attempt changed the index."""
    species: str | None = None
    """The uploader's species for every animal of the photos (an ingest manifest's); else the model's."""

    @property
    def names_the_animal(self) -> bool:
        return self.form.individual_id is not None


@dataclass(frozen=True)
class Enrolled:
    catalog: dict[str, Any]
    """The catalog's EnrolResult: encounter, media, annotations, identifications, new individuals."""
    analyses: list[Analysis]
    decision: Decision
    filed_under: str | None
    """The species group every animal was filed under (the uploader's), or None: each the model's."""
    auto_accepted: frozenset[str] = frozenset()
    """The species groups of the animals confirmed without review (auto-accept): their indexes take them now."""

    @property
    def species_to_index(self) -> str | None:
        """The species group whose index takes these photos now: a named animal's; None while they
        wait for review (the matcher indexes only photos assigned to an individual)."""
        return None if self.decision == "pending" else self.filed_under

    @property
    def groups_to_index(self) -> list[str]:
        """Every species group whose index takes photos of this enrolment now."""
        return sorted(self.auto_accepted | ({self.species_to_index} if self.species_to_index else set()))


class EnrolmentService:
    def __init__(self, pipeline: Pipeline, catalog: CatalogClient, photo_concurrency: int) -> None:
        self.pipeline = pipeline
        self.catalog = catalog
        self.photo_concurrency = photo_concurrency

    async def enrol(self, request: EnrolmentRequest) -> Enrolled:
        """Analyse, store and index an encounter's photos."""
        analyses = await self.analyse(request.org_id, request.photos, known_cetacean=request.names_the_animal)
        enrolled = await self.store(request, analyses)
        for group in enrolled.groups_to_index:
            await self.index_soon(request.org_id, group)
        return enrolled

    async def precision_target(self, org_id: str) -> float | None:
        """The organisation's auto-accept precision target; None: off."""
        target = (await self.catalog.settings(org_id)).get("auto_accept_precision")
        return None if target is None else float(target)

    async def analyse(self, org_id: str, photos: Sequence[Upload], *, known_cetacean: bool) -> list[Analysis]:
        """Every photo analysed; :class:`NoCetacean` for the first without a cetacean (nothing is
        stored then). ``known_cetacean``: the uploader named the animal, so a photo the detector
        missed is taken whole (a researcher's identified photo must not be lost to a false negative).
        Otherwise the matches carry the organisation's auto-accept cut, which :meth:`store` applies."""
        target = None if known_cetacean else await self.precision_target(org_id)
        analyses = await analyse_all(self.pipeline, org_id, photos, self.photo_concurrency,
                                     known_cetacean=known_cetacean, precision_target=target)
        for index, (photo, analysis) in enumerate(zip(photos, analyses)):
            if not analysis.found_cetacean:
                raise NoCetacean(index, photo.filename, analysis.detect.reason)
        return analyses

    async def store(self, request: EnrolmentRequest, analyses: Sequence[Analysis]) -> Enrolled:
        """The photos and their analyses in the catalogue, in one transaction.

        Naming an animal whose code someone else created meanwhile (two enrolments of a new
        animal at once) confirms that individual instead of failing.
        """
        await resolve_candidates(self.catalog, request.org_id, [a for a in analyses if a.codes is None])
        decision, species = await self._decision(request, analyses)
        try:
            result = await self._commit(request, analyses, decision, species)
        except Problem as problem:
            if not _code_taken_meanwhile(problem, decision):
                raise
            decision, species = await self._decision(request, analyses)
            result = await self._commit(request, analyses, decision, species)
        filed_under = _filed_under(request, decision, species)
        accepted = frozenset() if decision else frozenset(
            group for a in analyses for match, group in zip(a.matches, a.groups)
            if auto_accepted(match, filed_under or group, group))
        return Enrolled(result, list(analyses), decision["decision"] if decision else "pending", filed_under,
                        accepted)

    async def index(self, org_id: str, species_group: str) -> None:
        """The matcher shard of (organisation, species group) pulls the catalogue's changes now."""
        await self.pipeline.sync(org_id, species_group)

    async def index_soon(self, org_id: str, species_group: str) -> None:
        """:meth:`index`, where the enrolment is committed already: a matcher that is down must not
        turn a stored enrolment into a failure (the matcher pulls the changes by itself, a little later)."""
        try:
            await self.index(org_id, species_group)
        except DependencyUnavailable as exc:
            log.warning("enrolment stored, index not updated yet",
                        extra={"fields": {"org_id": org_id, "species": species_group, "reason": exc.detail}})

    async def embed_stored(self, org_id: str, media_id: str, model_version: str | None = None) -> StoredEmbedding:
        """A stored photo embedded again as enrolment embedded it (the whole photo, ``embedding_region``),
        by ``model_version`` (the re-embedding of the catalogue with a new model; None: the default
        version): its original bytes from the catalog. Nothing is detected or searched: the stored
        annotations keep their boxes and species."""
        photo = await self.catalog.media_content(org_id, media_id)
        decoded = await self.pipeline.decode(photo.data)
        info = decoded.info if decoded is not None else await run_in_threadpool(
            read_image_info, photo.data, self.pipeline.shared_input.limits)
        region = (0, 0, info.width, info.height)
        embedded, [vector] = await self.pipeline.embed(photo.data, photo.filename, photo.content_type, [region],
                                                       decoded, model_version=model_version)
        return StoredEmbedding(embedded.model.key, vector)

    async def _decision(self, request: EnrolmentRequest, analyses: Sequence[Analysis]) -> tuple[dict | None, str]:
        species = request.species or analyses[0].groups[0]
        return await known_individual_decision(self.catalog, request.org_id, request.actor,
                                               request.form.individual_id, species)

    async def _commit(self, request: EnrolmentRequest, analyses: Sequence[Analysis], decision: dict | None,
                      species: str) -> dict[str, Any]:
        filed_under = _filed_under(request, decision, species)
        enrolment = {
            "encounter": request.form.catalog_encounter(request.actor),
            "photos": [{"annotations": enrol_annotations(a, decision, filed_under)} for a in analyses],
            "uploaded_by": request.uploaded_by,
        }
        try:
            return await self.catalog.enrol(request.org_id, enrolment, request.photos, request.idempotency_key,
                                            request.fingerprint)
        except DependencyUnavailable as exc:
            raise EnrolmentUnconfirmed(exc) from exc


def _filed_under(request: EnrolmentRequest, decision: dict | None, species: str) -> str | None:
    """Every animal under one species group when the uploader named the animal or its species."""
    return species if decision is not None or request.species else None


def _code_taken_meanwhile(problem: Problem, decision: dict | None) -> bool:
    """A 409 of an enrolment creating an individual, other than its photo belonging to another encounter."""
    return (problem.status == 409 and not problem.extensions.get("media_id")
            and decision is not None and decision["decision"] == "new_individual")


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


def auto_accepted(match: QueryResult | None, filed_under: str, searched: str) -> bool:
    """The match clears the organisation's auto-accept cut, in the index of the species it is filed under."""
    return (match is not None and match.auto_accept is not None and match.auto_accept.accepted
            and bool(match.candidates) and filed_under == searched)


def auto_accept_decision(match: QueryResult) -> dict[str, Any]:
    """The decision fields of an annotation confirmed without review: its top candidate, and why."""
    assert match.auto_accept is not None and match.auto_accept.cut is not None
    cut = match.auto_accept
    return {"decision": "confirmed", "individual_id": match.candidates[0].individual_id,
            "decided_by": AUTO_ACCEPT_ACTOR,
            "auto_accept": {"score": match.candidates[0].score, "probability": match.top_candidate_probability,
                            "precision_target": cut.precision_target, "cut": cut.cut,
                            "probability_cut": cut.probability_cut, "validation_precision": cut.validation_precision}}


def box_xywh(detection: Detection) -> dict[str, float]:
    x0, y0, x1, y1 = detection.box
    return {"x": x0, "y": y0, "width": max(1, x1 - x0), "height": max(1, y1 - y0)}


def enrol_annotations(analysis: Analysis, decision: dict | None, filed_under: str | None) -> list[dict]:
    """The catalog's EnrolAnnotation list for an analysed photo.

    ``decision`` (confirmed / new_individual fields) applies when the uploader said who the animal is;
    otherwise each annotation waits in the review queue with the matcher's candidates, unless its match
    clears the organisation's auto-accept cut: then its top candidate is confirmed, decided by auto-accept.
    """
    assert analysis.embed is not None
    codes = analysis.codes or {}
    annotations = []
    for det, res, vector, match, group, version, others in zip(
            analysis.detect.detections, analysis.embed.results, analysis.vectors, analysis.matches, analysis.groups,
            analysis.versions, analysis.other_vectors):
        species = filed_under or group
        annotation = {
            "box": box_xywh(det),
            "view": det.view,
            "species": species,
            "species_score": next((s.score for s in res.species if s.species == species), None),
            "embedding": {"model_version": version, "vector": encode_vector(vector)},
            "other_embeddings": [{"model_version": v, "vector": encode_vector(x)} for v, x in others.items()],
            "candidates": [] if match is None else [
                {"individual_id": c.individual_id, "score": c.score, "catalogue_code": codes.get(c.individual_id),
                 "best_annotation_id": c.best_embedding_id}
                for c in match.candidates
            ],
            "new_individual_probability": 1.0 if match is None else match.new_individual,
            "decision": "pending",
        }
        if decision is None and auto_accepted(match, species, group):
            assert match is not None
            annotations.append({**annotation, **auto_accept_decision(match)})
        else:
            annotations.append({**annotation, **(decision or {})})
    return annotations
