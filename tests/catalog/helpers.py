"""Helpers for the catalog tests: test images, vectors, and a thin client for building catalogues."""

from __future__ import annotations

import io
import secrets
from collections.abc import Callable
from typing import Any

import numpy as np
from fastapi.testclient import TestClient
from PIL import Image

from finprint.schemas.embeddings import encode_vector


def new_org(client: TestClient, name: str = "Lab") -> str:
    slug = f"{name.lower()}-{secrets.token_hex(4)}"
    response = client.post("/v1/orgs", json={"slug": slug, "name": name})
    assert response.status_code == 201, response.text
    return response.json()["id"]


def jpeg(seed: int = 0, size: tuple[int, int] = (96, 64), exif: Image.Exif | None = None) -> bytes:
    """A small JPEG whose bytes differ per seed."""
    rng = np.random.default_rng(seed)
    pixels = rng.integers(0, 255, (size[1], size[0], 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, "JPEG", quality=90, exif=exif if exif is not None else Image.Exif())
    return buffer.getvalue()


def vector(seed: int, dim: int = 16) -> str:
    values = np.random.default_rng(seed).normal(size=dim).astype(np.float32)
    return encode_vector(values / np.linalg.norm(values))


class Catalogue:
    """Small helpers over the HTTP API for building test catalogues."""

    def __init__(self, client: TestClient, org_id: str) -> None:
        self.client = client
        self.org_id = org_id
        self._seed = secrets.randbelow(10**9)

    def url(self, path: str) -> str:
        return f"/v1/orgs/{self.org_id}{path}"

    def post(self, path: str, body: dict[str, Any], expect: int = 201, **kwargs: Any) -> Any:
        response = self.client.post(self.url(path), json=body, **kwargs)
        assert response.status_code == expect, response.text
        return response.json()

    def upload(self, data: bytes | None = None, filename: str = "photo.jpg") -> dict[str, Any]:
        self._seed += 1
        response = self.client.post(
            self.url("/media"), files={"file": (filename, data or jpeg(self._seed), "image/jpeg")}
        )
        assert response.status_code in (200, 201), response.text
        return response.json()

    def individual(self, code: str, species: str = "humpback_whale", **extra: Any) -> dict[str, Any]:
        return self.post("/individuals", {"catalogue_code": code, "species": species, **extra})

    def sighting(
        self,
        individual_id: str | None,
        *,
        when: str = "2024-07-14T09:32:00-07:00",
        latitude: float = 48.51,
        longitude: float = -123.15,
        species: str = "humpback_whale",
        with_embedding: bool = True,
    ) -> dict[str, Any]:
        """Enrol one photo with one annotation, confirmed as ``individual_id`` (or pending)."""
        media = self.upload()["media"]
        self._seed += 1
        annotation: dict[str, Any] = {
            "box": {"x": 2, "y": 2, "width": 40, "height": 30},
            "view": "fluke",
            "species": species,
            "species_score": 0.9,
        }
        if with_embedding:
            annotation["embedding"] = {"model_version": "finprint_embedder:1", "vector": vector(self._seed)}
        if individual_id:
            annotation.update(decision="confirmed", individual_id=individual_id, decided_by="ana")
        return self.post(
            "/enrolments",
            {
                "encounter": {
                    "occurred_at": when,
                    "latitude": latitude,
                    "longitude": longitude,
                    "location_name": "Haro Strait",
                    "observer": "Ana",
                },
                "photos": [{"media_id": media["id"], "annotations": [annotation]}],
            },
        )


MakeCatalogue = Callable[[str], Catalogue]
