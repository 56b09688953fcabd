"""Darwin Core Archives: sightings in the form GBIF and OBIS publish (occurrence.txt + meta.xml + eml.xml).

One occurrence per identified individual per encounter (HumanObservation: a person confirmed
it), and one per species for the encounter's annotations nobody identified yet
(MachineObservation: the species comes from the model). Encounters without a date are left
out: an occurrence needs one. :func:`validate_archive` checks an archive against the Darwin Core
terms kept in :data:`DWC_TERMS`; every archive is checked before it is handed out.
"""

from __future__ import annotations

import csv
import io
import re
import zipfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from xml.etree import ElementTree as ET
from xml.sax.saxutils import escape

DWC_NS = "http://rs.tdwg.org/dwc/terms/"
DCTERMS_NS = "http://purl.org/dc/terms/"
TEXT_NS = "http://rs.tdwg.org/dwc/text/"
OCCURRENCE_ROW_TYPE = DWC_NS + "Occurrence"
BASES_OF_RECORD = ("HumanObservation", "MachineObservation")

# The Darwin Core terms (https://dwc.tdwg.org/terms/), record-level to taxon, and the Dublin Core
# terms Darwin Core adopts for record-level information.
DWC_TERM_NAMES = [
    "institutionID",
    "collectionID",
    "datasetID",
    "institutionCode",
    "collectionCode",
    "datasetName",
    "ownerInstitutionCode",
    "basisOfRecord",
    "informationWithheld",
    "dataGeneralizations",
    "dynamicProperties",
    "occurrenceID",
    "catalogNumber",
    "recordNumber",
    "recordedBy",
    "recordedByID",
    "individualCount",
    "organismQuantity",
    "organismQuantityType",
    "sex",
    "lifeStage",
    "reproductiveCondition",
    "caste",
    "behavior",
    "vitality",
    "establishmentMeans",
    "degreeOfEstablishment",
    "pathway",
    "georeferenceVerificationStatus",
    "occurrenceStatus",
    "preparations",
    "disposition",
    "associatedMedia",
    "associatedOccurrences",
    "associatedReferences",
    "associatedSequences",
    "associatedTaxa",
    "otherCatalogNumbers",
    "occurrenceRemarks",
    "organismID",
    "organismName",
    "organismScope",
    "associatedOrganisms",
    "previousIdentifications",
    "organismRemarks",
    "materialEntityID",
    "materialSampleID",
    "eventID",
    "parentEventID",
    "eventType",
    "fieldNumber",
    "eventDate",
    "eventTime",
    "startDayOfYear",
    "endDayOfYear",
    "year",
    "month",
    "day",
    "verbatimEventDate",
    "habitat",
    "samplingProtocol",
    "sampleSizeValue",
    "sampleSizeUnit",
    "samplingEffort",
    "fieldNotes",
    "eventRemarks",
    "locationID",
    "higherGeographyID",
    "higherGeography",
    "continent",
    "waterBody",
    "islandGroup",
    "island",
    "country",
    "countryCode",
    "stateProvince",
    "county",
    "municipality",
    "locality",
    "verbatimLocality",
    "minimumElevationInMeters",
    "maximumElevationInMeters",
    "verbatimElevation",
    "verticalDatum",
    "minimumDepthInMeters",
    "maximumDepthInMeters",
    "verbatimDepth",
    "minimumDistanceAboveSurfaceInMeters",
    "maximumDistanceAboveSurfaceInMeters",
    "locationAccordingTo",
    "locationRemarks",
    "decimalLatitude",
    "decimalLongitude",
    "geodeticDatum",
    "coordinateUncertaintyInMeters",
    "coordinatePrecision",
    "pointRadiusSpatialFit",
    "verbatimCoordinates",
    "verbatimLatitude",
    "verbatimLongitude",
    "verbatimCoordinateSystem",
    "verbatimSRS",
    "footprintWKT",
    "footprintSRS",
    "footprintSpatialFit",
    "georeferencedBy",
    "georeferencedDate",
    "georeferenceProtocol",
    "georeferenceSources",
    "georeferenceRemarks",
    "identificationID",
    "verbatimIdentification",
    "identificationQualifier",
    "typeStatus",
    "identifiedBy",
    "identifiedByID",
    "dateIdentified",
    "identificationReferences",
    "identificationVerificationStatus",
    "identificationRemarks",
    "taxonID",
    "scientificNameID",
    "acceptedNameUsageID",
    "parentNameUsageID",
    "originalNameUsageID",
    "nameAccordingToID",
    "namePublishedInID",
    "taxonConceptID",
    "scientificName",
    "acceptedNameUsage",
    "parentNameUsage",
    "originalNameUsage",
    "nameAccordingTo",
    "namePublishedIn",
    "namePublishedInYear",
    "higherClassification",
    "kingdom",
    "phylum",
    "class",
    "order",
    "superfamily",
    "family",
    "subfamily",
    "tribe",
    "subtribe",
    "genus",
    "genericName",
    "subgenus",
    "infragenericEpithet",
    "specificEpithet",
    "infraspecificEpithet",
    "cultivarEpithet",
    "taxonRank",
    "verbatimTaxonRank",
    "scientificNameAuthorship",
    "vernacularName",
    "nomenclaturalCode",
    "taxonomicStatus",
    "nomenclaturalStatus",
    "taxonRemarks",
]
DCTERMS_TERM_NAMES = [
    "type",
    "modified",
    "language",
    "license",
    "rightsHolder",
    "accessRights",
    "bibliographicCitation",
    "references",
]
DWC_TERMS: frozenset[str] = frozenset(
    [DWC_NS + name for name in DWC_TERM_NAMES] + [DCTERMS_NS + name for name in DCTERMS_TERM_NAMES]
)

# The columns of occurrence.txt, in order; the first is the core id.
OCCURRENCE_COLUMNS: tuple[str, ...] = (
    "occurrenceID",
    "basisOfRecord",
    "occurrenceStatus",
    "eventID",
    "eventDate",
    "decimalLatitude",
    "decimalLongitude",
    "geodeticDatum",
    "locality",
    "recordedBy",
    "behavior",
    "individualCount",
    "organismID",
    "organismName",
    "sex",
    "scientificName",
    "vernacularName",
    "kingdom",
    "class",
    "identifiedBy",
    "dateIdentified",
    "occurrenceRemarks",
)
_ISO_DATETIME = re.compile(r"^\d{4}-\d{2}-\d{2}(T\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:?\d{2})?)?$")


@dataclass(frozen=True)
class Occurrence:
    occurrence_id: str
    basis_of_record: str
    event_id: str
    event_date: datetime
    latitude: float | None
    longitude: float | None
    locality: str | None
    recorded_by: str | None
    behaviour: str | None
    individual_count: int | None
    organism_id: str | None
    organism_name: str | None
    sex: str | None
    scientific_name: str
    vernacular_name: str
    identified_by: str | None
    date_identified: datetime | None
    remarks: str | None

    def row(self) -> list[str]:
        values: list[object | None] = [
            self.occurrence_id,
            self.basis_of_record,
            "present",
            self.event_id,
            self.event_date.isoformat(),
            self.latitude,
            self.longitude,
            "EPSG:4326" if self.latitude is not None else None,
            self.locality,
            self.recorded_by,
            self.behaviour,
            self.individual_count,
            self.organism_id,
            self.organism_name,
            self.sex if self.sex in {"female", "male"} else None,
            self.scientific_name,
            self.vernacular_name,
            "Animalia",
            "Mammalia",
            self.identified_by,
            self.date_identified.date().isoformat() if self.date_identified else None,
            self.remarks,
        ]
        return ["" if v is None else _one_line(str(v)) for v in values]


def _one_line(text: str) -> str:
    # occurrence.txt has no quoting (fieldsEnclosedBy=""), so tabs and newlines cannot appear in values.
    return re.sub(r"[\t\r\n]+", " ", text).strip()


def occurrence_txt(occurrences: Iterable[Occurrence]) -> str:
    lines = ["\t".join(OCCURRENCE_COLUMNS)]
    lines += ["\t".join(o.row()) for o in occurrences]
    return "\n".join(lines) + "\n"


def _term_uri(column: str) -> str:
    return DWC_NS + column


def meta_xml(columns: Sequence[str] = OCCURRENCE_COLUMNS) -> str:
    fields = "\n".join(f'    <field index="{i}" term="{_term_uri(c)}"/>' for i, c in enumerate(columns))
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<archive xmlns="{TEXT_NS}" metadata="eml.xml">
  <core encoding="UTF-8" fieldsTerminatedBy="\\t" linesTerminatedBy="\\n" fieldsEnclosedBy=""
        ignoreHeaderLines="1" rowType="{OCCURRENCE_ROW_TYPE}">
    <files><location>occurrence.txt</location></files>
    <id index="0"/>
{fields}
  </core>
</archive>
"""


def eml_xml(*, package_id: str, title: str, organisation: str, license_url: str, published: date) -> str:
    e = escape
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<eml:eml xmlns:eml="eml://ecoinformatics.org/eml-2.1.1" xmlns:dc="http://purl.org/dc/terms/"
         xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"
         xsi:schemaLocation="eml://ecoinformatics.org/eml-2.1.1 http://rs.gbif.org/schema/eml-gbif-profile/1.1/eml.xsd"
         packageId="{e(package_id)}" system="finprint" scope="system" xml:lang="eng">
  <dataset>
    <title xml:lang="eng">{e(title)}</title>
    <creator><organizationName>{e(organisation)}</organizationName></creator>
    <metadataProvider><organizationName>{e(organisation)}</organizationName></metadataProvider>
    <pubDate>{published.isoformat()}</pubDate>
    <language>eng</language>
    <abstract><para>Photo-identified cetacean sightings from the {e(organisation)} Finprint catalogue: one
    occurrence per identified individual per encounter, and per species for animals not yet identified.</para>
    </abstract>
    <intellectualRights><para>This work is licensed under
      <ulink url="{e(license_url)}"><citetitle>{e(license_url)}</citetitle></ulink>.</para>
    </intellectualRights>
    <contact><organizationName>{e(organisation)}</organizationName></contact>
  </dataset>
</eml:eml>
"""


def build_archive(
    occurrences: Sequence[Occurrence],
    *,
    package_id: str,
    title: str,
    organisation: str,
    license_url: str,
    published: date,
) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("meta.xml", meta_xml())
        archive.writestr(
            "eml.xml",
            eml_xml(
                package_id=package_id,
                title=title,
                organisation=organisation,
                license_url=license_url,
                published=published,
            ),
        )
        archive.writestr("occurrence.txt", occurrence_txt(occurrences))
    data = buffer.getvalue()
    problems = validate_archive(data)
    if problems:
        raise ValueError("the Darwin Core Archive is invalid: " + "; ".join(problems[:10]))
    return data


def validate_archive(data: bytes) -> list[str]:
    """What is wrong with a Darwin Core Archive (occurrence core); empty when nothing is."""
    problems: list[str] = []
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        names = set(archive.namelist())
        for required in ("meta.xml", "eml.xml"):
            if required not in names:
                problems.append(f"{required} is missing")
        if problems:
            return problems
        core = ET.fromstring(archive.read("meta.xml")).find(f"{{{TEXT_NS}}}core")
        if core is None:
            return ["meta.xml has no core"]
        ET.fromstring(archive.read("eml.xml"))  # raises on malformed XML
        if core.get("rowType") != OCCURRENCE_ROW_TYPE:
            problems.append(f"core rowType is {core.get('rowType')}, not {OCCURRENCE_ROW_TYPE}")
        location = core.findtext(f"{{{TEXT_NS}}}files/{{{TEXT_NS}}}location")
        if location not in names:
            return [*problems, f"core file {location} is missing"]
        fields = {int(f.get("index", -1)): f.get("term", "") for f in core.findall(f"{{{TEXT_NS}}}field")}
        problems += [f"{term} is not a Darwin Core term" for term in fields.values() if term not in DWC_TERMS]
        rows = list(
            csv.reader(
                io.StringIO(archive.read(location).decode("utf-8")), delimiter="\t", quoting=csv.QUOTE_NONE
            )
        )
    header, body = rows[0], rows[1:]
    expected = [fields.get(i, "").removeprefix(DWC_NS) for i in range(len(header))]
    if header != expected or len(fields) != len(header):
        problems.append(f"occurrence.txt columns {header} do not match meta.xml fields {expected}")
    column = {name: i for i, name in enumerate(header)}
    seen_ids: set[str] = set()
    for number, row in enumerate(body, start=2):
        problems += _row_problems(number, row, column, len(header), seen_ids)
    return problems


def _row_problems(
    number: int, row: list[str], column: dict[str, int], width: int, seen_ids: set[str]
) -> list[str]:
    if len(row) != width:
        return [f"line {number} has {len(row)} fields, not {width}"]
    problems = []

    def value(name: str) -> str:
        return row[column[name]] if name in column else ""

    occurrence_id = value("occurrenceID")
    if not occurrence_id or occurrence_id in seen_ids:
        problems.append(f"line {number}: occurrenceID {occurrence_id!r} is empty or repeated")
    seen_ids.add(occurrence_id)
    if value("basisOfRecord") not in BASES_OF_RECORD:
        problems.append(
            f"line {number}: basisOfRecord {value('basisOfRecord')!r} is not one of {BASES_OF_RECORD}"
        )
    if not _ISO_DATETIME.match(value("eventDate")):
        problems.append(f"line {number}: eventDate {value('eventDate')!r} is not ISO 8601")
    for name, bound in (("decimalLatitude", 90.0), ("decimalLongitude", 180.0)):
        text = value(name)
        if text:
            try:
                if not -bound <= float(text) <= bound:
                    problems.append(f"line {number}: {name} {text} is outside ±{bound:g}")
            except ValueError:
                problems.append(f"line {number}: {name} {text!r} is not a number")
    if not value("scientificName"):
        problems.append(f"line {number}: scientificName is empty")
    return problems
