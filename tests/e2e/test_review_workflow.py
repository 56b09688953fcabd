"""Enrol, identify, review, merge: the researcher's loop, end to end on both deployments."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from finprint.client import FinprintClient, FinprintError

if TYPE_CHECKING:
    from tests.e2e.conftest import Deployment, Whale

pytestmark = [pytest.mark.slow, pytest.mark.servers]


def test_enrol_identify_confirm_and_merge(deployment: Deployment, humpbacks: list[Whale]) -> None:
    key = deployment.new_key("pacific-lab", "admin")
    with FinprintClient(deployment.url, api_key=key) as fp:
        for whale in humpbacks:
            enrolled = fp.enrol(whale.photos[:2], individual_id=whale.code, observed_at="2024-07-01T10:00:00Z",
                                latitude=48.5, longitude=-123.1, location="Haro Strait")
            assert len(enrolled["media"]) == 2
        assert {i["catalogue_code"] for i in fp.individuals()} == {w.code for w in humpbacks}

        # Another photo of a catalogued whale: it is among the candidates, and queued for review.
        target = humpbacks[0]
        result = fp.identify(target.photos[2], store=True)
        [animal] = result.results
        assert animal.species[0].species == "humpback_whale"
        assert target.code in [c.individual_id for c in animal.candidates]
        assert len(animal.ranking) == min(5, len(animal.candidates) + 1) and "new_individual" in animal.ranking
        pending = [i for i in fp.review_queue() if i["id"] == animal.identification_id]
        assert pending and pending[0]["decision"] == "pending"

        # The reviewer confirms: the photo joins the individual and the matcher knows it at once.
        fp.confirm(animal.identification_id, target.code)
        again = fp.identify(target.photos[2]).results[0]
        assert again.candidates[0].individual_id == target.code
        # The very photo is now one of the individual's: its best image scores 1.0 (the centroid of its
        # photos a little less, and the score mixes both, docs/models.md), far above before the confirmation.
        before = next(c.score for c in animal.candidates if c.individual_id == target.code)
        assert again.candidates[0].score > before + 0.1
        assert not [i for i in fp.review_queue() if i["id"] == animal.identification_id]

        # Two individuals were the same whale: after the merge the matcher answers with the target only.
        kept, merged = humpbacks[1], humpbacks[2]
        fp.merge(kept.code, [merged.code], reason="same notches")
        after = fp.identify(merged.photos[0]).results[0]
        codes = [c.individual_id for c in after.candidates]
        assert merged.code not in codes and codes[0] == kept.code
        assert fp.individual(merged.code)["status"] == "merged"


def test_another_organisation_sees_nothing(deployment: Deployment, humpbacks: list[Whale]) -> None:
    mine = deployment.new_key("north-lab", "admin")
    theirs = deployment.new_key("south-lab", "admin")
    with FinprintClient(deployment.url, api_key=mine) as fp:
        enrolled = fp.enrol(humpbacks[3].photos[:1], individual_id="SECRET-1")
    with FinprintClient(deployment.url, api_key=theirs) as other:
        assert list(other.individuals()) == []
        for path in ("/v1/individuals/SECRET-1", f"/v1/encounters/{enrolled['encounter']['id']}",
                     f"/v1/media/{enrolled['media'][0]['id']}"):
            with pytest.raises(FinprintError) as refused:
                other.request("GET", path)
            assert refused.value.status == 404
        # Their identify never returns our whales.
        assert all(c.individual_id != "SECRET-1"
                   for r in other.identify(humpbacks[3].photos[1]).results for c in r.candidates)
