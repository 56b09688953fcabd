"""The matcher's HTTP contract, and the shard routing function the gateway and the matcher share.

The matcher holds one index per (organisation, species group, model version) and answers with
candidate INDIVIDUALS, each scored by the best cosine similarity among its images, plus the
probability that the animal is an individual the catalogue does not hold yet.

Sharding: a matcher shard owns the (organisation, species group) keys that :func:`shard_for`
maps to its index, unless it is configured with an explicit list of keys. The gateway calls
:func:`shard_for` with the same arguments to pick the shard to send a search to, so both sides
must use this function and nothing else.
"""

from __future__ import annotations

import hashlib
from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from finprint.schemas.embeddings import EmbeddingRecord, IndexKey, decode_vector

NEW_INDIVIDUAL = "new_individual"
"""The label of the "not in the catalogue" answer in a ranking (as in the Happywhale competition)."""

EMBEDDING_DIM = 512
MAX_QUERIES_PER_SEARCH = 256
MAX_K = 100


def shard_for(org_id: str, species_group: str, shard_count: int) -> int:
    """The shard (0-based) that owns an (organisation, species group) key.

    A stable hash (BLAKE2b of the two ids, not Python's salted ``hash``) so that every process,
    language and restart agrees. Model versions of one key stay together on one shard, so that a
    model migration can serve the old and new index side by side.
    """
    if shard_count < 1:
        raise ValueError("shard_count must be at least 1")
    digest = hashlib.blake2b(f"{org_id}\x1f{species_group}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") % shard_count


class SearchRequest(IndexKey):
    """Search one index with one or more query embeddings (batch search).

    Give the queries either as JSON numbers (``queries``) or as base64 of little-endian float32
    (``queries_b64``, the encoding of EmbeddingRecord.vector): 64 queries are 130 KB of base64
    against ~600 KB of JSON numbers, and decode without parsing 32k floats.
    """

    queries: list[list[float]] | None = Field(
        None,
        min_length=1,
        max_length=MAX_QUERIES_PER_SEARCH,
        description=f"Query embeddings, each {EMBEDDING_DIM} floats (re-normalised to unit length here).",
    )
    queries_b64: list[str] | None = Field(
        None,
        min_length=1,
        max_length=MAX_QUERIES_PER_SEARCH,
        description="The same, each base64 of little-endian float32 "
        "(finprint.schemas.embeddings.encode_vector).",
    )
    k: int = Field(5, ge=1, le=MAX_K, description="How many candidate individuals to return per query.")
    precision_target: float | None = Field(
        None, ge=0.5, le=1.0,
        description="The organisation's auto-accept precision target: each result then says the species' cut "
        "for it (from the model card) and whether the top candidate clears it.",
    )

    @field_validator("queries")
    @classmethod
    def _each_query_has_the_embedding_dimension(
        cls, queries: list[list[float]] | None
    ) -> list[list[float]] | None:
        for position, query in enumerate(queries or []):
            if len(query) != EMBEDDING_DIM:
                raise ValueError(f"query {position} has {len(query)} values; embeddings have {EMBEDDING_DIM}")
        return queries

    @field_validator("queries_b64")
    @classmethod
    def _each_encoded_query_has_the_embedding_dimension(cls, queries: list[str] | None) -> list[str] | None:
        for position, text in enumerate(queries or []):
            try:
                values = len(decode_vector(text))
            except ValueError:
                raise ValueError(f"query {position} is not base64 of float32") from None
            if values != EMBEDDING_DIM:
                raise ValueError(f"query {position} has {values} values; embeddings have {EMBEDDING_DIM}")
        return queries

    @model_validator(mode="after")
    def _exactly_one_form(self) -> SearchRequest:
        if (self.queries is None) == (self.queries_b64 is None):
            raise ValueError("give exactly one of queries and queries_b64")
        return self

    def matrix(self) -> np.ndarray:
        """The queries as a float32 [n, 512] array."""
        if self.queries is not None:
            return np.asarray(self.queries, dtype=np.float32)
        return np.stack([decode_vector(text) for text in self.queries_b64 or []])

    @property
    def count(self) -> int:
        return len(self.queries if self.queries is not None else self.queries_b64 or [])

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "org_id": "5f1c2d7e-org",
                    "species_group": "humpback_whale",
                    "model_version": "finprint_embedder:1",
                    "queries": [[0.044] * EMBEDDING_DIM],
                    "k": 5,
                }
            ]
        }
    )


class Candidate(BaseModel):
    individual_id: str = Field(examples=["ind-00042"])
    score: float = Field(
        description="Best cosine similarity between the query and this individual's images.", examples=[0.83]
    )
    best_embedding_id: str = Field(
        description="The image (embedding) that gave the score.", examples=["emb-991"]
    )


class AutoAcceptCut(BaseModel):
    """Whether a top candidate may be confirmed without review, under a precision target."""

    precision_target: float = Field(ge=0.5, le=1.0, examples=[0.99])
    cut: float | None = Field(
        None, description="The lowest score cut whose precision on the validation individuals reaches the target; "
        "null when none does (nothing is accepted then).", examples=[0.74])
    probability_cut: float | None = Field(
        None, description="The calibrated probability that the top candidate is the animal, at the cut.")
    validation_precision: float | None = Field(None, description="The precision measured at the cut.")
    validation_coverage: float | None = Field(None, description="The share of validation queries above the cut.")
    accepted: bool = Field(description="The top candidate's score is at or above the cut.")


class QueryResult(BaseModel):
    candidates: list[Candidate] = Field(description="Up to k individuals, best first.")
    new_individual: float = Field(
        ge=0.0,
        le=1.0,
        description="Probability that the query shows an individual not in this index: the model card's "
        "calibrated fit (probability_calibration) for the species and model version, else a logistic in the "
        "top score, 0.5 at the threshold.",
        examples=[0.12],
    )
    ranking: list[str] = Field(
        description=(
            f"Up to k labels: individual ids best first, with {NEW_INDIVIDUAL!r} inserted where the "
            "similarity falls below the threshold (the Happywhale way of answering)."
        ),
        examples=[["ind-00042", NEW_INDIVIDUAL, "ind-00007", "ind-00311", "ind-00005"]],
    )
    threshold: float = Field(description="The new-individual threshold (cosine similarity) applied.")
    top_candidate_probability: float | None = Field(
        None, ge=0.0, le=1.0,
        description="Calibrated probability that the top candidate is the animal (the model card's fit for the "
        "species); null without candidates or without a calibration for the model version and species.",
        examples=[0.97],
    )
    auto_accept: AutoAcceptCut | None = Field(
        None, description="Given a precision_target: the cut and whether the top candidate clears it.")


class DuplicatesRequest(IndexKey):
    """Pairs of individuals of one index whose galleries are so close they may be one animal."""

    min_score: float | None = Field(
        None, ge=-1.0, le=1.0,
        description="Report pairs scoring at least this; null: the species' cut from the model card "
        "(no cut there: no pairs).")
    limit: int = Field(100, ge=1, le=10_000, description="At most this many pairs, best first.")


class DuplicatePair(BaseModel):
    individual_a: str = Field(description="The lower id of the two.")
    individual_b: str
    score: float = Field(description="(1 - w) * the best cosine between a photo of each + w * their galleries' "
                         "centroid cosine, w the card's centroid weight (finprint.galleries).")
    best_photo_similarity: float
    centroid_similarity: float
    embedding_a: str = Field(description="The photo (embedding) of a in the best pair.")
    embedding_b: str


class DuplicatesResponse(BaseModel):
    cut: float | None = Field(description="The score cut applied; null: none (nothing reported).")
    individuals: int = Field(description="Individuals compared.")
    pairs: list[DuplicatePair] = Field(description="Best first.")


IndexKind = Literal["flat", "ivf"]


class IndexInfo(IndexKey):
    size: int = Field(description="Embeddings indexed.")
    individuals: int = Field(description="Distinct individuals indexed.")
    kind: IndexKind = Field(description="flat: exact inner product; ivf: approximate (inverted lists).")
    device: Literal["cpu", "gpu"] = "cpu"


class SearchResponse(BaseModel):
    results: list[QueryResult] = Field(description="One result per query, in the order of the queries.")
    index: IndexInfo
    serving_version: str | None = Field(
        None, description="The model version the shard answers from (null: an empty shard answers any).")
    kept_versions: list[str] = Field(
        [], description="Every version the shard keeps an index of (serving first): an enrolment stores each.")


class UpsertResult(BaseModel):
    embedding_id: str
    outcome: Literal["inserted", "updated", "unchanged", "removed", "stale", "not_owned"] = Field(
        description=(
            "unchanged: the same record was already applied (idempotent); removed: the record has no "
            "individual, so it left the index; stale: a newer change of this embedding was already "
            "applied; not_owned: the key belongs to another shard."
        )
    )


class BatchUpsertRequest(BaseModel):
    records: list[EmbeddingRecord] = Field(min_length=1, max_length=10_000)


class BatchUpsertResponse(BaseModel):
    results: list[UpsertResult]


class DeleteResult(BaseModel):
    embedding_id: str
    outcome: Literal["deleted", "absent", "stale"]


class IndexesResponse(BaseModel):
    shard_index: int
    shard_count: int
    applied_seq: int = Field(description="The catalogue change sequence number this shard reflects.")
    indexes: list[IndexInfo]


class SyncResponse(BaseModel):
    applied_seq: int
    changes_applied: int


class SnapshotResponse(BaseModel):
    applied_seq: int = Field(description="The catalogue sequence number the snapshot reflects.")
    indexes: int
    manifest: str = Field(description="Object-store name of the snapshot's manifest.")


class IndexDifference(IndexKey):
    """One index whose content differs from the catalogue's (counts of embeddings; digests differ)."""

    matcher_count: int = Field(description="Embeddings this shard holds for the key.")
    catalog_count: int = Field(description="Embeddings the catalogue indexes for the key.")
    faiss_count: int = Field(description="Vectors in the FAISS index itself (equals matcher_count when sound).")


ReconciliationStatus = Literal["consistent", "repaired", "differs", "inconclusive", "failed", "not_run"]


class Reconciliation(BaseModel):
    """The matcher's indexes compared with the catalogue's embeddings (ids, individuals and count per
    (organisation, species group, model version)) at one change sequence number."""

    status: ReconciliationStatus = Field(
        description="consistent: equal; repaired: differed, rebuilt from the catalogue, equal now; differs: "
        "still differs after the rebuild; inconclusive: the catalogue kept changing, nothing compared; "
        "failed: the catalogue could not be read; not_run: no check yet."
    )
    checked_at: str | None = Field(None, description="When the check ended (ISO 8601, UTC).")
    trigger: Literal["start", "timer", "request", "none"] = "none"
    applied_seq: int | None = Field(None, description="The change sequence number both sides were compared at.")
    indexes_compared: int = 0
    embeddings: int = Field(0, description="Embeddings this shard holds for its keys, after the check.")
    differences: list[IndexDifference] = Field(
        default_factory=list, description="What differed (before the repair, when there was one)."
    )
    reason: str | None = Field(None, description="Why the check was inconclusive or failed.")
    seconds: float = 0.0


class ThresholdOverride(BaseModel):
    """An organisation's own new-individual threshold, replacing the model's."""

    threshold: float = Field(
        ge=-1.0, le=1.0, description="Cosine similarity below which a match is 'new'.", examples=[0.55]
    )
    species_group: str | None = Field(
        None, description="Only for this species group; null: every species group of the organisation."
    )


class OrgThresholds(BaseModel):
    org_id: str
    default: float | None = Field(description="The organisation's override for every species group, if any.")
    by_species_group: dict[str, float] = Field(default_factory=dict)
