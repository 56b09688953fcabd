"""The gateway's calls to the detector, the embedder and the matcher, in their wire schemas."""

from __future__ import annotations

import json

import numpy as np

from finprint.problems import Problem
from finprint.schemas.detector import DetectResponse
from finprint.schemas.embedder import EmbedResponse
from finprint.schemas.embeddings import decode_vector, encode_vector
from finprint.schemas.matcher import QueryResult, SearchResponse, shard_for
from finprint.http import ServiceClient


class Pipeline:
    def __init__(self, detector: ServiceClient, embedder: ServiceClient, matchers: list[ServiceClient]) -> None:
        self.detector = detector
        self.embedder = embedder
        self.matchers = matchers

    async def detect(self, image: bytes, content_type: str) -> DetectResponse:
        response = await self.detector.request(
            "POST", "/v1/detect", content=image, headers={"Content-Type": content_type}, idempotent=True
        )
        return DetectResponse.model_validate(response.json())

    async def embed(self, image: bytes, filename: str, content_type: str,
                    boxes: list[tuple[int, int, int, int]]) -> tuple[EmbedResponse, list[np.ndarray]]:
        """Embed each box of one photo; the photo is sent once per box and never re-encoded."""
        files = [("images", (filename, image, content_type)) for _ in boxes]
        response = await self.embedder.request(
            "POST", "/v1/embed", params={"embedding_encoding": "base64"}, files=files,
            data={"boxes": json.dumps([list(b) for b in boxes])}, idempotent=True,
        )
        parsed = EmbedResponse.model_validate(response.json())
        vectors = [decode_vector(str(result.embedding)) for result in parsed.results]
        return parsed, vectors

    def matcher_for(self, org_id: str, species_group: str) -> ServiceClient:
        return self.matchers[shard_for(org_id, species_group, len(self.matchers))]

    async def search(self, org_id: str, species_group: str, model_version: str, vector: np.ndarray,
                     k: int = 5) -> QueryResult | None:
        """Candidates for one query; None when the organisation has no index for that key yet."""
        body = {"org_id": org_id, "species_group": species_group, "model_version": model_version,
                "queries_b64": [encode_vector(vector)], "k": k}
        try:
            response = await self.matcher_for(org_id, species_group).post_json("/v1/search", body, idempotent=True)
        except Problem as problem:
            if problem.status == 404:
                return None
            raise
        return SearchResponse.model_validate(response).results[0]

    async def sync(self, org_id: str, species_group: str) -> None:
        """Ask the shard owning the key to pull the catalogue's changes now (enrolment is then indexed)."""
        await self.matcher_for(org_id, species_group).request("POST", "/v1/sync", idempotent=True)
