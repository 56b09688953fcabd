"""The embedding record: what the catalog keeps per annotated crop and the matcher indexes.

The catalog is the source of truth; the matcher rebuilds from pages of these records and replays
:class:`EmbeddingChange` events after a snapshot's sequence number. Vectors travel as base64 of
little-endian float32 (a 512-d vector is 2.7 KB instead of ~10 KB of JSON numbers, and decodes
without parsing 512 floats), converted with :func:`encode_vector` / :func:`decode_vector`.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Iterable
from typing import Literal

import numpy as np
from pydantic import BaseModel, Field


def encode_vector(vector: np.ndarray) -> str:
    return base64.b64encode(np.ascontiguousarray(vector, dtype="<f4").tobytes()).decode("ascii")


def decode_vector(text: str) -> np.ndarray:
    return np.frombuffer(base64.b64decode(text), dtype="<f4")


class IndexKey(BaseModel):
    """One FAISS index: embeddings are compared only within the same key."""

    org_id: str = Field(examples=["5f1c2d7e-..."])
    species_group: str = Field(examples=["humpback_whale"])
    model_version: str = Field(examples=["finprint_embedder:1"])


class EmbeddingRecord(IndexKey):
    embedding_id: str = Field(description="Stable id of the crop's embedding (the annotation).")
    individual_id: str | None = Field(
        description="Catalogue id of the individual, or null while the crop is unidentified (not indexed)."
    )
    vector: str = Field(description="base64 of little-endian float32, L2-normalised.")
    seq: int = Field(description="Catalogue change sequence number of this record's last change.")


class EmbeddingChange(BaseModel):
    """One entry of the catalogue's change log as the matcher sees it.

    A merge or split re-emits an ``upsert`` for every embedding whose individual changed.
    """

    seq: int
    op: Literal["upsert", "delete"]
    embedding_id: str
    record: EmbeddingRecord | None = Field(None, description="Present for upsert.")


class EmbeddingPage(BaseModel):
    """A page of the catalogue's embeddings, ordered by embedding_id, for a full rebuild."""

    records: list[EmbeddingRecord]
    next_cursor: str | None = Field(description="Pass as ``cursor`` for the next page; null at the end.")
    head_seq: int = Field(description="The catalogue's change sequence number when the rebuild began.")


GenerationState = Literal["serving", "building", "previous"]
MODEL_VERSION_PATTERN = r"^[\w.-]+:[\w.-]+$"


class ShardGeneration(BaseModel):
    """A model version's index of one shard (organisation, species) and what it is for: ``serving``
    answers searches; ``building`` is being filled by a re-embedding; ``previous`` is kept for a rollback."""

    org_id: str
    species_group: str = Field(examples=["humpback_whale"])
    model_version: str = Field(examples=["finprint_embedder:3"])
    state: GenerationState


class ChangePage(BaseModel):
    changes: list[EmbeddingChange]
    head_seq: int
    generations: list[ShardGeneration] = Field(
        [], description="The model generations of every shard that has been through a model upgrade, read "
        "before head_seq: once the changes up to head_seq are applied, serving them is safe (a shard without "
        "rows serves the only version its embeddings have).")


_DIGEST_MODULUS = 2**128


class MembershipDigest:
    """An order-independent digest of an index's (embedding id, individual id) pairs.

    The sum modulo 2**128 of each pair's BLAKE2b-128: the catalog and the matcher each feed their
    own rows in whatever order they hold them, and equal digests with equal counts mean the same
    embeddings filed under the same individuals.
    """

    def __init__(self) -> None:
        self.count = 0
        self._total = 0

    def add(self, embedding_id: str, individual_id: str) -> None:
        pair = f"{embedding_id}\x1f{individual_id}".encode()
        value = int.from_bytes(hashlib.blake2b(pair, digest_size=16).digest(), "big")
        self._total = (self._total + value) % _DIGEST_MODULUS
        self.count += 1

    def hexdigest(self) -> str:
        return f"{self._total:032x}"


def membership_digest(members: Iterable[tuple[str, str]]) -> tuple[int, str]:
    """(count, digest) of the pairs, see :class:`MembershipDigest`."""
    digest = MembershipDigest()
    for embedding_id, individual_id in members:
        digest.add(embedding_id, individual_id)
    return digest.count, digest.hexdigest()


class IndexSummary(IndexKey):
    """What one index should hold: how many embeddings, and the digest of their ids and individuals."""

    count: int = Field(ge=0)
    digest: str = Field(description="MembershipDigest of the (embedding id, individual id) pairs.")


class EmbeddingSummary(BaseModel):
    """The catalogue's indexed embeddings per (organisation, species group, model version), at ``head_seq``."""

    head_seq: int = Field(description="The change sequence number the summary reflects exactly.")
    indexes: list[IndexSummary]
