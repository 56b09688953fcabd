"""Exports parsed back and checked: encounters CSV, the organised dataset ZIP, the Darwin Core Archive."""

from __future__ import annotations

import csv
import hashlib
import io
import re
import zipfile
from datetime import datetime
from xml.etree import ElementTree as ET

import pytest
from fastapi.testclient import TestClient

from services.catalog.exports.darwin_core import DWC_TERMS, validate_archive

from .helpers import Catalogue

pytestmark = pytest.mark.servers

TEXT_NS = "{http://rs.tdwg.org/dwc/text/}"
ISO_8601 = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$")


@pytest.fixture
def sightings(cat: Catalogue) -> dict:
    salt = cat.individual("HW-0042", name="Salt", sex="female")
    hook = cat.individual("HW-0099")
    first = cat.sighting(salt["id"], when="2023-07-14T09:32:00-07:00", latitude=48.51, longitude=-123.15)
    second = cat.sighting(hook["id"], when="2024-01-02T10:00:00+10:00", latitude=-28.2, longitude=153.6)
    unidentified = cat.sighting(None, when="2024-03-05T06:00:00Z", latitude=20.9, longitude=-156.7)
    undated = cat.post("/encounters", {"location_name": "no date"})
    return {
        "salt": salt,
        "hook": hook,
        "first": first,
        "second": second,
        "unidentified": unidentified,
        "undated": undated,
    }


def test_encounters_csv(cat: Catalogue, sightings: dict) -> None:
    response = cat.client.get(cat.url("/exports/encounters.csv"))
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/csv")
    rows = {r["encounter_id"]: r for r in csv.DictReader(io.StringIO(response.text))}
    assert len(rows) == 4
    first = rows[sightings["first"]["encounter"]["id"]]
    assert first["occurred_at"] == "2023-07-14T09:32:00-07:00"
    assert (float(first["latitude"]), float(first["longitude"])) == (48.51, -123.15)
    assert (first["individual_codes"], first["species"], first["media_count"]) == (
        "HW-0042",
        "humpback_whale",
        "1",
    )
    assert rows[sightings["unidentified"]["encounter"]["id"]]["individual_codes"] == ""
    assert rows[sightings["undated"]["id"]]["occurred_at"] == ""


def test_dataset_zip_has_a_folder_per_individual(client: TestClient, cat: Catalogue, sightings: dict) -> None:
    cat.sighting(sightings["salt"]["id"], when="2024-08-01T08:00:00-07:00")
    response = cat.client.get(cat.url("/exports/dataset.zip"))
    assert response.status_code == 200 and response.headers["content-type"] == "application/zip"
    archive = zipfile.ZipFile(io.BytesIO(response.content))
    assert archive.testzip() is None
    labels = list(csv.DictReader(io.StringIO(archive.read("labels.csv").decode())))
    folders = {row["image"].split("/")[0]: row["catalogue_code"] for row in labels}
    assert sorted(folders.values()) == ["HW-0042", "HW-0099"]
    assert all(folder.startswith(code) for folder, code in folders.items())
    salt_images = [row["image"] for row in labels if row["catalogue_code"] == "HW-0042"]
    assert len(salt_images) == 2
    store = client.app.state.catalog.store
    for row in labels:
        data = archive.read("images/" + row["image"])
        media = cat.client.get(cat.url(f"/media/{row['media_id']}")).json()
        assert hashlib.sha256(data).hexdigest() == media["sha256"]
        assert store.exists(f"media/{cat.org_id}/{media['sha256'][:2]}/{media['sha256']}")
    assert {row["species"] for row in labels} == {"humpback_whale"}
    unidentified_media = sightings["unidentified"]["media"][0]["id"]
    assert unidentified_media not in {row["media_id"] for row in labels}


def test_darwin_core_archive(cat: Catalogue, sightings: dict) -> None:
    response = cat.client.get(cat.url("/exports/dwca.zip"))
    assert response.status_code == 200
    archive = zipfile.ZipFile(io.BytesIO(response.content))
    assert {"meta.xml", "eml.xml", "occurrence.txt"} <= set(archive.namelist())

    core = ET.fromstring(archive.read("meta.xml")).find(f"{TEXT_NS}core")
    assert core.get("rowType") == "http://rs.tdwg.org/dwc/terms/Occurrence"
    assert core.find(f"{TEXT_NS}files/{TEXT_NS}location").text == "occurrence.txt"
    assert core.find(f"{TEXT_NS}id").get("index") == "0"
    fields = sorted(core.findall(f"{TEXT_NS}field"), key=lambda f: int(f.get("index")))
    terms = [f.get("term") for f in fields]
    unknown = [t for t in terms if t not in DWC_TERMS]
    assert unknown == [], f"not Darwin Core terms: {unknown}"
    assert [int(f.get("index")) for f in fields] == list(range(len(fields)))

    text = archive.read("occurrence.txt").decode("utf-8")
    rows = list(csv.reader(io.StringIO(text), delimiter="\t", quoting=csv.QUOTE_NONE))
    header, body = rows[0], rows[1:]
    assert [t.rsplit("/", 1)[1] for t in terms] == header
    occurrences = [dict(zip(header, row, strict=True)) for row in body]
    assert (
        len(occurrences) == 3
    )  # two identified individuals, one unidentified humpback; the undated is left out
    for occurrence in occurrences:
        assert ISO_8601.match(occurrence["eventDate"]), occurrence["eventDate"]
        datetime.fromisoformat(occurrence["eventDate"])
        assert -90 <= float(occurrence["decimalLatitude"]) <= 90
        assert -180 <= float(occurrence["decimalLongitude"]) <= 180
        assert occurrence["basisOfRecord"] in {"HumanObservation", "MachineObservation"}
        assert occurrence["scientificName"] == "Megaptera novaeangliae"
        assert occurrence["occurrenceStatus"] == "present"
    by_organism = {o["organismID"]: o for o in occurrences}
    salt = by_organism["HW-0042"]
    assert (salt["basisOfRecord"], salt["sex"], salt["organismName"]) == (
        "HumanObservation",
        "female",
        "Salt",
    )
    assert salt["eventDate"] == "2023-07-14T09:32:00-07:00"
    assert salt["identifiedBy"] == "ana"
    assert by_organism[""]["basisOfRecord"] == "MachineObservation"
    assert len({o["occurrenceID"] for o in occurrences}) == 3

    eml = ET.fromstring(archive.read("eml.xml"))
    assert eml.find("dataset/title").text.startswith("Alpha")
    assert "creativecommons.org" in ET.tostring(eml, encoding="unicode")
    assert validate_archive(response.content) == []


def test_the_validator_catches_what_is_wrong() -> None:
    """validate_archive is the gate every export passes; it must see real mistakes."""
    meta = """<?xml version="1.0"?><archive xmlns="http://rs.tdwg.org/dwc/text/"><core
      rowType="http://rs.tdwg.org/dwc/terms/Occurrence" fieldsTerminatedBy="\\t" ignoreHeaderLines="1">
      <files><location>occurrence.txt</location></files><id index="0"/>
      <field index="0" term="http://rs.tdwg.org/dwc/terms/occurrenceID"/>
      <field index="1" term="http://rs.tdwg.org/dwc/terms/basisOfRecord"/>
      <field index="2" term="http://rs.tdwg.org/dwc/terms/eventDate"/>
      <field index="3" term="http://rs.tdwg.org/dwc/terms/decimalLatitude"/>
      <field index="4" term="http://rs.tdwg.org/dwc/terms/scientificName"/>
      <field index="5" term="http://rs.tdwg.org/dwc/terms/whaleMood"/></core></archive>"""
    occurrence = (
        "occurrenceID\tbasisOfRecord\teventDate\tdecimalLatitude\tscientificName\twhaleMood\n"
        "o1\tPreservedSpecimen\t14/07/2023\t123.4\tMegaptera novaeangliae\thappy\n"
    )
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("meta.xml", meta)
        archive.writestr("eml.xml", "<eml/>")
        archive.writestr("occurrence.txt", occurrence)
    problems = " | ".join(validate_archive(buffer.getvalue()))
    assert "whaleMood is not a Darwin Core term" in problems
    assert "basisOfRecord 'PreservedSpecimen'" in problems
    assert "eventDate '14/07/2023' is not ISO 8601" in problems
    assert "decimalLatitude 123.4 is outside" in problems
