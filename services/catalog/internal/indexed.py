"""Which annotations the matcher indexes, and the record it holds for each."""

from __future__ import annotations

import numpy as np
from sqlalchemy import Select, select
from sqlalchemy.orm import Session

from finprint.schemas.embeddings import EmbeddingRecord, encode_vector
from services.catalog.adapters.db.models import Annotation, Individual, Species


def indexed_query() -> Select[tuple[Annotation, Individual]]:
    """The indexed annotations with their individual: an embedding, an active individual, a cetacean."""
    return (
        select(Annotation, Individual)
        .join(Individual, Individual.id == Annotation.individual_id)
        .join(Species, Species.key == Individual.species_key)
        .where(
            Annotation.embedding.is_not(None),
            Annotation.embedding_model.is_not(None),
            Individual.status == "active",
            Species.is_cetacean.is_(True),
        )
    )


def is_indexed(session: Session, annotation: Annotation) -> bool:
    query = indexed_query().where(Annotation.id == annotation.id).with_only_columns(Annotation.id)
    return session.scalar(query) is not None


def embedding_record(annotation: Annotation, individual: Individual, seq: int) -> EmbeddingRecord:
    assert annotation.embedding is not None and annotation.embedding_model is not None
    return EmbeddingRecord(
        org_id=annotation.org_id,
        species_group=individual.species_key,
        model_version=annotation.embedding_model,
        embedding_id=annotation.id,
        individual_id=individual.id,
        vector=encode_vector(np.frombuffer(annotation.embedding, dtype="<f4")),
        seq=seq,
    )
