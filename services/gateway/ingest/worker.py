"""The ingest worker: lease items from the catalog, enrol each photo through the enrolment service.

Exactly once: each item is enrolled with an Idempotency-Key derived from its id, so a worker
that dies after the catalog committed and before it recorded the item leaves an enrolment the
next worker's attempt replays instead of repeating. Across items and jobs the catalogue's SHA-256
of the bytes finds photos enrolled before: those items are recorded as duplicates, not analysed.

A bad item (undecodable file, unknown species, impossible coordinates, no cetacean found) fails
alone, with its reason. A service failing before the enrolment gives the item back at once, its
attempt not counted (attempts are for workers that die: an outage must not use them up), and the
worker waits a little longer before each next claim while that goes on; a failure of the enrolment
call itself leaves the item leased (it may have committed), taken again when the lease expires and
replayed by its idempotency key.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import mimetypes
import os
import socket
import time
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from finprint.metrics import ServiceMetrics
from finprint.outbound import OutboundRefused
from finprint.problems import DependencyUnavailable, Problem
from finprint.schemas.catalog import REEMBED_JOB_KIND
from finprint.schemas.detector import DetectResponse
from finprint.schemas.embedder import EmbedResponse
from services.gateway.adapters.catalog import CatalogClient
from services.gateway.adapters.pipeline import DecodedPhoto, Pipeline, ShardAnswer
from services.gateway.adapters.uploads import Upload
from services.gateway.application.enrolment import (
    Enrolled,
    EnrolmentRequest,
    EnrolmentService,
    EnrolmentUnconfirmed,
    NoCetacean,
)
from services.gateway.ingest.manifest import ManifestRow, parse_row
from services.gateway.ingest.queue import IngestQueue
from services.gateway.ingest.sources import S3_ERRORS, S3Source, s3_failure
from services.gateway.settings import GatewaySettings

log = logging.getLogger("finprint.ingest")
STAGES = ("decode", "detector", "embedder", "matcher", "catalog")


def default_worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


class ItemFailed(Exception):
    """The item cannot be ingested; the reason is shown to the user."""


@dataclass(frozen=True)
class Postponed:
    """A service failed while the item was processed; ``release``: nothing was stored, give it back now."""

    reason: str
    release: bool


@dataclass
class StageTimes:
    """Seconds spent per stage, summed over the items of a worker (or of one item)."""

    seconds: dict[str, float] = field(default_factory=lambda: defaultdict(float))

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[name] += time.perf_counter() - start

    def as_ms(self) -> dict[str, float]:
        return {name: round(self.seconds[name] * 1000, 2) for name in STAGES if name in self.seconds}


class TimedPipeline(Pipeline):
    """The gateway's pipeline, timing each model call into the current item's StageTimes."""

    def __init__(self, inner: Pipeline, times: StageTimes) -> None:
        super().__init__(inner.detector, inner.embedder, inner.matchers, inner.shared_input)
        self.times = times

    async def decode(self, image: bytes) -> DecodedPhoto | None:
        with self.times.stage("decode"):
            return await super().decode(image)

    async def detect(self, image: bytes, content_type: str, decoded: DecodedPhoto | None = None) -> DetectResponse:
        with self.times.stage("detector"):
            return await super().detect(image, content_type, decoded)

    async def embed(self, image: bytes, filename: str, content_type: str, boxes: list[tuple[int, int, int, int]],
                    decoded: DecodedPhoto | None = None,
                    model_version: str | None = None) -> tuple[EmbedResponse, list[np.ndarray]]:
        with self.times.stage("embedder"):
            return await super().embed(image, filename, content_type, boxes, decoded, model_version)

    async def search(self, org_id: str, species_group: str, model_version: str, vector: np.ndarray,
                     k: int = 5, precision_target: float | None = None) -> ShardAnswer:
        with self.times.stage("matcher"):
            return await super().search(org_id, species_group, model_version, vector, k, precision_target)


@dataclass
class Outcome:
    status: str
    result: dict[str, Any] = field(default_factory=dict)
    media_id: str | None = None
    error: str | None = None
    reindex: tuple[str, str] | None = None
    """(org, species group) whose matcher shard should pull the catalogue's changes now."""


def enrol_key(item: dict[str, Any]) -> str:
    return f"ingest-item-{item['id']}"


def results_of(enrolled: Enrolled) -> list[dict[str, Any]]:
    """Per animal of the item's photo: species, top-5 candidates (catalogue codes) and the new-individual score."""
    [analysis] = enrolled.analyses
    codes = analysis.codes or {}
    animals = []
    for det, match, group in zip(analysis.detect.detections, analysis.matches, analysis.groups):
        candidates = [] if match is None else [
            {"individual_id": codes.get(c.individual_id, c.individual_id), "score": round(c.score, 4)}
            for c in match.candidates[:5]]
        animals.append({"box": list(det.box), "view": det.view, "species": enrolled.filed_under or group,
                        "candidates": candidates,
                        "new_individual": 1.0 if match is None else round(match.new_individual, 4)})
    return animals


ITEM_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


class WorkerMetrics:
    """Items finished and seconds per stage, by the job's kind (photos: ``ingest``; ``reembed``)."""

    def __init__(self, metrics: ServiceMetrics) -> None:
        self.items = metrics.counter("finprint_ingest_items_total", "Ingest items finished by this process's "
                                     "worker, by job kind and outcome.", ("kind", "status"))
        self.stage_seconds = metrics.histogram("finprint_ingest_stage_seconds", "Seconds one item spent in each "
                                               "stage, by job kind.", ("kind", "stage"), buckets=ITEM_BUCKETS)

    def observe(self, kind: str, outcome: Outcome, times: StageTimes) -> None:
        self.items.labels(kind, outcome.status).inc()
        for stage, seconds in times.seconds.items():
            self.stage_seconds.labels(kind, stage).observe(seconds)


class Worker:
    """One worker: a loop of claim -> process a batch concurrently -> record each outcome."""

    def __init__(self, settings: GatewaySettings, pipeline: Pipeline, catalog: CatalogClient, queue: IngestQueue,
                 *, worker_id: str | None = None, job_id: str | None = None,
                 metrics: WorkerMetrics | None = None) -> None:
        self.settings = settings
        self.pipeline = pipeline
        self.catalog = catalog
        self.queue = queue
        self.worker_id = worker_id or default_worker_id()
        self.job_id = job_id
        self.totals = StageTimes()
        self.metrics = metrics
        self.processed = 0
        self._species: set[str] | None = None

    async def run(self, stop: asyncio.Event) -> None:
        """Work until ``stop`` is set (the batch in hand is finished first) or, with a job id, the job is drained."""
        s = self.settings
        postponed_rounds = 0
        while not stop.is_set():
            try:
                claimed = await self.queue.claim(self.worker_id, s.ingest_batch_size, s.ingest_lease_s,
                                                 s.ingest_max_attempts, self.job_id)
            except DependencyUnavailable as exc:
                log.warning("cannot claim ingest items", extra={"fields": {"reason": exc.detail}})
                await _sleep_unless(stop, s.ingest_poll_s)
                continue
            if claimed["items"]:
                if await self.process_batch(claimed["items"]):
                    # A service is failing: wait before the next claim, longer each time (up to 16 polls),
                    # rather than cycle through the job's items while it is down.
                    postponed_rounds += 1
                    await _sleep_unless(stop, s.ingest_poll_s * 2 ** min(postponed_rounds - 1, 4))
                else:
                    postponed_rounds = 0
            elif self.job_id and claimed["remaining"] == 0:
                return
            else:
                # Nothing free: idle, or the rest is leased to others (retried here if they die).
                await _sleep_unless(stop, s.ingest_poll_s)

    async def process_batch(self, items: list[dict[str, Any]]) -> bool:
        """Process and record a batch; True when a service failed for some of its items (postponed)."""
        renewer = asyncio.create_task(self._renew_leases([i["id"] for i in items]))
        try:
            results = await asyncio.gather(*(self._process_in_order(group) for group in _same_animal(items)))
        finally:
            renewer.cancel()
        by_id = {item_id: outcome for group in results for item_id, outcome in group}
        outcomes = [by_id[item["id"]] for item in items]
        postponed = [(item, o) for item, o in zip(items, outcomes) if isinstance(o, Postponed)]
        if released := [item["id"] for item, o in postponed if o.release]:
            try:
                await self.queue.release(self.worker_id, released, postponed[0][1].reason)
            except DependencyUnavailable:
                pass  # their leases expire instead (and then the attempt counts)
        for key in {o.reindex for o in outcomes if isinstance(o, Outcome) and o.reindex}:
            await self._enrolment().index_soon(*key)  # once per batch and key, not per item
        for item, outcome in zip(items, outcomes):
            if not isinstance(outcome, Outcome):
                continue  # a service failed: given back above, or taken again when its lease expires
            try:
                await self.queue.complete(item["id"], self.worker_id, outcome.status, media_id=outcome.media_id,
                                          result=outcome.result, error=outcome.error)
                self.processed += 1
            except DependencyUnavailable as exc:
                # Taken again when the lease expires; its enrolment is then replayed, not repeated.
                log.warning("cannot record ingest item", extra={"fields": {"item_id": item["id"], "reason": exc.detail}})
            except Problem as problem:
                if problem.status != 409:
                    raise
                log.warning("lease lost", extra={"fields": {"item_id": item["id"]}})
        return bool(postponed)

    async def _process_in_order(self, items: list[dict[str, Any]]) -> list[tuple[str, Outcome | Postponed]]:
        return [(item["id"], await self._process(item)) for item in items]

    async def _renew_leases(self, item_ids: list[str]) -> None:
        lease_s = self.settings.ingest_lease_s
        while True:
            await asyncio.sleep(lease_s / 3)
            try:
                await self.queue.renew(self.worker_id, item_ids, lease_s)
            except DependencyUnavailable:
                continue

    async def _process(self, item: dict[str, Any]) -> Outcome | Postponed:
        times = StageTimes()
        try:
            outcome = await self._ingest(item, times)
        except ItemFailed as failure:
            outcome = Outcome("failed", error=str(failure))
        except DependencyUnavailable as exc:  # before the enrolment: nothing stored, give the item back
            log.warning("ingest item postponed", extra={"fields": {"item_id": item["id"], "reason": exc.detail}})
            return Postponed(exc.detail, release=True)
        except EnrolmentUnconfirmed as exc:  # it may have committed: replayed by its key when the lease expires
            log.warning("ingest enrolment unconfirmed; retried when its lease expires",
                        extra={"fields": {"item_id": item["id"], "reason": exc.detail}})
            return Postponed(exc.detail, release=False)
        except Problem as problem:
            outcome = Outcome("failed", error=problem.detail)
        except Exception as exc:  # a bug costs this item, not the job: logged, and shown as its reason
            log.exception("ingest item failed", extra={"fields": {"item_id": item["id"]}})
            outcome = Outcome("failed", error=f"internal error: {type(exc).__name__}: {exc}")
        for name, seconds in times.seconds.items():
            self.totals.seconds[name] += seconds
        outcome.result["timings_ms"] = times.as_ms()
        self._observe(item, outcome, times)
        return outcome

    def _observe(self, item: dict[str, Any], outcome: Outcome, times: StageTimes) -> None:
        if self.metrics is not None:
            self.metrics.observe(str(item["job_options"].get("kind", "ingest")), outcome, times)

    async def _ingest(self, item: dict[str, Any], times: StageTimes) -> Outcome:
        if item["job_options"].get("kind") == REEMBED_JOB_KIND:
            return await self._reembed(item, times)
        org_id = item["org_id"]
        with times.stage("decode"):
            row = self._row(item)
            data = await self._read(item)
            sha256 = hashlib.sha256(data).hexdigest()
        with times.stage("catalog"):
            await self._check_species(row)
            earlier = await self.queue.media_by_sha256(org_id, sha256)
        # On a first attempt a stored photo is someone else's; on a retry it may be this item's own
        # enrolment, which the idempotent enrol below replays.
        if earlier and earlier.get("encounter_id") and item["attempts"] <= 1:
            return _duplicate(sha256, earlier["id"])
        filename = item["item_key"].rsplit("/", 1)[-1]
        upload = Upload(data, filename, mimetypes.guess_type(filename)[0] or "application/octet-stream")
        return await self._enrol(item, row, upload, sha256, times)

    async def _enrol(self, item: dict[str, Any], row: ManifestRow, upload: Upload, sha256: str,
                     times: StageTimes) -> Outcome:
        """The item's photo through the enrolment service, as its own encounter; indexed per batch."""
        org_id, actor = item["org_id"], item["job_options"].get("uploaded_by")
        enrolment = self._enrolment(times)
        try:
            analyses = await enrolment.analyse(org_id, [upload], known_cetacean=row.individual_id is not None)
        except NoCetacean as missed:
            raise ItemFailed(f"no cetacean was found in the photo ({missed.reason})") from None
        request = EnrolmentRequest(
            org_id, [upload], row, actor=actor or "ingest", uploaded_by=actor, idempotency_key=enrol_key(item),
            fingerprint=hashlib.sha256(f"ingest:{item['id']}:{sha256}".encode()).hexdigest(), species=row.species)
        with times.stage("catalog"):
            try:
                enrolled = await enrolment.store(request, analyses)
            except Problem as problem:
                if problem.status == 409 and problem.extensions.get("media_id"):
                    return _duplicate(sha256, str(problem.extensions["media_id"]))
                raise
        result = {"sha256": sha256, "media_id": enrolled.catalog["media"][0]["id"],
                  "encounter_id": enrolled.catalog["encounter"]["id"], "duplicate": False,
                  "decision": enrolled.decision, "individual_id": row.individual_id, "animals": results_of(enrolled)}
        groups = enrolled.groups_to_index
        reindex = (org_id, groups[0]) if groups else None
        return Outcome("done", result, media_id=result["media_id"], reindex=reindex)

    async def _reembed(self, item: dict[str, Any], times: StageTimes) -> Outcome:
        """One stored annotation's photo embedded by the job's model version, stored beside its other
        embeddings (an upsert by annotation and version: a replayed item stores nothing twice)."""
        org_id, version = item["org_id"], item["job_options"]["model_version"]
        annotation_id, media_id = item["payload"]["annotation_id"], item["payload"]["media_id"]
        try:
            embedded = await self._enrolment(times).embed_stored(org_id, media_id, version)
        except Problem as problem:
            if problem.slug == "model-version-not-served":
                # An embedder rolled out without the new version: wait for it (the item goes back, its attempt
                # not counted) rather than fail every photo.
                raise DependencyUnavailable(f"embedder {version}", problem.detail,
                                            self.settings.retry_after_s) from None
            if problem.status == 404:
                raise ItemFailed(f"the photo of annotation {annotation_id} is gone (media {media_id})") from None
            raise
        if embedded.model_version != version:
            raise ItemFailed(f"the embedder answered with {embedded.model_version}, not {version}")
        with times.stage("catalog"):
            stored = await self.catalog.store_embedding(org_id, annotation_id, version, embedded.vector)
        return Outcome("done", {"annotation_id": annotation_id, "embedding_id": stored["embedding_id"],
                                "model_version": version}, media_id=media_id)

    def _enrolment(self, times: StageTimes | None = None) -> EnrolmentService:
        """The enrolment service, its model calls timed into ``times`` when given."""
        pipeline = self.pipeline if times is None else TimedPipeline(self.pipeline, times)
        return EnrolmentService(pipeline, self.catalog, self.settings.encounter_photo_concurrency)

    def _row(self, item: dict[str, Any]) -> ManifestRow:
        try:
            return parse_row(item["payload"])
        except ValueError as exc:
            raise ItemFailed(str(exc)) from None

    async def _read(self, item: dict[str, Any]) -> bytes:
        source = item["job_options"].get("s3")
        if source:
            try:
                return await S3Source.model_validate(source).aread(self.settings.outbound_guard(),
                                                                   item["content_key"] or item["item_key"])
            except OutboundRefused as exc:
                raise ItemFailed(f"cannot read s3 object {item['item_key']}: {exc}") from None
            except S3_ERRORS as exc:
                raise ItemFailed(f"cannot read s3 object {item['item_key']}: {s3_failure(exc)}") from None
        return await self.queue.staged_content(item["org_id"], item["job_id"], item["id"])

    async def _check_species(self, row: ManifestRow) -> None:
        if row.species is None:
            return
        if self._species is None:
            self._species = await self.queue.species_keys()
        if row.species not in self._species:
            raise ItemFailed(f"unknown species {row.species!r} (see GET /v1/species)")


def _same_animal(items: list[dict[str, Any]]) -> list[list[dict[str, Any]]]:
    """Items naming the same individual, in order (the first creates it, the others confirm it); the
    others alone. Groups run concurrently."""
    groups: dict[str, list[dict[str, Any]]] = {}
    for item in items:
        code = item["payload"].get("individual_id")
        groups.setdefault(f"individual:{code}" if code else f"item:{item['id']}", []).append(item)
    return list(groups.values())


def _duplicate(sha256: str, media_id: str) -> Outcome:
    return Outcome("skipped", {"sha256": sha256, "duplicate": True, "duplicate_of": media_id},
                   media_id=media_id, error=f"duplicate: the same photo is already catalogued as media {media_id}")


async def _sleep_unless(stop: asyncio.Event, seconds: float) -> None:
    try:
        await asyncio.wait_for(stop.wait(), timeout=seconds)
    except TimeoutError:
        pass
