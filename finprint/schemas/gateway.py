"""The public API v1 contract (the gateway), shared by the gateway and the typed client.

Partners and our own checks depend on these shapes: change them only compatibly.
"""

from __future__ import annotations

from pydantic import BaseModel, Field

from finprint.schemas.common import ModelInfo, SpeciesScore

NO_CETACEAN = "no_cetacean"


class IdentifyCandidate(BaseModel):
    individual_id: str = Field(description="The individual's catalogue code.", examples=["HW-0042"])
    score: float = Field(description="Cosine similarity to this individual: its best catalogued image, mixed "
                         "with the centroid of its images where the model card says so (`individual_scoring`).",
                         examples=[0.81])
    name: str | None = Field(None, examples=["Salt"])


class IdentifyResult(BaseModel):
    """One animal found in the photo."""

    box: list[float] = Field(min_length=4, max_length=4, description="[x0, y0, x1, y1] in pixels of the photo.",
                             examples=[[112.0, 80.0, 1630.0, 905.0]])
    view: str = Field(description="fluke, dorsal_fin, head or other.", examples=["fluke"])
    detection_score: float = Field(examples=[0.98])
    species: list[SpeciesScore] = Field(description="Species probabilities, best first.")
    candidates: list[IdentifyCandidate] = Field(description="Up to 5 catalogued individuals, best first.")
    new_individual: float = Field(ge=0, le=1, description="Probability that this is an individual not yet catalogued: "
                                  "the model card's calibrated fit for the species where it has one.")
    ranking: list[str] = Field(
        description="Five labels as a Happywhale/Kaggle MAP@5 submission lists them: catalogue codes, with "
        "`new_individual` placed by the calibrated threshold.",
        examples=[["HW-0042", "new_individual", "HW-0007", "HW-0311", "HW-0005"]],
    )
    model_version: str | None = Field(
        None, description="The embedder version whose index answered: the version the species' shard serves "
        "(`GET /v1/model`).", examples=["finprint_embedder:2"])
    top_candidate_probability: float | None = Field(
        None, ge=0, le=1, description="Calibrated probability that the first candidate is this animal (the model "
        "card's fit for the species, on the validation individuals); null without candidates or calibration.",
        examples=[0.97])
    identification_id: str | None = Field(None, description="Set when stored for review (store=true).")
    decision: str | None = Field(None, description="When stored: `pending` (waits for review), or `confirmed` "
                                 "when auto-accepted (the organisation's precision target).")


class IdentifyModels(BaseModel):
    detector: ModelInfo
    embedder: ModelInfo | None = None


class IdentifyResponse(BaseModel):
    results: list[IdentifyResult]
    reason: str | None = Field(None, description=f"Why there are no results, e.g. `{NO_CETACEAN}`.")
    model: IdentifyModels
    encounter_id: str | None = Field(None, description="Set when stored (store=true).")
    media_id: str | None = None


class EncounterPhoto(BaseModel):
    """What one photo of an encounter shows on its own."""

    filename: str
    result: IdentifyResult | None = Field(description="The animal of the photo (its most confident detection); "
                                          "null when no cetacean was found.")
    reason: str | None = Field(None, description=f"Why there is no result, e.g. `{NO_CETACEAN}`.")


class FusedIdentification(BaseModel):
    """One answer for the animal of the whole encounter: its photos' embeddings averaged, then searched."""

    species: list[SpeciesScore] = Field(description="Species probabilities averaged over the photos used, best first.")
    candidates: list[IdentifyCandidate] = Field(description="Up to 5 catalogued individuals, best first.")
    new_individual: float = Field(ge=0, le=1)
    top_candidate_probability: float | None = Field(None, ge=0, le=1)
    ranking: list[str] = Field(description="Five labels, as for one photo.")
    photos_used: int = Field(description="Photos in which a cetacean was found (the others are left out).")


class EncounterIdentifyResponse(BaseModel):
    fused: FusedIdentification | None = Field(description="Null when no photo showed a cetacean.")
    photos: list[EncounterPhoto] = Field(description="One per photo sent, in order.")
    reason: str | None = Field(None, description=f"Why there is no fused answer, e.g. `{NO_CETACEAN}`.")
    model: IdentifyModels


class TokenResponse(BaseModel):
    access_token: str
    refresh_token: str
    token_type: str = "bearer"
    expires_in: int = Field(description="Seconds until the access token expires.")


class RefreshRequest(BaseModel):
    refresh_token: str


class DuplicateSide(BaseModel):
    """One of two individuals that may be one animal, with its gallery, to look at side by side."""

    id: str = Field(description="The individual's catalogue id.")
    catalogue_code: str | None = Field(examples=["HW-0042"])
    name: str | None = None
    status: str = Field(description="active, or merged (decided since the pair was filed).")
    photos: list[str] = Field(description="Media ids of its photos (up to 6), the one closest to the other first.")


class PossibleDuplicate(BaseModel):
    """Two individuals of one species whose galleries are closer than the species' calibrated cut."""

    id: str
    species: str
    score: float = Field(description="Their galleries' score (finprint.galleries): the cut is on the model card.")
    model_version: str
    status: str = Field(description="pending, merged or dismissed.")
    a: DuplicateSide
    b: DuplicateSide
    merge: str = Field(description="The one-click merge: POST this path with {\"decision\": \"merged\"} "
                       "(a stays; `keep` chooses b) or {\"decision\": \"dismissed\"}.")
    decided_by: str | None = None
    decided_at: str | None = None


class DuplicateScanSpecies(BaseModel):
    cut: float | None = Field(description="The species' cut (model card); null: not calibrated, nothing filed.")
    individuals: int = Field(description="Individuals compared.")
    found: int = Field(description="Pairs at or above the cut.")
    filed: int = 0
    updated: int = 0
    unchanged: int = 0
    skipped: int = 0


class DuplicateScan(BaseModel):
    model_version: str
    species: dict[str, DuplicateScanSpecies] = Field(description="Per species with an index.")
