"""What the models and the matcher say about a photo: detector -> embedder -> matcher.

The same code answers identify and prepares an enrolment, so what is stored is what identify
would have said. Every call has a timeout and idempotent calls are retried (finprint.http); a
failing service ends the call with a 503 and Retry-After, and nothing here writes anything.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from finprint.problems import Problem
from finprint.schemas.detector import DetectResponse, Detection
from finprint.schemas.embedder import EmbedResponse
from finprint.schemas.matcher import QueryResult
from services.gateway.adapters.catalog import CatalogClient
from services.gateway.adapters.pipeline import DecodedPhoto, Pipeline, WrongModelVersion
from services.gateway.adapters.uploads import Upload
from services.gateway.domain.identify import species_group

log = logging.getLogger("finprint.gateway")


@dataclass
class Analysis:
    """What the models and the matcher say about one photo, before anything is stored."""

    detect: DetectResponse
    embed: EmbedResponse | None
    """The default model's answer (its species head names the shard)."""
    vectors: list[np.ndarray]
    """Per animal: the embedding its shard was searched with, of the version in ``versions``."""
    groups: list[str]
    matches: list[QueryResult | None]
    versions: list[str] = field(default_factory=list)
    other_vectors: list[dict[str, np.ndarray]] = field(default_factory=list)
    """Per animal: its embeddings of the other versions its shard keeps (during a model upgrade)."""
    codes: dict[str, str] | None = None
    """Catalogue codes of the candidate individuals, by catalogue id; None until looked up."""

    @property
    def found_cetacean(self) -> bool:
        return self.embed is not None

    def candidate_ids(self) -> set[str]:
        return {c.individual_id for m in self.matches if m for c in m.candidates}


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


async def analyse(pipeline: Pipeline, org_id: str, upload: Upload, *, known_cetacean: bool = False,
                  precision_target: float | None = None) -> Analysis:
    """Detect, embed and search one photo.

    ``known_cetacean``: the uploader states which animal this is, so a photo the detector missed is
    taken whole rather than refused (a researcher's identified photo must not be lost to a false
    negative of the detector). ``precision_target``: the organisation's auto-accept target, whose
    cut each match then carries (``QueryResult.auto_accept``).
    """
    decoded = await pipeline.decode(upload.data)
    detect = await pipeline.detect(upload.data, upload.content_type, decoded)
    if not detect.detections and known_cetacean:
        detect = detect.model_copy(update={"detections": [_whole_photo(detect)], "reason": None})
    if not detect.detections:
        return Analysis(detect, None, [], [], [])
    regions = [embedding_region(detect) for _ in detect.detections]
    embed, vectors = await pipeline.embed(upload.data, upload.filename, upload.content_type, regions, decoded)
    groups = [species_group(result.species) for result in embed.results]
    embeddings = VersionedEmbeddings(pipeline, upload, regions, decoded, embed.model.key, vectors)
    searched = await asyncio.gather(*(_search_serving(pipeline, org_id, g, i, embeddings, precision_target)
                                      for i, g in enumerate(groups)))
    others = await asyncio.gather(*(embeddings.others(i, kept, version)
                                    for i, (_, version, kept) in enumerate(searched)))
    return Analysis(detect, embed, [embeddings.vector(v, i) for i, (_, v, _) in enumerate(searched)], groups,
                    [match for match, _, _ in searched], [v for _, v, _ in searched], list(others))


class VersionedEmbeddings:
    """A photo's embeddings by model version, each version embedded once, when first needed."""

    def __init__(self, pipeline: Pipeline, upload: Upload, regions: list[tuple[int, int, int, int]],
                 decoded: DecodedPhoto | None, default_version: str, default_vectors: list[np.ndarray]) -> None:
        self._pipeline, self._upload, self._regions, self._decoded = pipeline, upload, regions, decoded
        self.default_version = default_version
        self._vectors = {default_version: default_vectors}
        self._lock = asyncio.Lock()

    async def of(self, version: str) -> list[np.ndarray]:
        async with self._lock:
            if version not in self._vectors:
                u = self._upload
                _, self._vectors[version] = await self._pipeline.embed(
                    u.data, u.filename, u.content_type, self._regions, self._decoded, model_version=version)
            return self._vectors[version]

    def vector(self, version: str, animal: int) -> np.ndarray:
        return self._vectors[version][animal]

    async def others(self, animal: int, kept: list[str], searched: str) -> dict[str, np.ndarray]:
        """The animal's embeddings of the shard's other kept versions that the embedder still serves (one it
        no longer serves, e.g. the previous version once retired, is left out: a rollback to it would miss
        this photo, and docs/model-upgrades.md says to keep serving it while a rollback may be wanted)."""
        vectors = {}
        for version in kept:
            if version == searched:
                continue
            try:
                vectors[version] = (await self.of(version))[animal]
            except Problem as problem:
                if problem.slug != "model-version-not-served":
                    raise
                log.warning("a kept model version is not served; the photo is not embedded by it",
                            extra={"fields": {"model_version": version}})
        return vectors


async def _search_serving(pipeline: Pipeline, org_id: str, group: str, animal: int, embeddings: VersionedEmbeddings,
                          precision_target: float | None) -> tuple[QueryResult | None, str, list[str]]:
    """Search the animal's shard with the version it serves: the default model's embedding, or, when
    the shard serves another version (mid-upgrade, or after a rollback), that version's."""
    version = embeddings.default_version
    try:
        answer = await pipeline.search(org_id, group, version, (await embeddings.of(version))[animal],
                                       precision_target=precision_target)
    except WrongModelVersion as wrong:
        version = wrong.serving
        answer = await pipeline.search(org_id, group, version, (await embeddings.of(version))[animal],
                                       precision_target=precision_target)
    return answer.match, version, answer.kept_versions


async def analyse_all(pipeline: Pipeline, org_id: str, uploads: Sequence[Upload], concurrency: int, *,
                      known_cetacean: bool = False, precision_target: float | None = None) -> list[Analysis]:
    """Every photo analysed, at most ``concurrency`` at a time (the model services batch them).

    A photo that fails (not an image, a service down) fails the call with its error; when several
    fail, the first in the order sent, so the caller is told the same thing on every try. Photos
    start in order, so once one has failed the ones not yet started are skipped, not analysed.
    """
    limit = asyncio.Semaphore(concurrency)
    failed = False

    async def one(upload: Upload) -> Analysis | None:
        nonlocal failed
        async with limit:
            if failed:
                return None
            try:
                return await analyse(pipeline, org_id, upload, known_cetacean=known_cetacean,
                                     precision_target=precision_target)
            except Exception:
                failed = True
                raise

    outcomes = await asyncio.gather(*(one(u) for u in uploads), return_exceptions=True)
    analyses = []
    for outcome in outcomes:
        if isinstance(outcome, BaseException):
            raise outcome
        assert outcome is not None, "a photo is skipped only after an earlier one failed"
        analyses.append(outcome)
    return analyses


async def resolve_candidates(catalog: CatalogClient, org_id: str, analyses: Sequence[Analysis]) -> dict[str, dict]:
    """Look up the candidate individuals of the analyses in one call (fills each ``codes``); returns
    them by catalogue id."""
    ids = sorted(set().union(*(a.candidate_ids() for a in analyses)))
    individuals = await catalog.individuals_by_id(org_id, ids)
    for analysis in analyses:
        analysis.codes = {i: individuals[i]["catalogue_code"] for i in analysis.candidate_ids() if i in individuals}
    return individuals
