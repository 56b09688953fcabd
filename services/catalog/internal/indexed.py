"""Which embeddings the matcher indexes, and the record it holds for each."""

from __future__ import annotations

import numpy as np
from sqlalchemy import Select, select
from sqlalchemy.orm import Session, undefer

from finprint.schemas.embeddings import EmbeddingRecord, encode_vector
from services.catalog.adapters.db.models import Annotation, Embedding, Individual, Species

IndexedRow = tuple[Embedding, Annotation, Individual]


def indexed_query() -> Select[IndexedRow]:
    """The indexed embeddings with their annotation and individual: an active individual, a cetacean."""
    return (
        select(Embedding, Annotation, Individual)
        .join(Annotation, Annotation.id == Embedding.annotation_id)
        .join(Individual, Individual.id == Annotation.individual_id)
        .join(Species, Species.key == Individual.species_key)
        .where(Individual.status == "active", Species.is_cetacean.is_(True))
        .options(undefer(Embedding.vector))
    )


def is_indexed(session: Session, embedding: Embedding) -> bool:
    query = indexed_query().where(Embedding.id == embedding.id).with_only_columns(Embedding.id)
    return session.scalar(query) is not None


def embedding_record(embedding: Embedding, annotation: Annotation, individual: Individual,
                     seq: int) -> EmbeddingRecord:
    return EmbeddingRecord(
        org_id=annotation.org_id,
        species_group=individual.species_key,
        model_version=embedding.model_version,
        embedding_id=embedding.id,
        individual_id=individual.id,
        vector=encode_vector(np.frombuffer(embedding.vector, dtype="<f4")),
        seq=seq,
    )
