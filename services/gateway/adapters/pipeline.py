"""The gateway's calls to the detector, the embedder and the matcher, in their wire schemas.

When the detector and the embedder take the same input (``GET /v1/model`` of each), the gateway
decodes a photo once and sends both models its pixels (``/v1/detect/pixels``,
``/v1/embed/pixels``): on 2 cores, decoding a 2-MP photo in each model service cost about 12 ms of
CPU per service per photo. Otherwise, or with ``decode_once`` off, each service gets the photo's bytes.
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass

import httpx
import numpy as np
from prometheus_client import Histogram
from starlette.concurrency import run_in_threadpool

from finprint.http import ServiceClient
from finprint.imaging import Box, ImageInfo, ImageLimits, load_model_input
from finprint.problems import Problem
from finprint.schemas.detector import DetectorModel, DetectResponse
from finprint.schemas.embedder import EmbedderModel, EmbedResponse, ExplainResponse
from finprint.schemas.embeddings import decode_vector, encode_vector
from finprint.schemas.matcher import QueryResult, SearchResponse, shard_for
from finprint.schemas.pixels import PIXELS_MEDIA_TYPE, encode_pixels
from services.gateway.adapters.peers import Peers
from services.gateway.adapters.uploads import Upload
from services.gateway.settings import GatewaySettings


@dataclass(frozen=True)
class ModelInputSpec:
    size: int
    trim_letterbox: bool


@dataclass(frozen=True)
class DecodedPhoto:
    """A photo decoded once into the input both models take: the whole photo, letterbox bars trimmed."""

    pixels: np.ndarray
    """uint8 RGB [S, S, 3]."""
    info: ImageInfo
    region: Box
    """The part of the photo the pixels show (the whole photo less any letterbox bars)."""


class SharedInput:
    """Whether the detector and the embedder take the same input, and decoding into it.

    Asked of both services once and remembered until a pixels call is refused as the wrong input
    (a model with another input was rolled out), then asked again.
    """

    def __init__(self, detector: ServiceClient, embedder: ServiceClient, limits: ImageLimits, enabled: bool,
                 decode_seconds: Histogram | None = None) -> None:
        self.detector = detector
        self.embedder = embedder
        self.limits = limits
        self.enabled = enabled
        self.decode_seconds = decode_seconds
        self._spec: ModelInputSpec | None = None
        self._known = False
        self._lock = asyncio.Lock()

    async def spec(self) -> ModelInputSpec | None:
        """The input both models take; None when they differ, or a service cannot say."""
        if not self.enabled:
            return None
        if self._known:
            return self._spec
        async with self._lock:
            if not self._known:
                self._spec = await self._ask()
                self._known = True
            return self._spec

    async def _ask(self) -> ModelInputSpec | None:
        try:
            detector, embedder = await asyncio.gather(
                self.detector.get_json("/v1/model"), self.embedder.get_json("/v1/model")
            )
        except Problem as problem:
            if problem.status >= 500:
                raise
            return None  # a service without the route (an older version): bytes to each, as before
        wanted = {
            ModelInputSpec(m.input_size, m.trim_letterbox)
            for m in (DetectorModel.model_validate(detector), EmbedderModel.model_validate(embedder))
        }
        return wanted.pop() if len(wanted) == 1 else None

    def forget(self) -> None:
        self._known = False

    async def decode(self, image: bytes) -> DecodedPhoto | None:
        """The photo as both models' input; None when they take different inputs.

        A photo that is not an image, too large or corrupt raises the same problem (4xx) the
        detector would have answered.
        """
        spec = await self.spec()
        if spec is None:
            return None
        started = time.perf_counter()
        made = await run_in_threadpool(
            load_model_input, image, spec.size, self.limits, trim_letterbox=spec.trim_letterbox
        )
        if self.decode_seconds is not None:
            self.decode_seconds.observe(time.perf_counter() - started)
        return DecodedPhoto(made.pixels, made.info, made.region)


def refused_as_wrong_input(problem: Problem) -> bool:
    return problem.slug == "invalid-pixels"


@dataclass(frozen=True)
class ShardAnswer:
    match: QueryResult | None
    """None when the organisation has no index for that key yet."""
    kept_versions: list[str]
    """The model versions the shard keeps (serving first): an enrolment stores an embedding of each."""


class WrongModelVersion(Exception):
    """The shard serves another model version than the query's: embed again with ``serving``."""

    def __init__(self, serving: str, kept: list[str]) -> None:
        super().__init__(f"the shard serves {serving}")
        self.serving = serving
        self.kept = kept


class Pipeline:
    def __init__(self, detector: ServiceClient, embedder: ServiceClient, matchers: list[ServiceClient],
                 shared_input: SharedInput | None = None) -> None:
        self.detector = detector
        self.embedder = embedder
        self.matchers = matchers
        self.shared_input = shared_input or SharedInput(detector, embedder, ImageLimits(), enabled=False)

    @classmethod
    def for_peers(cls, peers: Peers, settings: GatewaySettings, decode_seconds: Histogram | None = None) -> Pipeline:
        shared = SharedInput(peers.detector, peers.embedder, settings.image_limits(), settings.decode_once,
                             decode_seconds)
        return cls(peers.detector, peers.embedder, peers.matchers, shared)

    async def decode(self, image: bytes) -> DecodedPhoto | None:
        return await self.shared_input.decode(image)

    async def detect(self, image: bytes, content_type: str, decoded: DecodedPhoto | None = None) -> DetectResponse:
        """Where the animal is: from the decoded pixels when there are, else from the photo's bytes."""
        if decoded is not None:
            try:
                return await self._detect_pixels(decoded)
            except Problem as problem:
                if not refused_as_wrong_input(problem):
                    raise
                self.shared_input.forget()
        response = await self.detector.request(
            "POST", "/v1/detect", content=image, headers={"Content-Type": content_type}, idempotent=True
        )
        return DetectResponse.model_validate(response.json())

    async def _detect_pixels(self, decoded: DecodedPhoto) -> DetectResponse:
        params = {"width": decoded.info.width, "height": decoded.info.height, "format": decoded.info.format,
                  "region": ",".join(repr(float(v)) for v in decoded.region)}
        response = await self.detector.request(
            "POST", "/v1/detect/pixels", content=encode_pixels(decoded.pixels[None]), params=params,
            headers={"Content-Type": PIXELS_MEDIA_TYPE}, idempotent=True,
        )
        return DetectResponse.model_validate(response.json())

    async def embed(self, image: bytes, filename: str, content_type: str, boxes: list[tuple[int, int, int, int]],
                    decoded: DecodedPhoto | None = None,
                    model_version: str | None = None) -> tuple[EmbedResponse, list[np.ndarray]]:
        """Embed each box of one photo, in order. The embedder gets each distinct region once (every
        animal's region is the whole photo today, so one photo however many animals it shows): as the
        decoded pixels where it is the whole photo, else the photo's bytes with the region as its box,
        never re-encoded. ``model_version``: one the embedder serves beside its default (a model upgrade)."""
        regions = list(dict.fromkeys(tuple(box) for box in boxes))
        embedded, vectors = await self._embed_regions(image, filename, content_type, regions, decoded, model_version)
        order = [regions.index(tuple(box)) for box in boxes]
        results = [embedded.results[i] for i in order]
        return embedded.model_copy(update={"results": results}), [vectors[i] for i in order]

    async def _embed_regions(self, image: bytes, filename: str, content_type: str,
                             regions: list[tuple[int, int, int, int]], decoded: DecodedPhoto | None,
                             model_version: str | None) -> tuple[EmbedResponse, list[np.ndarray]]:
        params = {"embedding_encoding": "base64", **({"model_version": model_version} if model_version else {})}
        if decoded is not None and regions == [decoded.info.whole_photo]:
            try:
                return self._parsed(await self.embedder.request(
                    "POST", "/v1/embed/pixels", params=params,
                    content=encode_pixels(decoded.pixels[None]),
                    headers={"Content-Type": PIXELS_MEDIA_TYPE}, idempotent=True,
                ))
            except Problem as problem:
                if not refused_as_wrong_input(problem):
                    raise
                self.shared_input.forget()
        # The bytes of the photo go once per region: the embedder's /v1/embed crops each file part by its box.
        files = [("images", (filename, image, content_type)) for _ in regions]
        return self._parsed(await self.embedder.request(
            "POST", "/v1/embed", params=params, files=files,
            data={"boxes": json.dumps([list(r) for r in regions])}, idempotent=True,
        ))

    @staticmethod
    def _parsed(response: httpx.Response) -> tuple[EmbedResponse, list[np.ndarray]]:
        parsed = EmbedResponse.model_validate(response.json())
        return parsed, [decode_vector(str(result.embedding)) for result in parsed.results]

    async def embedder_version(self) -> str:
        """The served embedder as embeddings carry it (``finprint_embedder:2``): the indexes to compare."""
        served = EmbedderModel.model_validate(await self.embedder.get_json("/v1/model"))
        return f"{served.model.name}:{served.model.version}"

    async def explain(self, query: Upload, candidate: Upload, model_version: str | None = None) -> ExplainResponse:
        """The embedder's heatmaps of a pair of whole photos (as they are embedded: no box), by the model
        version that matched them when the embedder still serves it, else by its default one."""
        files = [("images", (photo.filename, photo.data, photo.content_type)) for photo in (query, candidate)]
        params = {"model_version": model_version} if model_version else {}
        try:
            response = await self.embedder.request("POST", "/v1/explain", files=files, params=params, idempotent=True)
        except Problem as problem:
            if problem.slug != "model-version-not-served":
                raise
            response = await self.embedder.request("POST", "/v1/explain", files=files, idempotent=True)
        return ExplainResponse.model_validate(response.json())

    def matcher_for(self, org_id: str, species_group: str) -> ServiceClient:
        return self.matchers[shard_for(org_id, species_group, len(self.matchers))]

    async def search(self, org_id: str, species_group: str, model_version: str, vector: np.ndarray,
                     k: int = 5, precision_target: float | None = None) -> ShardAnswer:
        """Candidates for one query from the shard of (org, species); raises :class:`WrongModelVersion`
        when the shard serves another model version than the query's. ``precision_target``: the
        organisation's auto-accept target, whose cut the result then carries."""
        body = {"org_id": org_id, "species_group": species_group, "model_version": model_version,
                "queries_b64": [encode_vector(vector)], "k": k}
        if precision_target is not None:
            body["precision_target"] = precision_target
        try:
            response = await self.matcher_for(org_id, species_group).post_json("/v1/search", body, idempotent=True)
        except Problem as problem:
            if problem.status == 404:
                return ShardAnswer(None, [model_version])
            if problem.status == 409 and problem.extensions.get("serving_version"):
                raise WrongModelVersion(str(problem.extensions["serving_version"]),
                                        list(problem.extensions.get("kept_versions") or [])) from None
            raise
        parsed = SearchResponse.model_validate(response)
        return ShardAnswer(parsed.results[0], parsed.kept_versions or [model_version])

    async def sync(self, org_id: str, species_group: str) -> None:
        """Ask the shard owning the key to pull the catalogue's changes now (enrolment is then indexed)."""
        await self.matcher_for(org_id, species_group).request("POST", "/v1/sync", idempotent=True)
