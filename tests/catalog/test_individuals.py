"""Individuals: catalogue codes, identifications, and merge/split keeping the history."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from services.catalog.adapters.db.models import AuditEntry

from .helpers import Catalogue, MakeCatalogue

pytestmark = pytest.mark.servers


def history(cat: Catalogue, individual_id: str) -> list[dict]:
    response = cat.client.get(cat.url(f"/individuals/{individual_id}/history"))
    assert response.status_code == 200
    return response.json()


def annotations_of(cat: Catalogue, individual_id: str) -> set[str]:
    page = cat.client.get(cat.url("/annotations"), params={"individual_id": individual_id}).json()
    return {a["id"] for a in page["items"]}


def test_catalogue_code_is_unique_per_organisation(
    cat: Catalogue, make_catalogue: MakeCatalogue, other_org: str
) -> None:
    cat.individual("HW-001")
    clash = cat.client.post(
        cat.url("/individuals"), json={"catalogue_code": "HW-001", "species": "humpback_whale"}
    )
    assert clash.status_code == 409
    assert "HW-001" in clash.json()["detail"]
    make_catalogue(other_org).individual("HW-001")  # another organisation may use the same code


def test_individuals_are_looked_up_by_ids_or_exact_code_merged_ones_included(cat: Catalogue) -> None:
    a, b, c = cat.individual("L-1"), cat.individual("L-10"), cat.individual("L-2")
    cat.post("/individuals:merge", {"target_id": a["id"], "source_ids": [b["id"]]}, expect=200)
    by_code = cat.client.get(cat.url("/individuals"), params={"catalogue_code": "L-10"}).json()["items"]
    assert [(i["id"], i["status"]) for i in by_code] == [(b["id"], "merged")]
    by_ids = cat.client.get(cat.url("/individuals"), params={"ids": f"{b['id']},{c['id']}"}).json()["items"]
    assert {i["id"] for i in by_ids} == {b["id"], c["id"]}
    assert cat.client.get(cat.url("/individuals"), params={"catalogue_code": "L"}).json()["total"] == 0


def test_unknown_species_is_a_422_naming_the_field(cat: Catalogue) -> None:
    response = cat.client.post(cat.url("/individuals"), json={"catalogue_code": "X", "species": "unicorn"})
    assert response.status_code == 422
    assert response.json()["errors"][0]["field"] == "species"


def test_confirmed_sightings_set_first_and_last_seen(cat: Catalogue) -> None:
    whale = cat.individual("HW-010")
    cat.sighting(whale["id"], when="2021-06-01T10:00:00+00:00")
    cat.sighting(whale["id"], when="2023-09-15T16:30:00-07:00")
    whale = cat.client.get(cat.url(f"/individuals/{whale['id']}")).json()
    assert whale["first_seen"].startswith("2021-06-01T10:00:00")
    assert whale["last_seen"].startswith("2023-09-15T23:30:00")
    assert whale["representative_media_id"] is not None


def test_merge_moves_everything_and_keeps_the_history(cat: Catalogue) -> None:
    keep = cat.individual("HW-100", name="Salt")
    dup = cat.individual("HW-200")
    kept_sighting = cat.sighting(keep["id"], when="2020-05-01T12:00:00Z")
    dup_sightings = [
        cat.sighting(dup["id"], when="2019-04-01T12:00:00Z"),
        cat.sighting(dup["id"], when="2024-04-01T12:00:00Z"),
    ]
    dup_annotations = {s["annotations"][0]["id"] for s in dup_sightings}

    result = cat.post(
        "/individuals:merge",
        {"target_id": keep["id"], "source_ids": [dup["id"]], "reason": "same fluke pattern", "actor": "ana"},
        expect=200,
    )

    assert set(result["moved_annotation_ids"]) == dup_annotations
    assert annotations_of(cat, keep["id"]) == dup_annotations | {kept_sighting["annotations"][0]["id"]}
    assert annotations_of(cat, dup["id"]) == set()
    merged = cat.client.get(cat.url(f"/individuals/{dup['id']}")).json()
    assert (merged["status"], merged["merged_into_id"]) == ("merged", keep["id"])
    target = result["individual"]
    assert target["first_seen"].startswith("2019-04-01") and target["last_seen"].startswith("2024-04-01")

    target_log = [e for e in history(cat, keep["id"]) if e["action"] == "merged"]
    assert len(target_log) == 1
    assert target_log[0]["actor"] == "ana"
    assert target_log[0]["details"]["source_codes"] == ["HW-200"]
    assert set(target_log[0]["details"]["moved_annotation_ids"]) == dup_annotations
    source_log = [e["action"] for e in history(cat, dup["id"])]
    assert source_log[0] == "created" and source_log[-1] == "merged_into"

    # The old code still leads to the animal, and stays reserved.
    listed = cat.client.get(cat.url("/individuals"), params={"q": "HW-"}).json()["items"]
    assert [i["catalogue_code"] for i in listed] == ["HW-100"]
    with_merged = cat.client.get(cat.url("/individuals"), params={"include_merged": True}).json()["items"]
    assert {i["catalogue_code"] for i in with_merged} == {"HW-100", "HW-200"}
    assert (
        cat.client.post(
            cat.url("/individuals"), json={"catalogue_code": "HW-200", "species": "humpback_whale"}
        ).status_code
        == 409
    )


def test_confirming_a_merged_individual_lands_on_the_one_it_became(cat: Catalogue) -> None:
    keep, dup = cat.individual("HW-300"), cat.individual("HW-301")
    cat.post("/individuals:merge", {"target_id": keep["id"], "source_ids": [dup["id"]]}, expect=200)
    sighting = cat.sighting(dup["id"])
    assert sighting["annotations"][0]["individual_id"] == keep["id"]


@pytest.mark.parametrize("case", ["self", "twice", "species"])
def test_bad_merges_change_nothing(cat: Catalogue, case: str) -> None:
    a, b = cat.individual("A-1"), cat.individual("B-1")
    dolphin = cat.individual("D-1", species="bottlenose_dolphin")
    cat.sighting(b["id"])
    if case == "twice":
        cat.post("/individuals:merge", {"target_id": a["id"], "source_ids": [b["id"]]}, expect=200)
    before = cat.client.get(cat.url("/audit"), params={"limit": 1000}).json()["total"]
    request = {
        "self": {"target_id": a["id"], "source_ids": [a["id"]]},
        "twice": {"target_id": a["id"], "source_ids": [b["id"]]},
        "species": {"target_id": a["id"], "source_ids": [dolphin["id"]]},
    }[case]
    response = cat.client.post(cat.url("/individuals:merge"), json=request)
    assert response.status_code in (409, 422), response.text
    assert cat.client.get(cat.url("/audit"), params={"limit": 1000}).json()["total"] == before
    assert cat.client.get(cat.url(f"/individuals/{dolphin['id']}")).json()["status"] == "active"


def test_split_moves_the_chosen_annotations_to_a_new_individual(cat: Catalogue) -> None:
    mixed = cat.individual("HW-400")
    sightings = [cat.sighting(mixed["id"], when=f"202{i}-07-01T08:00:00Z") for i in range(3)]
    ids = [s["annotations"][0]["id"] for s in sightings]

    result = cat.post(
        f"/individuals/{mixed['id']}:split",
        {
            "annotation_ids": ids[1:],
            "new_individual": {"catalogue_code": "HW-401", "species": "humpback_whale"},
            "reason": "two animals catalogued as one",
            "actor": "ben",
        },
    )

    new = result["individual"]
    assert new["catalogue_code"] == "HW-401"
    assert annotations_of(cat, new["id"]) == set(ids[1:])
    assert annotations_of(cat, mixed["id"]) == {ids[0]}
    assert new["first_seen"].startswith("2021-07-01") and new["last_seen"].startswith("2022-07-01")
    original = cat.client.get(cat.url(f"/individuals/{mixed['id']}")).json()
    assert original["first_seen"].startswith("2020-07-01") and original["last_seen"].startswith("2020-07-01")

    split_entry = next(e for e in history(cat, mixed["id"]) if e["action"] == "split")
    assert split_entry["details"]["new_code"] == "HW-401" and split_entry["actor"] == "ben"
    assert set(split_entry["details"]["moved_annotation_ids"]) == set(ids[1:])
    assert [e["action"] for e in history(cat, new["id"])] == ["created_by_split", "split_from"]


def test_split_refuses_foreign_annotations_or_taking_everything(cat: Catalogue) -> None:
    a, b = cat.individual("S-1"), cat.individual("S-2")
    only = cat.sighting(a["id"])["annotations"][0]["id"]
    other = cat.sighting(b["id"])["annotations"][0]["id"]
    for annotation_ids in ([other], [only]):
        response = cat.client.post(
            cat.url(f"/individuals/{a['id']}:split"),
            json={
                "annotation_ids": annotation_ids,
                "new_individual": {"catalogue_code": "S-3", "species": "humpback_whale"},
            },
        )
        assert response.status_code == 422, response.text
        assert response.json()["errors"][0]["field"] == "annotation_ids"
    listed = cat.client.get(cat.url("/individuals"), params={"q": "S-3"}).json()
    assert listed["total"] == 0


def test_identification_decisions_are_applied_and_audited(cat: Catalogue) -> None:
    known = cat.individual("HW-500")
    pending = cat.sighting(None)
    annotation_id = pending["annotations"][0]["id"]
    identification_id = pending["identifications"][0]["id"]
    assert pending["identifications"][0]["decision"] == "pending"

    decided = cat.post(
        f"/identifications/{identification_id}:decide",
        {"decision": "confirmed", "individual_id": known["id"], "decided_by": "ana"},
        expect=200,
    )
    assert decided["decision"] == "confirmed" and decided["decided_at"]
    assert annotations_of(cat, known["id"]) == {annotation_id}

    revised = cat.post(
        f"/identifications/{identification_id}:decide",
        {
            "decision": "new_individual",
            "new_individual": {"catalogue_code": "HW-501", "species": "humpback_whale"},
            "decided_by": "ben",
        },
        expect=200,
    )
    assert annotations_of(cat, known["id"]) == set()
    assert annotations_of(cat, revised["individual_id"]) == {annotation_id}
    assert [e["action"] for e in history(cat, known["id"])] == [
        "created",
        "annotation_assigned",
        "annotation_removed",
    ]

    rejected = cat.post(
        f"/identifications/{identification_id}:decide",
        {"decision": "rejected", "decided_by": "cy"},
        expect=200,
    )
    assert rejected["individual_id"] is None
    assert annotations_of(cat, revised["individual_id"]) == set()


def test_a_confirmation_without_an_individual_is_refused(cat: Catalogue) -> None:
    identification_id = cat.sighting(None)["identifications"][0]["id"]
    response = cat.client.post(
        cat.url(f"/identifications/{identification_id}:decide"),
        json={"decision": "confirmed", "decided_by": "ana"},
    )
    assert response.status_code == 422
    assert "individual_id" in response.text


def test_the_audit_log_is_append_only(client: TestClient, cat: Catalogue) -> None:
    cat.individual("HW-600")
    with client.app.state.catalog.sessions() as session:
        entry = session.scalars(select(AuditEntry).where(AuditEntry.org_id == cat.org_id)).first()
        entry.action = "rewritten"
        with pytest.raises(PermissionError):
            session.flush()
        session.rollback()
        session.delete(session.get(AuditEntry, entry.id))
        with pytest.raises(PermissionError):
            session.flush()
