"""The protocol through the running system's public API: enrol the gallery, identify the queries.

Everything goes through :class:`finprint.client.FinprintClient`, as a partner's integration would:
``POST /v1/individuals`` (the species researchers know), ``POST /v1/encounters`` with up to three
photos of one individual, and ``POST /v1/identify`` with one photo. Each enrolment carries an
idempotency key made of the run's tag and its photos, so an evaluation that is run again against
the same organisation stores nothing twice. A 429 or 503 is waited out (Retry-After) and retried.

Use a key of an organisation kept for evaluation: its other individuals would join the gallery.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TypeVar

from finprint.client import FinprintClient, FinprintError
from finprint_train.evaluation.protocol import GalleryIndividual, SpeciesProtocol
from finprint.imaging import Box
from finprint.schemas.gateway import IdentifyResponse, IdentifyResult
from finprint_train.data import Sample
from finprint_train.metrics import NEW_INDIVIDUAL

T = TypeVar("T")
RETRIED_STATUSES = {429, 503}


@dataclass
class QueryAnswer:
    """What the API answered for one query photo."""

    ranking: list[str]
    """Individual ids (the protocol's, not catalogue codes) and ``new_individual``, best first."""
    region: Box | None
    """The box of the answer the ranking comes from; None when the photo was rejected."""
    rejected: bool
    species: str | None
    embedder: str | None


@dataclass
class SpeciesAnswers:
    queries: list[QueryAnswer] = field(default_factory=list)
    gallery_regions: dict[str, Box] = field(default_factory=dict)
    """Per gallery photo name: the box the catalogue stored for it."""


def with_retries(call: Callable[[], T], attempts: int = 8) -> T:
    """``call()``, waiting out rate limits and unavailable services as the API asks (Retry-After)."""
    for attempt in range(attempts):
        try:
            return call()
        except FinprintError as error:
            if error.status not in RETRIED_STATUSES or attempt == attempts - 1:
                raise
            time.sleep(min(30.0, error.retry_after or 2.0 ** attempt))
    raise AssertionError("unreachable")


def best_result(response: IdentifyResponse) -> IdentifyResult | None:
    """The animal a one-animal photo shows: the most confident detection."""
    return max(response.results, key=lambda r: r.detection_score, default=None)


class ApiEvaluation:
    """One evaluation run against one organisation; ``tag`` keeps its catalogue codes apart."""

    def __init__(self, client: FinprintClient, tag: str, concurrency: int = 4) -> None:
        self.client = client
        self.tag = tag
        self.concurrency = concurrency

    def code_of(self, species: str, individual_id: str) -> str:
        digest = hashlib.blake2b(f"{species}/{individual_id}".encode(), digest_size=5).hexdigest()
        return f"{self.tag}-{digest}"[:64]

    def map(self, fn: Callable[[T], object], items: Sequence[T]) -> list:
        with ThreadPoolExecutor(self.concurrency) as pool:
            return list(pool.map(fn, items))

    def _create_individual(self, species: str, individual: GalleryIndividual) -> None:
        try:
            with_retries(lambda: self.client.create_individual(self.code_of(species, individual.individual_id), species))
        except FinprintError as error:
            if error.status != 409:  # already there: a run repeated against the same organisation
                raise

    def _enrol(self, species: str, individual: GalleryIndividual) -> dict[str, Box]:
        code = self.code_of(species, individual.individual_id)
        key = hashlib.sha256("\n".join([self.tag, code, *(p.path.name for p in individual.photos)]).encode()).hexdigest()
        enrolled = with_retries(lambda: self.client.enrol([p.path for p in individual.photos], individual_id=code,
                                                          idempotency_key=key))
        return stored_boxes(enrolled, individual.photos)

    def enrol_gallery(self, protocol: SpeciesProtocol) -> dict[str, Box]:
        """Every gallery individual created with its species and enrolled as one encounter."""
        self.map(lambda ind: self._create_individual(protocol.species, ind), protocol.gallery)
        regions: dict[str, Box] = {}
        for boxes in self.map(lambda ind: self._enrol(protocol.species, ind), protocol.gallery):
            regions.update(boxes)
        return regions

    def identify(self, photo: Sample, codes: dict[str, str]) -> QueryAnswer:
        response = with_retries(lambda: self.client.identify(photo.path))
        result = best_result(response)
        embedder = None if response.model.embedder is None else (
            f"{response.model.embedder.name}:{response.model.embedder.version}")
        if result is None:
            return QueryAnswer([], None, True, None, embedder)
        ranking = [label if label == NEW_INDIVIDUAL else codes.get(label, label) for label in result.ranking]
        return QueryAnswer(ranking, tuple(result.box), False, result.species[0].species, embedder)

    def individual_of_code(self, protocol: SpeciesProtocol) -> dict[str, str]:
        """The protocol's individual id behind each catalogue code this run created."""
        return {self.code_of(protocol.species, ind.individual_id): ind.individual_id for ind in protocol.gallery}

    def run_species(self, protocol: SpeciesProtocol) -> SpeciesAnswers:
        regions = self.enrol_gallery(protocol)
        codes = self.individual_of_code(protocol)
        answers = self.map(lambda q: self.identify(q, codes), protocol.queries)
        return SpeciesAnswers(answers, regions)

    def rejected(self, photos: Sequence[Sample]) -> list[bool]:
        """Per negative photo: whether the API said there is no cetacean in it."""
        return self.map(lambda p: not with_retries(lambda: self.client.identify(p.path)).results, photos)


def stored_boxes(enrolled: dict, photos: Sequence[Sample]) -> dict[str, Box]:
    """The box the catalogue keeps for each enrolled photo (its first annotation), by photo name."""
    first_box: dict[str, dict] = {}
    for annotation in enrolled.get("annotations", []):
        first_box.setdefault(annotation["media_id"], annotation["box"])
    boxes: dict[str, Box] = {}
    for photo, media in zip(photos, enrolled.get("media", [])):
        b = first_box.get(media["id"])
        if b is not None:
            boxes[photo.path.name] = (b["x"], b["y"], b["x"] + b["width"], b["y"] + b["height"])
    return boxes
