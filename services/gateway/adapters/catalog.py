"""The gateway's calls to the catalog. Every path is scoped by the caller's organisation."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any
from urllib.parse import quote

import numpy as np

from finprint.http import ServiceClient
from finprint.schemas.embeddings import encode_vector
from services.gateway.adapters.uploads import Upload


def segment(value: str) -> str:
    """A caller's id as exactly one segment of a catalog path: `/`, `?`, `#` and `%` percent-encoded, so an id
    can neither add path segments or a query nor be decoded twice. (Control characters and `.`/`..` never
    get this far: finprint.app.plain_parameters refuses them.)"""
    return quote(value, safe="")


class CatalogClient:
    def __init__(self, client: ServiceClient) -> None:
        self.client = client

    async def verify_api_key(self, key: str) -> dict[str, Any]:
        return await self.client.post_json("/v1/auth/api-keys:verify", {"key": key}, idempotent=True)

    async def verify_password(self, email: str, password: str) -> dict[str, Any]:
        return await self.client.post_json("/v1/auth/passwords:verify", {"email": email, "password": password},
                                           idempotent=True)

    async def individuals_by_id(self, org_id: str, ids: list[str]) -> dict[str, dict[str, Any]]:
        if not ids:
            return {}
        page = await self.client.get_json(f"/v1/orgs/{org_id}/individuals",
                                          params={"ids": ",".join(ids), "limit": len(ids), "include_merged": "true"})
        return {item["id"]: item for item in page["items"]}

    async def settings(self, org_id: str) -> dict[str, Any]:
        """The organisation's settings (OrganisationSettings)."""
        return await self.client.get_json(f"/v1/orgs/{org_id}/settings")

    async def individual_by_code(self, org_id: str, code: str) -> dict[str, Any] | None:
        page = await self.client.get_json(f"/v1/orgs/{org_id}/individuals",
                                          params={"catalogue_code": code, "limit": 1})
        return page["items"][0] if page["items"] else None

    async def enrol(self, org_id: str, enrolment: dict[str, Any], photos: Sequence[Upload],
                    idempotency_key: str | None, fingerprint: str) -> dict[str, Any]:
        """One enrolment transaction: ``enrolment`` is the catalog's EnrolRequest without the photos,
        ``photos`` the photos of its ``photos`` entries, in order.

        Each photo goes once, its bytes as uploaded: multipart, the EnrolRequest as the JSON part
        ``enrolment`` (each entry naming its file part, with the photo's name, which JSON carries
        whatever its characters) and one ``photos`` file part per photo.
        """
        headers = {"Idempotency-Key": idempotency_key, "Idempotency-Fingerprint": fingerprint} if idempotency_key else {}
        document = {**enrolment, "photos": [
            {**entry, "file": {"index": index, "filename": photo.filename}}
            for index, (entry, photo) in enumerate(zip(enrolment["photos"], photos, strict=True))]}
        parts = [("enrolment", ("enrolment.json", json.dumps(document).encode(), "application/json")),
                 *(("photos", (f"photo-{i}", photo.data, photo.content_type)) for i, photo in enumerate(photos))]
        # Retried: with an idempotency key the catalog replays instead of storing twice.
        response = await self.client.request("POST", f"/v1/orgs/{org_id}/enrolments", files=parts, headers=headers,
                                             idempotent=idempotency_key is not None)
        return response.json()

    async def media_content(self, org_id: str, media_id: str) -> Upload:
        """A stored photo's original bytes."""
        response = await self.client.request("GET", f"/v1/orgs/{org_id}/media/{segment(media_id)}/content")
        return Upload(response.content, media_id, response.headers.get("content-type", "application/octet-stream"))

    async def store_embedding(self, org_id: str, annotation_id: str, model_version: str,
                              vector: np.ndarray) -> dict[str, Any]:
        """An annotation's embedding of one model version (a re-embedding); a replay replaces it."""
        body = {"model_version": model_version, "vector": encode_vector(vector)}
        response = await self.client.request(
            "PUT", f"/v1/orgs/{org_id}/annotations/{segment(annotation_id)}/embeddings", json=body, idempotent=True)
        return response.json()

    async def forward(self, method: str, path: str, **kwargs: Any) -> Any:
        response = await self.client.request(method, path, **kwargs)
        return None if response.status_code == 204 else response.json()

