"""Nothing a user sent is lost or stored twice: retries with an idempotency key, and a dependency that
dies in the middle of an enrolment (real processes, real kill)."""

from __future__ import annotations

import signal
from typing import TYPE_CHECKING

import httpx
import pytest

from finprint.client import FinprintClient, FinprintError

if TYPE_CHECKING:
    from tests.e2e.conftest import Deployment, Whale

pytestmark = [pytest.mark.slow, pytest.mark.servers]


def _count_encounters(fp: FinprintClient) -> int:
    return fp.request("GET", "/v1/encounters", params={"limit": 1}).json()["total"]


def test_a_retried_enrolment_is_stored_once(deployment: Deployment, humpbacks: list[Whale]) -> None:
    key = deployment.new_key("retry-lab", "contributor")
    with FinprintClient(deployment.url, api_key=key) as fp:
        first = fp.enrol(humpbacks[4].photos[:2], individual_id="RETRY-1", idempotency_key="upload-42")
        before = _count_encounters(fp)
        second = fp.enrol(humpbacks[4].photos[:2], individual_id="RETRY-1", idempotency_key="upload-42")
        assert second["encounter"]["id"] == first["encounter"]["id"]
        assert _count_encounters(fp) == before
        # The same photo under a new key is not a new sighting: it was enrolled before (409), nothing is added.
        with pytest.raises(FinprintError) as again:
            fp.enrol(humpbacks[4].photos[:1], individual_id="RETRY-1", idempotency_key="upload-43")
        assert again.value.status == 409 and again.value.problem["media_id"] == first["media"][0]["id"]
        assert _count_encounters(fp) == before


@pytest.mark.parametrize("deployment", ["separate"], indirect=True)
def test_a_dead_dependency_is_a_503_and_stores_nothing(deployment: Deployment, humpbacks: list[Whale]) -> None:
    key = deployment.new_key("outage-lab", "contributor")
    with FinprintClient(deployment.url, api_key=key) as fp:
        before = _count_encounters(fp)
        deployment.system.processes["embedder"].proc.send_signal(signal.SIGKILL)
        deployment.system.processes["embedder"].proc.wait(10)
        with pytest.raises(FinprintError) as failed:
            fp.enrol(humpbacks[5].photos[:2], individual_id="OUTAGE-1")
        assert failed.value.status == 503
        assert int(failed.value.retry_after or 0) >= 1
        assert failed.value.problem["dependency"] == "embedder"
        assert _count_encounters(fp) == before
        ready = httpx.get(f"{deployment.url}/readyz")
        assert ready.status_code == 503 and ready.json()["checks"]["embedder"]["ready"] is False
        with pytest.raises(FinprintError):
            fp.individual("OUTAGE-1")
