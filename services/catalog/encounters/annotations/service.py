"""Annotations: create, browse, edit or reassign, delete, and their wire form."""

from __future__ import annotations

import base64
from collections.abc import Sequence

import numpy as np
from sqlalchemy import Select, select
from sqlalchemy.orm import Session

from finprint.schemas.catalog import AnnotationCreate, AnnotationOut, AnnotationUpdate, Box, Candidate, EmbeddingIn
from services.catalog.adapters.db.models import Annotation, Embedding, Media, new_id
from services.catalog.audit import service as audit
from services.catalog.encounters.media.service import get_media
from services.catalog.individuals.service import active_individual, assign, require_species
from services.catalog.internal.change_log import record_change
from services.catalog.shared.database import inserted
from services.catalog.shared.problems import Invalid
from services.catalog.shared.scoping import get_owned, select_owned

MAX_EMBEDDING_DIM = 4096
BOX_SLACK_PX = 1.0


def embedding_bytes(embedding: EmbeddingIn) -> bytes:
    """The vector as stored: little-endian float32, checked to be finite and non-empty."""
    try:
        raw = base64.b64decode(embedding.vector, validate=True)
    except ValueError as exc:  # binascii.Error, or a str that is not ASCII
        raise Invalid("embedding.vector is not valid base64", field="embedding.vector") from exc
    if not raw or len(raw) % 4 or len(raw) // 4 > MAX_EMBEDDING_DIM:
        raise Invalid(
            f"embedding.vector must hold 1 to {MAX_EMBEDDING_DIM} float32 values", field="embedding.vector"
        )
    if not np.isfinite(np.frombuffer(raw, dtype="<f4")).all():
        raise Invalid("embedding.vector holds NaN or infinite values", field="embedding.vector")
    return raw


def _check_box(box: Box, media: Media) -> None:
    # A pixel of slack: detectors round boxes outwards and keep them at least one pixel wide.
    if box.x + box.width > media.width + BOX_SLACK_PX or box.y + box.height > media.height + BOX_SLACK_PX:
        raise Invalid(f"the box reaches outside the {media.width}x{media.height} image", field="box")


def create_annotation(
    session: Session, org_id: str, request: AnnotationCreate, actor: str | None
) -> Annotation:
    media = get_media(session, org_id, request.media_id)
    _check_box(request.box, media)
    if request.species:
        require_species(session, request.species)
    annotation_id = new_id()
    annotation = Annotation(
        id=annotation_id, org_id=org_id, media_id=media.id, view=request.view, quality=request.quality,
        box_x=request.box.x, box_y=request.box.y, box_width=request.box.width, box_height=request.box.height,
        species_key=request.species, species_score=request.species_score,
        embeddings=_embeddings(org_id, annotation_id, request),
    )
    inserted(session, annotation)
    if request.individual_id:
        individual = active_individual(session, org_id, request.individual_id)
        assign(session, annotation, individual, "annotated", actor)
    return annotation


def _embeddings(org_id: str, annotation_id: str, request: AnnotationCreate) -> list[Embedding]:
    """The first embedding takes the annotation's id (as the embeddings made before model versions did),
    so one annotation of one model version is one id in the matcher, whichever version it came from."""
    given = ([request.embedding] if request.embedding else []) + request.other_embeddings
    if given and not request.embedding:
        raise Invalid("other_embeddings need an embedding", field="other_embeddings")
    versions = [e.model_version for e in given]
    if len(set(versions)) != len(versions):
        raise Invalid(f"one embedding per model version (given {versions})", field="other_embeddings")
    return [Embedding(id=annotation_id if i == 0 else new_id(), org_id=org_id, model_version=e.model_version,
                      vector=embedding_bytes(e)) for i, e in enumerate(given)]


def annotations_of_embeddings(session: Session, org_id: str, ids: set[str]) -> dict[str, str]:
    """The annotation each id names: an annotation's own id, or the id of one of its embeddings (what the
    matcher reports; an annotation's first embedding has its id, those of later model versions do not).
    Ids of nothing in the organisation are left out."""
    if not ids:
        return {}
    rows = session.execute(select(Embedding.id, Embedding.annotation_id).where(
        Embedding.org_id == org_id, Embedding.id.in_(ids)))
    return {embedding_id: annotation_id for embedding_id, annotation_id in rows}


def candidates_out(session: Session, org_id: str, candidates: Sequence[Candidate]) -> list[dict]:
    """Candidates as an identification keeps them, each naming the annotation of the photo that gave its
    score (the matcher names the embedding, which after a model upgrade is not the annotation's id)."""
    photos = annotations_of_embeddings(session, org_id, {c.best_annotation_id for c in candidates
                                                         if c.best_annotation_id})
    return [{**c.model_dump(), "best_annotation_id": photos.get(c.best_annotation_id or "")} for c in candidates]


def get_annotation(session: Session, org_id: str, annotation_id: str) -> Annotation:
    return get_owned(session, Annotation, org_id, annotation_id, "Annotation")


def select_annotations(
    org_id: str, *, media_id: str | None, individual_id: str | None
) -> Select[tuple[Annotation]]:
    """The organisation's annotations, oldest first, of one image or one individual when given."""
    query = select_owned(Annotation, org_id, media_id=media_id, individual_id=individual_id)
    return query.order_by(Annotation.created_at, Annotation.id)


def update_annotation(
    session: Session, org_id: str, annotation_id: str, request: AnnotationUpdate
) -> Annotation:
    annotation = get_annotation(session, org_id, annotation_id)
    changes = request.model_dump(exclude_unset=True, exclude={"individual_id", "clear_individual", "actor"})
    if "species" in changes and changes["species"] is not None:
        require_species(session, changes["species"])
    for field, value in changes.items():
        setattr(annotation, "species_key" if field == "species" else field, value)
    if request.clear_individual:
        assign(session, annotation, None, "reassigned", request.actor)
    elif request.individual_id:
        individual = active_individual(session, org_id, request.individual_id)
        assign(session, annotation, individual, "reassigned", request.actor)
    session.flush()
    return annotation


def delete_annotation(session: Session, org_id: str, annotation_id: str, actor: str | None) -> None:
    annotation = get_annotation(session, org_id, annotation_id)
    individual_id = annotation.individual_id
    if individual_id is not None:
        assign(session, annotation, None, "annotation_deleted", actor)  # writes its change event
    else:
        record_change(session, annotation, "deleted", deleted=True)
    audit.append(session, org_id, "annotation", annotation.id, "deleted", actor,
                 media_id=annotation.media_id, individual_id=individual_id)
    session.delete(annotation)
    session.flush()


def annotation_out(annotation: Annotation) -> AnnotationOut:
    box = Box(
        x=annotation.box_x, y=annotation.box_y, width=annotation.box_width, height=annotation.box_height
    )
    return AnnotationOut(
        id=annotation.id, org_id=annotation.org_id, media_id=annotation.media_id,
        individual_id=annotation.individual_id, box=box, view=annotation.view, quality=annotation.quality,
        species=annotation.species_key, species_score=annotation.species_score,
        embedding_model=annotation.embeddings[0].model_version if annotation.embeddings else None,
        embedding_models=[e.model_version for e in annotation.embeddings],
        has_embedding=bool(annotation.embeddings),
        created_at=annotation.created_at,
    )
