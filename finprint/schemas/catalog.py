"""Wire schemas of the catalog's HTTP API (``/v1/orgs/{org_id}/...``), used by the catalog and its callers.

Ids are UUID strings. Times are ISO 8601 with a zone. ``...Create`` is what a client sends,
``...Out`` what it gets back; ``...Update`` fields left out are not changed.
"""

from __future__ import annotations

from datetime import datetime
from typing import Generic, Literal, TypeVar

from pydantic import AliasChoices, AwareDatetime, BaseModel, ConfigDict, Field, model_validator

from finprint.schemas.common import NOTES_MAX_LENGTH, Inbound, SingleLine

OFFSET_MAX = 2**31 - 1
"""The furthest a page may start: the databases hold 64-bit integers, and a larger offset than any
catalogue's row count is an error of the caller's (it was a 500: out of range for SQLite and PostgreSQL)."""
GROUP_SIZE_MAX = 100_000
SEQ_MAX = 2**63 - 1
"""Change sequence numbers are 64-bit in the database."""

API_KEY_MAX_LENGTH = 200
"""The longest string that may be an API key (the keys made are far shorter)."""

Role = Literal["admin", "reviewer", "contributor", "viewer"]
Sex = Literal["female", "male", "unknown"]
View = Literal["fluke", "dorsal_fin", "head", "flank", "other"]
Decision = Literal["pending", "confirmed", "new_individual", "rejected"]
IngestJobStatus = Literal["pending", "running", "paused", "completed", "failed", "cancelled"]
IngestItemStatus = Literal["pending", "running", "done", "failed", "skipped"]


class _Out(BaseModel):
    model_config = ConfigDict(from_attributes=True)


class _OrgRowOut(_Out):
    """A row an organisation owns: its id and the organisation's."""

    id: str
    org_id: str


T = TypeVar("T")


class Page(BaseModel, Generic[T]):
    items: list[T]
    total: int = Field(description="How many items match, over all pages.")
    offset: int
    limit: int


# --- organisations, users, API keys ---------------------------------------------------------


class OrganisationCreate(Inbound):
    slug: str = Field(pattern=r"^[a-z0-9][a-z0-9-]{1,62}$", examples=["pacific-whale-lab"])
    name: str = Field(min_length=1, max_length=200, examples=["Pacific Whale Lab"])


class OrganisationOut(_Out):
    id: str
    slug: str
    name: str
    created_at: datetime


class OrganisationSettings(BaseModel):
    """What an organisation chose for its catalogue."""

    model_config = ConfigDict(from_attributes=True)

    auto_accept_precision: float | None = Field(
        None, ge=0.5, le=1.0,
        description="Auto-accept: a match whose top candidate clears the species' cut for this precision target "
        "(the lowest score cut whose precision on the model's validation individuals reaches it) is confirmed "
        "without review, decided by `auto-accept`; null: off, every match waits for review.",
        examples=[0.99],
    )


class OrganisationSettingsUpdate(OrganisationSettings, Inbound):
    updated_by: str = Field(min_length=1, max_length=200, description="Who changed the settings (audited).")


class UserCreate(Inbound):
    email: str = Field(pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$", max_length=320, examples=["ana@whales.org"])
    display_name: str = Field(min_length=1, max_length=200)
    password: str = Field(min_length=10, max_length=200, description="At least 10 characters.")
    role: Role = "contributor"


class UserOut(_OrgRowOut):
    email: str
    display_name: str
    role: Role
    disabled: bool
    created_at: datetime


class PasswordVerify(Inbound):
    email: str
    password: str


class ApiKeyCreate(Inbound):
    name: str = Field(min_length=1, max_length=200, examples=["partner platform"])
    role: Role = "contributor"


class ApiKeyOut(_OrgRowOut):
    prefix: str
    name: str
    role: Role
    created_at: datetime
    revoked_at: datetime | None


class ApiKeyCreated(ApiKeyOut):
    key: str = Field(
        description="The key itself; shown this once, only its hash is stored.",
        examples=["fp_3kq9x2mz_Vh2...x"],
    )


class ApiKeyVerify(Inbound):
    key: str = Field(max_length=API_KEY_MAX_LENGTH)


class Principal(BaseModel):
    """Who a verified API key or password belongs to (for the gateway's authorisation)."""

    org_id: str
    org_slug: str
    role: Role
    kind: Literal["api_key", "user"]
    subject_id: str = Field(description="The API key's or the user's id.")
    name: str


# --- species, individuals ---------------------------------------------------------------------


class SpeciesOut(_Out):
    key: str = Field(examples=["humpback_whale"])
    common_name: str = Field(examples=["Humpback whale"])
    scientific_name: str | None = Field(examples=["Megaptera novaeangliae"])
    is_cetacean: bool


class IndividualCreate(Inbound):
    catalogue_code: SingleLine = Field(
        min_length=1,
        max_length=64,
        examples=["HW-0042"],
        description="The id researchers know; unique in the organisation.",
    )
    species: str = Field(examples=["humpback_whale"])
    name: str | None = Field(None, max_length=200, examples=["Salt"])
    sex: Sex = "unknown"
    notes: str | None = Field(None, max_length=NOTES_MAX_LENGTH)


class IndividualUpdate(Inbound):
    catalogue_code: SingleLine | None = Field(None, min_length=1, max_length=64)
    species: str | None = None
    name: str | None = Field(None, max_length=200)
    sex: Sex | None = None
    notes: str | None = Field(None, max_length=NOTES_MAX_LENGTH)
    representative_media_id: str | None = None


class IndividualOut(_OrgRowOut):
    catalogue_code: str
    name: str | None
    species: str = Field(validation_alias=AliasChoices("species", "species_key"), examples=["humpback_whale"])
    sex: Sex
    notes: str | None
    first_seen: datetime | None
    last_seen: datetime | None
    representative_media_id: str | None
    status: Literal["active", "merged"]
    merged_into_id: str | None
    created_at: datetime
    updated_at: datetime


class MergeRequest(Inbound):
    """Everything of ``source_ids`` moves to ``target_id``; the sources stay, marked merged."""

    target_id: str
    source_ids: list[str] = Field(min_length=1)
    reason: str | None = None
    actor: str | None = None


class SplitRequest(Inbound):
    """``annotation_ids`` of the individual move to a new individual (``new_individual``)."""

    annotation_ids: list[str] = Field(min_length=1)
    new_individual: IndividualCreate
    reason: str | None = None
    actor: str | None = None


class MergeSplitResult(BaseModel):
    individual: IndividualOut = Field(description="The merge target, or the new individual of a split.")
    moved_annotation_ids: list[str]
    audit_ids: list[int]


# --- encounters, media ------------------------------------------------------------------------


class _EncounterFields(Inbound):
    """What a client may say about an encounter, each field optional: what Create and Update share."""

    occurred_at: AwareDatetime | None = None
    latitude: float | None = Field(None, ge=-90, le=90)
    longitude: float | None = Field(None, ge=-180, le=180)
    location_name: str | None = Field(None, max_length=200)
    observer: str | None = Field(None, max_length=200)
    behaviour: str | None = Field(None, max_length=200)
    group_size: int | None = Field(None, ge=1, le=GROUP_SIZE_MAX)
    notes: str | None = Field(None, max_length=NOTES_MAX_LENGTH)


class EncounterCreate(_EncounterFields):
    occurred_at: AwareDatetime | None = Field(
        None, examples=["2024-07-14T09:32:00-07:00"], description="When, with its time zone."
    )
    created_by: str | None = Field(None, max_length=200)

    @model_validator(mode="after")
    def _both_coordinates_or_none(self) -> EncounterCreate:
        if (self.latitude is None) != (self.longitude is None):
            raise ValueError("give both latitude and longitude, or neither")
        return self


class EncounterUpdate(_EncounterFields):
    pass


class EncounterOut(_OrgRowOut):
    occurred_at: datetime | None = Field(description="In the time zone it was recorded in.")
    latitude: float | None
    longitude: float | None
    location_name: str | None
    observer: str | None
    behaviour: str | None
    group_size: int | None
    notes: str | None
    created_by: str | None
    created_at: datetime
    media_ids: list[str] = []
    individual_ids: list[str] = Field([], description="Individuals identified in this encounter's media.")


class MediaOut(_OrgRowOut):
    encounter_id: str | None
    sha256: str
    content_type: str
    size_bytes: int
    width: int
    height: int
    original_filename: str | None
    exif_taken_at: datetime | None = Field(
        description="EXIF DateTimeOriginal (zone from OffsetTimeOriginal, else UTC)."
    )
    exif_latitude: float | None
    exif_longitude: float | None
    uploaded_by: str | None
    created_at: datetime


class MediaUploaded(BaseModel):
    media: MediaOut
    duplicate: bool = Field(
        description="True when the same bytes were already stored; nothing was stored twice."
    )
    encounter_prefill: EncounterCreate = Field(description="Date-time and position read from the EXIF data.")


class PresignedUrl(BaseModel):
    url: str
    expires_at: datetime


# --- annotations, identifications -------------------------------------------------------------


class Box(Inbound):
    """Pixels in the original image: top-left corner, width and height."""

    x: float = Field(ge=0)
    y: float = Field(ge=0)
    width: float = Field(gt=0)
    height: float = Field(gt=0)


OTHER_EMBEDDINGS = ("The same crop embedded by the other model versions its shard keeps (while the catalogue is "
                    "re-embedded, or the version a rollback returns to); each version at most once.")


class EmbeddingIn(Inbound):
    model_version: str = Field(pattern=r"^[\w.-]+:[\w.-]+$", examples=["finprint_embedder:1"])
    vector: str = Field(
        description="base64 of little-endian float32 (finprint.schemas.embeddings.encode_vector)."
    )


class AnnotationCreate(Inbound):
    media_id: str
    box: Box
    view: View | None = None
    quality: float | None = Field(None, ge=0, le=1)
    species: str | None = Field(None, examples=["humpback_whale"])
    species_score: float | None = Field(None, ge=0, le=1)
    embedding: EmbeddingIn | None = None
    other_embeddings: list[EmbeddingIn] = Field([], max_length=4, description=OTHER_EMBEDDINGS)
    individual_id: str | None = None


class AnnotationUpdate(Inbound):
    individual_id: str | None = Field(
        None, description="Reassign (null with `clear_individual` to unassign)."
    )
    clear_individual: bool = False
    view: View | None = None
    quality: float | None = Field(None, ge=0, le=1)
    species: str | None = None
    actor: str | None = None


class AnnotationOut(_OrgRowOut):
    media_id: str
    individual_id: str | None
    box: Box
    view: View | None
    quality: float | None
    species: str | None
    species_score: float | None
    embedding_model: str | None = Field(description="The model version of its first embedding.")
    embedding_models: list[str] = Field(description="Every model version it has an embedding of, oldest first.")
    has_embedding: bool
    created_at: datetime


class Candidate(Inbound):
    individual_id: str
    score: float = Field(examples=[0.83])
    catalogue_code: str | None = None
    best_annotation_id: str | None = Field(
        None, description="The candidate's annotated photo closest to the animal under review (the one that gave "
        "the score): what an explanation compares it with.")


class IdentificationCreate(Inbound):
    annotation_id: str
    candidates: list[Candidate] = []
    new_individual_probability: float | None = Field(None, ge=0, le=1)
    model_version: str | None = None


class DecisionRequest(Inbound):
    """``confirmed`` needs ``individual_id``; ``new_individual`` needs ``new_individual``."""

    decision: Literal["confirmed", "new_individual", "rejected"]
    individual_id: str | None = None
    new_individual: IndividualCreate | None = None
    decided_by: str = Field(min_length=1, max_length=200)

    @model_validator(mode="after")
    def _decision_has_its_subject(self) -> DecisionRequest:
        if self.decision == "confirmed" and not self.individual_id:
            raise ValueError("a confirmed identification needs individual_id")
        if self.decision == "new_individual" and self.new_individual is None:
            raise ValueError("a new_individual decision needs new_individual")
        return self


class IdentificationOut(_OrgRowOut):
    annotation_id: str
    media_id: str = Field(description="The photo under review.")
    box: Box = Field(description="Where the animal under review is in that photo.")
    view: View | None
    species: str | None = Field(description="The species predicted for the animal under review.")
    candidates: list[Candidate]
    new_individual_probability: float | None
    model_version: str | None
    decision: Decision
    individual_id: str | None
    decided_by: str | None
    decided_at: datetime | None
    created_at: datetime
    encounter_id: str | None = Field(None, description="The sighting of the photo under review.")
    occurred_at: datetime | None = Field(None, description="When it was taken, in the sighting's time zone.")
    location_name: str | None = Field(None, description="Where it was taken.")


# --- explanations: why a candidate matches ------------------------------------------------------

Heatmap = list[list[float]]


class ExplainedPhotoIn(Inbound):
    media_id: str
    heatmap: Heatmap = Field(description="[grid][grid], as the embedder's POST /v1/explain answers it.")
    overlay_png_base64: str = Field(description="The PNG overlay, base64.")


class ExplanationCreate(Inbound):
    """An explanation computed by the embedder, to keep (the object store) for whoever asks next."""

    model_version: str
    similarity: float
    grid: int = Field(ge=1, le=64)
    window: int = Field(ge=1, le=64)
    query: ExplainedPhotoIn
    candidate: ExplainedPhotoIn


class ExplainedPhoto(BaseModel):
    media_id: str
    heatmap: Heatmap
    overlay_url: str = Field(description="A presigned download URL of the PNG overlay (expires with `expires_at`).")


class ExplanationOut(BaseModel):
    """Why a candidate matches the animal under review: a heatmap per photo, and their overlays side by side."""

    identification_id: str
    individual_id: str = Field(description="The candidate individual.")
    model_version: str
    similarity: float = Field(description="Cosine similarity of the two photos' embeddings.")
    grid: int
    window: int
    query: ExplainedPhoto = Field(description="The photo under review.")
    candidate: ExplainedPhoto = Field(description="The candidate's photo it was compared with.")
    expires_at: datetime


# --- possible duplicates: individuals catalogued twice ------------------------------------------

DuplicateStatus = Literal["pending", "merged", "dismissed"]


class DuplicatePairIn(Inbound):
    individual_a_id: str
    individual_b_id: str
    score: float = Field(ge=-1, le=1, description="Their galleries' score (finprint.galleries).")
    annotation_a_id: str | None = Field(None, description="The photo of a in the closest pair: its annotation, "
                                        "or the embedding the matcher names (it is resolved to its annotation).")
    annotation_b_id: str | None = None


class DuplicatesFile(Inbound):
    """Pairs a duplicates scan found above its species' cut, to file into the review queue."""

    species: str
    model_version: str
    pairs: list[DuplicatePairIn] = Field(max_length=10_000)
    filed_by: str = Field(min_length=1, max_length=200)


class DuplicatesFiled(BaseModel):
    filed: int = Field(description="New pairs, now waiting for review.")
    updated: int = Field(description="Pairs already waiting: their score is the new one.")
    unchanged: int = Field(description="Pairs a reviewer merged or dismissed already: not filed again.")
    skipped: int = Field(description="Pairs of an individual merged meanwhile, or of two species.")


class DuplicatePairOut(_OrgRowOut):
    species: str = Field(validation_alias=AliasChoices("species_key", "species"))
    individual_a_id: str
    individual_b_id: str
    score: float
    model_version: str
    annotation_a_id: str | None
    annotation_b_id: str | None
    status: DuplicateStatus
    decided_by: str | None
    decided_at: datetime | None
    created_at: datetime
    updated_at: datetime


class DuplicateDecision(Inbound):
    """``merged``: everything of the other individual moves into ``keep`` (a by default), as
    ``individuals:merge`` does; ``dismissed``: two animals after all, not filed again."""

    decision: Literal["merged", "dismissed"]
    keep: str | None = Field(None, description="For `merged`: the individual that stays, a or b.")
    decided_by: str = Field(min_length=1, max_length=200)
    reason: str | None = Field(None, max_length=2000)


# --- enrolment (one transaction) ---------------------------------------------------------------

ENROL_PHOTOS_MAX = 100


class ImageIn(Inbound):
    content_base64: str
    filename: str | None = None


AUTO_ACCEPT_ACTOR = "auto-accept"
"""Who decided an identification confirmed without review (``decided_by``, the audit's actor)."""


class AutoAccepted(Inbound):
    """Why an annotation was confirmed without review: its match cleared the organisation's cut."""

    score: float = Field(description="The top candidate's score.")
    probability: float | None = Field(None, ge=0, le=1, description="Calibrated P(top candidate is the animal).")
    precision_target: float = Field(ge=0.5, le=1)
    cut: float = Field(description="The species' score cut for the target (validation individuals).")
    probability_cut: float | None = Field(None, ge=0, le=1)
    validation_precision: float | None = Field(None, ge=0, le=1)


class EnrolAnnotation(Inbound):
    box: Box
    view: View | None = None
    quality: float | None = Field(None, ge=0, le=1)
    species: str | None = None
    species_score: float | None = Field(None, ge=0, le=1)
    embedding: EmbeddingIn | None = None
    other_embeddings: list[EmbeddingIn] = Field([], max_length=4, description=OTHER_EMBEDDINGS)
    candidates: list[Candidate] = []
    new_individual_probability: float | None = Field(None, ge=0, le=1)
    decision: Decision = "pending"
    individual_id: str | None = Field(None, description="For `confirmed`: the individual.")
    new_individual: IndividualCreate | None = Field(None, description="For `new_individual`.")
    decided_by: str | None = None
    auto_accept: AutoAccepted | None = Field(
        None, description="A `confirmed` decision taken without review: why (audited as `auto_accepted`).")

    @model_validator(mode="after")
    def _auto_accept_confirms(self) -> EnrolAnnotation:
        if self.auto_accept is not None and self.decision != "confirmed":
            raise ValueError("auto_accept comes only with a confirmed decision")
        return self


class PhotoFile(Inbound):
    """A photo sent as a file part of a multipart enrolment, its bytes exactly as uploaded."""

    index: int = Field(ge=0, lt=ENROL_PHOTOS_MAX, description="Its place among the request's `photos` file parts.")
    filename: str | None = Field(None, description="The name it was uploaded with.")


class EnrolPhoto(Inbound):
    """One photo of an enrolment and what was found in it."""

    media_id: str | None = Field(None, description="Media uploaded before, or give `image` or `file`.")
    image: ImageIn | None = Field(None, description="The photo's bytes in base64, in this JSON body.")
    file: PhotoFile | None = Field(
        None, description="Multipart only: the photo is a `photos` file part of the request, sent as it was uploaded."
    )
    annotations: list[EnrolAnnotation] = Field(min_length=1)

    @model_validator(mode="after")
    def _one_source(self) -> EnrolPhoto:
        if [self.media_id, self.image, self.file].count(None) != 2:
            raise ValueError("give exactly one of media_id, image and file")
        return self


class EnrolRequest(Inbound):
    """Encounter + its photos + annotations (+ new individuals) + identifications, all or nothing.

    Several annotations may name the same ``new_individual`` catalogue code (the same animal in
    several photos): it is created once and all of them are assigned to it.
    """

    encounter_id: str | None = Field(None, description="An existing encounter, or give `encounter`.")
    encounter: EncounterCreate | None = None
    photos: list[EnrolPhoto] = Field(min_length=1, max_length=ENROL_PHOTOS_MAX)
    uploaded_by: str | None = None

    @model_validator(mode="after")
    def _one_encounter(self) -> EnrolRequest:
        if self.encounter_id is not None and self.encounter is not None:
            raise ValueError("give encounter_id or encounter, not both")
        return self


class EnrolResult(BaseModel):
    encounter: EncounterOut
    media: list[MediaOut] = Field(description="One per photo, in the order sent.")
    duplicate_media_ids: list[str] = Field(description="Photos whose bytes were already stored (stored once).")
    annotations: list[AnnotationOut]
    identifications: list[IdentificationOut]
    new_individuals: list[IndividualOut]


# --- collaboration, audit, jobs ---------------------------------------------------------------


class CommentCreate(Inbound):
    encounter_id: str | None = None
    identification_id: str | None = None
    parent_id: str | None = Field(None, description="The comment this one answers.")
    author: str = Field(min_length=1, max_length=200)
    body: str = Field(min_length=1, max_length=10_000)

    @model_validator(mode="after")
    def _one_subject(self) -> CommentCreate:
        if (self.encounter_id is None) == (self.identification_id is None):
            raise ValueError("comment on exactly one of encounter_id and identification_id")
        return self


class CommentOut(_Out):
    id: str
    encounter_id: str | None
    identification_id: str | None
    parent_id: str | None
    author: str
    body: str
    created_at: datetime
    replies: list[CommentOut] = []


class AuditEntryOut(_Out):
    id: int
    entity_type: str
    entity_id: str
    action: str
    actor: str | None
    details: dict
    created_at: datetime


REEMBED_JOB_KIND = "reembed"
"""``options.kind`` of an ingest job re-embedding stored photos with ``options.model_version`` (the catalog's
model_versions domain creates them; the gateway's workers run them)."""


class IngestJobCreate(Inbound):
    name: str = Field(min_length=1, max_length=200)
    source: str | None = Field(None, max_length=500, examples=["s3://archive/2019/"])
    options: dict = {}
    created_by: str | None = None


class IngestJobUpdate(Inbound):
    status: IngestJobStatus


class IngestJobOut(_OrgRowOut):
    name: str
    source: str | None
    status: IngestJobStatus
    options: dict
    created_by: str | None
    created_at: datetime
    updated_at: datetime
    counts: dict[str, int] = Field({}, description="Items by status.")


class IngestItemsAdd(Inbound):
    item_keys: list[str] = Field(min_length=1, max_length=10_000)


class IngestItemsAdded(BaseModel):
    added: int
    already_present: int


class IngestItemUpdate(Inbound):
    status: IngestItemStatus
    media_id: str | None = None
    result: dict | None = None
    error: str | None = None


class IngestItemOut(_Out):
    id: str
    job_id: str
    item_key: str
    status: IngestItemStatus
    media_id: str | None
    result: dict
    error: str | None
    attempts: int
    updated_at: datetime


# --- statistics -------------------------------------------------------------------------------


class MonthCount(BaseModel):
    month: str = Field(examples=["2024-07"], description="YYYY-MM (UTC) of the sightings counted.")
    count: int


class CatalogueStats(BaseModel):
    """Figures for charts. ``encounters_by_month`` and ``encounters_undated`` add up to ``encounters``."""

    individuals_by_species: dict[str, int] = Field(examples=[{"humpback_whale": 412, "beluga": 88}])
    encounters_by_month: list[MonthCount]
    encounters_undated: int = Field(0, description="Encounters without a date (in no month).")
    identifications_by_decision: dict[str, int] = Field(examples=[{"pending": 12, "confirmed": 300}])
    media: int
    encounters: int
