"""Exports of an organisation's catalogue: encounters CSV, organised dataset ZIP, Darwin Core Archive."""

from __future__ import annotations

import csv
import io
import re
import tempfile
import zipfile
from collections import defaultdict
from collections.abc import Iterator
from datetime import date
from typing import IO

from sqlalchemy import select
from sqlalchemy.orm import Session

from finprint.objectstore import ObjectStore
from services.catalog.adapters.db.models import (
    Annotation,
    Encounter,
    Identification,
    Individual,
    Media,
    Organisation,
    Species,
)
from services.catalog.encounters.sightings.service import local_time
from services.catalog.exports.darwin_core import Occurrence, build_archive

ENCOUNTER_COLUMNS = (
    "encounter_id",
    "occurred_at",
    "latitude",
    "longitude",
    "location_name",
    "observer",
    "behaviour",
    "group_size",
    "notes",
    "media_count",
    "individual_codes",
    "species",
)
DATASET_LABEL_COLUMNS = (
    "image",
    "species",
    "individual_id",
    "catalogue_code",
    "media_id",
    "annotation_id",
    "encounter_id",
    "occurred_at",
    "view",
    "box_x",
    "box_y",
    "box_width",
    "box_height",
)
_EXTENSIONS = {"image/jpeg": ".jpg", "image/png": ".png", "image/webp": ".webp", "image/tiff": ".tif"}
_SPOOL_BYTES = 64 * 1024 * 1024


def _annotation_rows(session: Session, org_id: str) -> list[tuple[Annotation, Media, Encounter | None]]:
    return [
        (a, m, e)
        for a, m, e in session.execute(
            select(Annotation, Media, Encounter)
            .join(Media, Media.id == Annotation.media_id)
            .outerjoin(Encounter, Encounter.id == Media.encounter_id)
            .where(Annotation.org_id == org_id)
            .order_by(Annotation.created_at, Annotation.id)
        )
    ]


def _individuals(session: Session, org_id: str) -> dict[str, Individual]:
    """Read AFTER the annotation rows: each statement may see writes committed since the one
    before (PostgreSQL's read committed), and individuals are never deleted, so every individual
    an annotation row names is here, even one an enrolment created between the two reads."""
    return {i.id: i for i in session.scalars(select(Individual).where(Individual.org_id == org_id))}


def encounters_csv(session: Session, org_id: str) -> str:
    rows = _annotation_rows(session, org_id)
    individuals = _individuals(session, org_id)
    codes: dict[str, set[str]] = defaultdict(set)
    species: dict[str, set[str]] = defaultdict(set)
    for annotation, _media, encounter in rows:
        if encounter is None:
            continue
        if annotation.individual_id:
            individual = individuals[annotation.individual_id]
            codes[encounter.id].add(individual.catalogue_code)
            species[encounter.id].add(individual.species_key)
        elif annotation.species_key:
            species[encounter.id].add(annotation.species_key)
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(ENCOUNTER_COLUMNS)
    encounters = session.scalars(
        select(Encounter).where(Encounter.org_id == org_id).order_by(Encounter.occurred_at, Encounter.id)
    )
    for encounter in encounters:
        occurred = local_time(encounter)
        writer.writerow(
            [
                encounter.id,
                occurred.isoformat() if occurred else "",
                _blank(encounter.latitude),
                _blank(encounter.longitude),
                _blank(encounter.location_name),
                _blank(encounter.observer),
                _blank(encounter.behaviour),
                _blank(encounter.group_size),
                _blank(encounter.notes),
                len(encounter.media),
                ";".join(sorted(codes[encounter.id])),
                ";".join(sorted(species[encounter.id])),
            ]
        )
    return out.getvalue()


def _blank(value: object) -> object:
    return "" if value is None else value


def safe_folder_name(code: str) -> str:
    """A catalogue code as a folder name that stays inside the archive on every OS."""
    cleaned = re.sub(r"[^\w.-]+", "_", code).strip("._")
    return cleaned or "individual"


def dataset_zip(session: Session, store: ObjectStore, org_id: str) -> IO[bytes]:
    """The organised dataset: ``images/<catalogue code>/<image>`` per identified annotation, ``labels.csv``.

    The layout the training pipeline reads (``labels.csv`` names images relative to ``images/``), so an
    export can be trained on as it is.

    Written to a spooled temporary file (memory up to 64 MB, then disk) so large catalogues do
    not have to fit in memory; the caller streams and closes it.
    """
    rows = _annotation_rows(session, org_id)
    individuals = _individuals(session, org_id)
    spool = tempfile.SpooledTemporaryFile(max_size=_SPOOL_BYTES)  # noqa: SIM115 - the caller closes it
    labels = io.StringIO()
    writer = csv.writer(labels, lineterminator="\n")
    writer.writerow(DATASET_LABEL_COLUMNS)
    with zipfile.ZipFile(spool, "w", zipfile.ZIP_STORED) as archive:  # JPEGs do not compress
        written: set[str] = set()
        for annotation, media, encounter in rows:
            if annotation.individual_id is None:
                continue
            individual = individuals[annotation.individual_id]
            folder = f"{safe_folder_name(individual.catalogue_code)}_{individual.id[:8]}"
            image = f"{folder}/{media.sha256[:16]}{_EXTENSIONS.get(media.content_type, '')}"
            if image not in written:
                archive.writestr(f"images/{image}", store.get(media.object_key))
                written.add(image)
            occurred = local_time(encounter) if encounter else None
            writer.writerow(
                [
                    image,
                    individual.species_key,
                    individual.id,
                    individual.catalogue_code,
                    media.id,
                    annotation.id,
                    encounter.id if encounter else "",
                    occurred.isoformat() if occurred else "",
                    _blank(annotation.view),
                    annotation.box_x,
                    annotation.box_y,
                    annotation.box_width,
                    annotation.box_height,
                ]
            )
        archive.writestr("labels.csv", labels.getvalue())
    spool.seek(0)
    return spool


def iter_file(handle: IO[bytes], chunk_size: int = 1024 * 1024) -> Iterator[bytes]:
    try:
        while chunk := handle.read(chunk_size):
            yield chunk
    finally:
        handle.close()


def occurrences(session: Session, org_id: str, org_slug: str) -> list[Occurrence]:
    """One occurrence per (encounter, individual), and per (encounter, species) for unidentified animals."""
    rows = _annotation_rows(session, org_id)
    individuals = _individuals(session, org_id)
    species = {s.key: s for s in session.scalars(select(Species))}
    decisions = {
        i.annotation_id: i
        for i in session.scalars(
            select(Identification).where(
                Identification.org_id == org_id, Identification.decision.in_(("confirmed", "new_individual"))
            )
        )
    }
    grouped: dict[tuple[str, str], list[Annotation]] = defaultdict(list)
    encounters: dict[str, Encounter] = {}
    for annotation, _media, encounter in rows:
        if encounter is None or encounter.occurred_at is None:
            continue
        subject = annotation.individual_id or f"species:{annotation.species_key}"
        species_key = (
            individuals[annotation.individual_id].species_key
            if annotation.individual_id
            else annotation.species_key
        )
        if species_key is None or not species[species_key].is_cetacean:
            continue
        encounters[encounter.id] = encounter
        grouped[(encounter.id, subject)].append(annotation)
    result = []
    for (encounter_id, subject), group in grouped.items():
        encounter = encounters[encounter_id]
        individual = individuals.get(subject)
        taxon = species[individual.species_key if individual else subject.removeprefix("species:")]
        subject_key = individual.id if individual else taxon.key
        decision = next((decisions[a.id] for a in group if a.id in decisions), None)
        result.append(
            Occurrence(
                occurrence_id=f"urn:finprint:{org_slug}:{encounter_id}:{subject_key}",
                basis_of_record="HumanObservation" if individual else "MachineObservation",
                event_id=encounter_id,
                event_date=local_time(encounter) or encounter.occurred_at,
                latitude=encounter.latitude,
                longitude=encounter.longitude,
                locality=encounter.location_name,
                recorded_by=encounter.observer,
                behaviour=encounter.behaviour,
                individual_count=1 if individual else None,
                organism_id=individual.catalogue_code if individual else None,
                organism_name=individual.name if individual else None,
                sex=individual.sex if individual else None,
                scientific_name=taxon.scientific_name or taxon.common_name,
                vernacular_name=taxon.common_name,
                identified_by=decision.decided_by if decision else None,
                date_identified=decision.decided_at if decision else None,
                remarks=None
                if individual
                else "species predicted by the Finprint model; individual not identified",
            )
        )
    return sorted(result, key=lambda o: (o.event_date, o.occurrence_id))


def darwin_core_archive(session: Session, org_id: str, *, license_url: str, published: date) -> bytes:
    organisation = session.get(Organisation, org_id)
    assert organisation is not None
    return build_archive(
        occurrences(session, org_id, organisation.slug),
        package_id=f"urn:finprint:{organisation.slug}:dwca:{published.isoformat()}",
        title=f"{organisation.name}: photo-identified cetacean sightings",
        organisation=organisation.name,
        license_url=license_url,
        published=published,
    )
