"""A typed Python client of the public API v1, for partner platforms and scripts.

    from finprint.client import FinprintClient

    with FinprintClient("http://127.0.0.1:8000", api_key="fp_...") as fp:
        result = fp.identify(Path("fluke.jpg"))
        for animal in result.results:
            print(animal.species[0].species, animal.ranking)

Errors come back as :class:`FinprintError` carrying the server's problem document (RFC 9457).
Uploads send an ``Idempotency-Key``, so a retried upload is never stored twice.
"""

from __future__ import annotations

import mimetypes
import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, TypeVar

import httpx
from pydantic import BaseModel

from finprint.schemas.catalog import AUTO_ACCEPT_ACTOR, ExplanationOut, OrganisationSettings
from finprint.schemas.gateway import (
    DuplicateScan,
    EncounterIdentifyResponse,
    IdentifyResponse,
    PossibleDuplicate,
    TokenResponse,
)

M = TypeVar("M", bound=BaseModel)
ImageInput = Path | bytes


class FinprintError(Exception):
    """The API answered with a problem document."""

    def __init__(self, status: int, problem: dict[str, Any]) -> None:
        self.status = status
        self.problem = problem
        self.type = str(problem.get("type", ""))
        self.detail = str(problem.get("detail", ""))
        super().__init__(f"{status} {problem.get('title', '')}: {self.detail}")

    @property
    def retry_after(self) -> float | None:
        value = self.problem.get("retry_after")
        return float(value) if value is not None else None


def _image_part(image: ImageInput, name: str) -> tuple[str, tuple[str, bytes, str]]:
    if isinstance(image, Path):
        content_type = mimetypes.guess_type(image.name)[0] or "application/octet-stream"
        return name, (image.name, image.read_bytes(), content_type)
    return name, ("upload.jpg", image, "image/jpeg")


class FinprintClient:
    def __init__(
        self,
        base_url: str,
        *,
        api_key: str | None = None,
        access_token: str | None = None,
        timeout_s: float = 60.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        headers = {}
        if api_key:
            headers["X-API-Key"] = api_key
        if access_token:
            headers["Authorization"] = f"Bearer {access_token}"
        self._http = httpx.Client(base_url=base_url, headers=headers, timeout=timeout_s, transport=transport)

    def __enter__(self) -> FinprintClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    # --- plumbing -------------------------------------------------------------------------

    def request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        response = self._http.request(method, path, **kwargs)
        if response.status_code >= 400:
            try:
                problem = response.json()
            except ValueError:
                problem = {"detail": response.text[:500]}
            if "Retry-After" in response.headers:
                problem.setdefault("retry_after", response.headers["Retry-After"])
            raise FinprintError(response.status_code, problem)
        return response

    def _json(self, method: str, path: str, **kwargs: Any) -> Any:
        return self.request(method, path, **kwargs).json()

    def _model(self, model: type[M], method: str, path: str, **kwargs: Any) -> M:
        return model.model_validate(self._json(method, path, **kwargs))

    def paginate(self, path: str, params: dict[str, Any] | None = None) -> Iterator[dict[str, Any]]:
        """Every item of a cursor-paginated list, fetching pages as needed."""
        params = dict(params or {})
        while True:
            page = self._json("GET", path, params=params)
            yield from page["items"]
            if not page.get("next_cursor"):
                return
            params["cursor"] = page["next_cursor"]

    # --- authentication ---------------------------------------------------------------------

    def login(self, email: str, password: str) -> TokenResponse:
        """OAuth2 password flow; later calls carry the access token."""
        tokens = self._model(TokenResponse, "POST", "/v1/auth/token",
                             data={"username": email, "password": password, "grant_type": "password"})
        self._http.headers["Authorization"] = f"Bearer {tokens.access_token}"
        self._http.headers.pop("X-API-Key", None)
        return tokens

    def refresh(self, refresh_token: str) -> TokenResponse:
        tokens = self._model(TokenResponse, "POST", "/v1/auth/refresh", json={"refresh_token": refresh_token})
        self._http.headers["Authorization"] = f"Bearer {tokens.access_token}"
        return tokens

    # --- identification and enrolment ---------------------------------------------------------

    def identify(self, image: ImageInput, *, store: bool = False, idempotency_key: str | None = None,
                 **encounter: Any) -> IdentifyResponse:
        """Who is in the photo. With ``store=True`` the photo is kept for review (encounter fields apply)."""
        headers = {"Idempotency-Key": idempotency_key or uuid.uuid4().hex} if store else {}
        data = {k: str(v) for k, v in encounter.items() if v is not None}
        return self._model(IdentifyResponse, "POST", "/v1/identify", params={"store": str(store).lower()},
                           files=[_image_part(image, "image")], data=data, headers=headers)

    def identify_encounter(self, images: Sequence[ImageInput]) -> EncounterIdentifyResponse:
        """Who the animal of several photos of one encounter is: each photo's answer, and one fused answer."""
        return self._model(EncounterIdentifyResponse, "POST", "/v1/encounters:identify",
                           files=[_image_part(i, "images") for i in images])

    def enrol(self, images: Sequence[ImageInput], *, individual_id: str | None = None,
              idempotency_key: str | None = None, **encounter: Any) -> dict[str, Any]:
        """Create an encounter with its photos, detected, embedded and indexed.

        ``individual_id`` is a catalogue code when the animal is known (a new code creates it).
        Encounter fields: observed_at (ISO 8601), latitude, longitude, location, observer, notes.
        """
        data = {k: str(v) for k, v in {**encounter, "individual_id": individual_id}.items() if v is not None}
        return self._json("POST", "/v1/encounters", files=[_image_part(i, "images") for i in images], data=data,
                          headers={"Idempotency-Key": idempotency_key or uuid.uuid4().hex})

    # --- the catalogue ------------------------------------------------------------------------

    def stats(self) -> dict[str, Any]:
        """Figures for charts: individuals by species, sightings by month, reviews by decision."""
        return self._json("GET", "/v1/stats")

    def species(self) -> list[dict[str, Any]]:
        return self._json("GET", "/v1/species")

    def individuals(self, *, species: str | None = None, q: str | None = None) -> Iterator[dict[str, Any]]:
        return self.paginate("/v1/individuals", {k: v for k, v in {"species": species, "q": q}.items() if v})

    def individual(self, ref: str) -> dict[str, Any]:
        """An individual by catalogue code (or id), with its sightings."""
        return self._json("GET", f"/v1/individuals/{ref}")

    def create_individual(self, catalogue_code: str, species: str, **fields: Any) -> dict[str, Any]:
        return self._json("POST", "/v1/individuals", json={"catalogue_code": catalogue_code, "species": species,
                                                            **fields})

    def merge(self, target: str, sources: Sequence[str], reason: str | None = None) -> dict[str, Any]:
        """Merge individuals catalogued twice (catalogue codes) into ``target``."""
        return self._json("POST", "/v1/individuals:merge",
                          json={"target": target, "sources": list(sources), "reason": reason})

    def split(self, ref: str, annotation_ids: Sequence[str], new_code: str, species: str) -> dict[str, Any]:
        return self._json("POST", f"/v1/individuals/{ref}:split", json={
            "annotation_ids": list(annotation_ids),
            "new_individual": {"catalogue_code": new_code, "species": species}})

    def encounters(self, *, individual: str | None = None) -> Iterator[dict[str, Any]]:
        return self.paginate("/v1/encounters", {"individual": individual} if individual else None)

    def media_url(self, media_id: str) -> str:
        return self._json("GET", f"/v1/media/{media_id}/url")["url"]

    # --- the review queue -----------------------------------------------------------------------

    def review_queue(self, decision: str = "pending") -> Iterator[dict[str, Any]]:
        return self.paginate("/v1/identifications", {"decision": decision})

    def auto_accepted(self) -> Iterator[dict[str, Any]]:
        """The matches confirmed without review (auto-accept), which a reviewer may revise."""
        return self.paginate("/v1/identifications", {"decision": "confirmed", "decided_by": AUTO_ACCEPT_ACTOR})

    # --- possible duplicates ---------------------------------------------------------------------

    def scan_duplicates(self, species: Sequence[str] | None = None) -> DuplicateScan:
        """File pairs of individuals whose galleries are closer than the species' cut (reviewer)."""
        return self._model(DuplicateScan, "POST", "/v1/duplicates:scan",
                           json={"species": list(species)} if species else {})

    def duplicates(self, status: str = "pending") -> Iterator[dict[str, Any]]:
        """Possible duplicates, closest first: both individuals with their galleries (PossibleDuplicate)."""
        return self.paginate("/v1/duplicates", {"status": status})

    def merge_duplicate(self, pair_id: str, keep: str | None = None) -> PossibleDuplicate:
        """One click: the other individual merges into ``keep`` (a catalogue code; default the pair's a)."""
        return self._model(PossibleDuplicate, "POST", f"/v1/duplicates/{pair_id}:decide",
                           json={"decision": "merged", **({"keep": keep} if keep else {})})

    def dismiss_duplicate(self, pair_id: str) -> PossibleDuplicate:
        return self._model(PossibleDuplicate, "POST", f"/v1/duplicates/{pair_id}:decide",
                           json={"decision": "dismissed"})

    # --- the organisation's settings (admin to change) ------------------------------------------

    def settings(self) -> OrganisationSettings:
        return self._model(OrganisationSettings, "GET", "/v1/settings")

    def set_auto_accept(self, precision_target: float | None) -> OrganisationSettings:
        """Confirm matches without review above the species' cut for ``precision_target``; None: off."""
        return self._model(OrganisationSettings, "PUT", "/v1/settings",
                           json={"auto_accept_precision": precision_target})

    def confirm(self, identification_id: str, individual: str) -> dict[str, Any]:
        return self._json("POST", f"/v1/identifications/{identification_id}:decide",
                          json={"decision": "confirmed", "individual_id": individual})

    def declare_new(self, identification_id: str, catalogue_code: str, species: str) -> dict[str, Any]:
        return self._json("POST", f"/v1/identifications/{identification_id}:decide", json={
            "decision": "new_individual", "new_individual": {"catalogue_code": catalogue_code, "species": species}})

    def explain(self, identification_id: str, candidate: str) -> ExplanationOut:
        """Why ``candidate`` (a catalogue code) matches: a heatmap and a PNG overlay URL per photo."""
        return self._model(ExplanationOut, "GET", f"/v1/identifications/{identification_id}/explanations/{candidate}")

    def reject(self, identification_id: str) -> dict[str, Any]:
        return self._json("POST", f"/v1/identifications/{identification_id}:decide", json={"decision": "rejected"})

    def comment(self, body: str, *, identification_id: str | None = None, encounter_id: str | None = None,
                parent_id: str | None = None) -> dict[str, Any]:
        return self._json("POST", "/v1/comments", json={
            "body": body, "identification_id": identification_id, "encounter_id": encounter_id,
            "parent_id": parent_id})

    def export(self, name: str) -> bytes:
        """encounters.csv, dataset.zip or dwca.zip."""
        return self.request("GET", f"/v1/exports/{name}").content
