"""Enrolment: an encounter's photos and their whole result (media, annotations, new individuals,
identifications) written in ONE transaction, so the catalogue holds all of it or none of it.

The gateway calls this after detection, embedding and matching, each photo's bytes as a file part
of a multipart request (``UploadedPhoto``); JSON callers may still send them base64 in the body.
Only the image bytes can reach the object store before the commit; their key is content-derived,
so a failed enrolment leaves at most an object that the retry finds again, never a half-written
catalogue entry.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Sequence
from dataclasses import dataclass, field

from sqlalchemy.orm import Session

from finprint.imaging import ImageLimits
from finprint.objectstore import ObjectStore
from finprint.schemas.catalog import AnnotationCreate, Candidate, EnrolAnnotation, EnrolPhoto, EnrolRequest
from services.catalog.adapters.db.models import Annotation, Encounter, Identification, Individual, Media, utcnow
from services.catalog.audit import service as audit
from services.catalog.encounters.annotations.service import candidates_out, create_annotation
from services.catalog.encounters.media.service import StoredMedia, get_media, store_media, with_exif_defaults
from services.catalog.encounters.sightings.service import create_encounter, get_encounter
from services.catalog.individuals.service import active_individual, assign, create_individual
from services.catalog.shared.problems import Conflict, Invalid


@dataclass
class Enrolment:
    encounter: Encounter
    media: list[Media]
    duplicate_media_ids: list[str]
    annotations: list[Annotation] = field(default_factory=list)
    identifications: list[Identification] = field(default_factory=list)
    new_individuals: list[Individual] = field(default_factory=list)


@dataclass(frozen=True)
class UploadedPhoto:
    """A photo's bytes as a multipart file part brought them, and the name the part came with."""

    data: bytes
    filename: str | None


def _decode_image(content_base64: str) -> bytes:
    try:
        return base64.b64decode(content_base64, validate=True)
    except binascii.Error as exc:
        raise Invalid("image.content_base64 is not valid base64", field="image.content_base64") from exc


def _require_each_file_once(request: EnrolRequest, files: Sequence[UploadedPhoto]) -> None:
    """Every file part is the photo of exactly one entry, or nothing is stored."""
    named: dict[int, int] = {}
    for position, photo in enumerate(request.photos):
        if photo.file is None:
            continue
        index, where = photo.file.index, f"photos.{position}.file.index"
        if index >= len(files):
            raise Invalid(f"{where} is {index}, but the request has {len(files)} `photos` file part(s)", field=where)
        if index in named:
            raise Invalid(f"{where}: file part {index} is already photos.{named[index]}'s", field=where)
        named[index] = position
    if len(named) != len(files):
        unnamed = sorted(set(range(len(files))) - set(named))
        raise Invalid(f"`photos` file part(s) {unnamed} are no photo's: name each in one photo's `file`",
                      field="photos")


def _photo_bytes(photo: EnrolPhoto, files: Sequence[UploadedPhoto]) -> tuple[bytes, str | None]:
    if photo.file is not None:
        part = files[photo.file.index]
        return part.data, photo.file.filename or part.filename
    assert photo.image is not None
    return _decode_image(photo.image.content_base64), photo.image.filename


def _media(
    session: Session, store: ObjectStore, org_id: str, photo: EnrolPhoto, files: Sequence[UploadedPhoto],
    uploaded_by: str | None, limits: ImageLimits,
) -> StoredMedia:
    if photo.media_id is not None:
        return StoredMedia(get_media(session, org_id, photo.media_id), duplicate=False)
    data, filename = _photo_bytes(photo, files)
    return store_media(session, store, org_id, data, filename=filename, uploaded_by=uploaded_by, limits=limits)


def _link(media: Media, encounter: Encounter) -> None:
    if media.encounter_id not in {None, encounter.id}:
        raise Conflict(
            f"media {media.id} already belongs to encounter {media.encounter_id}; it was enrolled before",
            media_id=media.id,
            encounter_id=media.encounter_id,
        )
    media.encounter_id = encounter.id


def _decided_individual(
    session: Session, org_id: str, item: EnrolAnnotation, actor: str | None, created: dict[str, Individual]
) -> tuple[Individual | None, Individual | None]:
    """The individual the annotation's decision names, and the same again when this enrolment created it.

    ``created`` holds the individuals this enrolment already created, by catalogue code, so the same
    new animal in several photos is created once.
    """
    if item.decision == "confirmed":
        if not item.individual_id:
            raise Invalid("a confirmed annotation needs individual_id", field="annotations.individual_id")
        return active_individual(session, org_id, item.individual_id), None
    if item.decision != "new_individual":
        return None, None
    if item.new_individual is None:
        raise Invalid("a new_individual annotation needs new_individual", field="annotations.new_individual")
    code = item.new_individual.catalogue_code
    if code in created:
        return created[code], None
    individual = created[code] = create_individual(session, org_id, item.new_individual, actor)
    return individual, individual


def _identify(
    session: Session, org_id: str, annotation: Annotation, item: EnrolAnnotation, actor: str | None,
    created: dict[str, Individual],
) -> tuple[Identification, Individual | None]:
    """The identification of one annotation, applying its decision; returns a newly created individual."""
    for candidate in item.candidates:
        active_individual(session, org_id, candidate.individual_id)
    individual, new_individual = _decided_individual(session, org_id, item, actor, created)
    if individual is not None:
        assign(session, annotation, individual, f"identification_{item.decision}", actor)
    decided = item.decision != "pending"
    identification = Identification(
        org_id=org_id,
        annotation_id=annotation.id,
        candidates=candidates_out(session, org_id, [Candidate.model_validate(c) for c in item.candidates]),
        new_individual_probability=item.new_individual_probability,
        model_version=item.embedding.model_version if item.embedding else None,
        decision=item.decision,
        individual_id=individual.id if individual else None,
        decided_by=(item.decided_by or actor) if decided else None,
        decided_at=utcnow() if decided else None,
    )
    session.add(identification)
    session.flush()
    if item.auto_accept is not None:
        audit.append(session, org_id, "identification", identification.id, "auto_accepted", identification.decided_by,
                     individual_id=identification.individual_id, **item.auto_accept.model_dump())
    return identification, new_individual


def _annotation_of(media: Media, item: EnrolAnnotation) -> AnnotationCreate:
    return AnnotationCreate(
        media_id=media.id, box=item.box, view=item.view, quality=item.quality, species=item.species,
        species_score=item.species_score, embedding=item.embedding, other_embeddings=item.other_embeddings,
    )


def enrol(
    session: Session, store: ObjectStore, org_id: str, request: EnrolRequest, files: Sequence[UploadedPhoto] = (),
    *, limits: ImageLimits,
) -> Enrolment:
    """``files``: the photos of a multipart request, that its entries name by ``file.index``."""
    _require_each_file_once(request, files)
    actor = request.uploaded_by
    stored = [_media(session, store, org_id, photo, files, actor, limits) for photo in request.photos]
    if request.encounter_id is not None:
        encounter = get_encounter(session, org_id, request.encounter_id)
    else:
        encounter = create_encounter(session, org_id, with_exif_defaults(request.encounter, stored[0].media))
    enrolment = Enrolment(encounter, [s.media for s in stored], [s.media.id for s in stored if s.duplicate])
    created: dict[str, Individual] = {}
    for photo, media in zip(request.photos, enrolment.media):
        _link(media, encounter)
        for item in photo.annotations:
            annotation = create_annotation(session, org_id, _annotation_of(media, item), actor)
            identification, new_individual = _identify(session, org_id, annotation, item, actor, created)
            enrolment.annotations.append(annotation)
            enrolment.identifications.append(identification)
            if new_individual is not None:
                enrolment.new_individuals.append(new_individual)
    audit.append(session, org_id, "encounter", encounter.id, "enrolled", actor,
                 media_ids=[m.id for m in enrolment.media], annotation_ids=[a.id for a in enrolment.annotations])
    session.flush()
    return enrolment
