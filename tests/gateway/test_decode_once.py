"""The gateway decodes each photo once and sends the detector and the embedder its pixels.

What the user gets must not depend on it: the same boxes, species and candidates as when each
service decodes the photo's bytes itself (``FINPRINT_GATEWAY_DECODE_ONCE=false``). Real photos,
the five apps in process on a temporary data directory.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path

import httpx
import pytest

from finprint.embedded import BUILD_ORDER, build_embedded_apps, embedded_environment
from tests.photos import individuals_with, letterboxed_jpeg

CLIENTS = ("gateway", "catalog", "detector", "embedder")


@asynccontextmanager
async def embedded_system(data_dir: Path, monkeypatch: pytest.MonkeyPatch,
                          decode_once: bool) -> AsyncIterator[dict[str, httpx.AsyncClient]]:
    for key, value in embedded_environment(data_dir).items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("FINPRINT_GATEWAY_JWT_SECRET", "test-secret-" + "x" * 32)
    monkeypatch.setenv("FINPRINT_GATEWAY_EMBEDDED_WORKER", "false")
    monkeypatch.setenv("FINPRINT_GATEWAY_DECODE_ONCE", "true" if decode_once else "false")
    apps = build_embedded_apps()
    async with AsyncExitStack() as stack:
        for name in BUILD_ORDER:
            await stack.enter_async_context(apps[name].router.lifespan_context(apps[name]))
        yield {
            name: await stack.enter_async_context(
                httpx.AsyncClient(transport=httpx.ASGITransport(app=apps[name]), base_url=f"http://{name}", timeout=120))
            for name in CLIENTS
        }


async def contributor_key(clients: dict[str, httpx.AsyncClient]) -> str:
    org = (await clients["catalog"].post("/v1/orgs", json={"slug": "decode-lab", "name": "decode-lab"})).json()
    created = await clients["catalog"].post(f"/v1/orgs/{org['id']}/api-keys",
                                            json={"name": "c", "role": "contributor"})
    return created.json()["key"]


@pytest.fixture(scope="module")
def whales(shared_data: Path) -> dict[str, list[Path]]:
    """Three humpbacks with four photos each: three to enrol, one to identify."""
    return {f"HW-{n}": paths for n, paths in enumerate(individuals_with(shared_data, photos=4, count=3))}


def pixel_requests(metrics: str, route: str) -> float:
    return sum(float(line.rsplit(" ", 1)[1]) for line in metrics.splitlines()
               if line.startswith("finprint_http_requests_total{") and f'route="{route}"' in line)


async def identify_everything(clients: dict[str, httpx.AsyncClient], whales: dict[str, list[Path]],
                              extra: list[bytes]) -> tuple[list[dict], dict[str, float]]:
    key = await contributor_key(clients)
    gateway = clients["gateway"]
    for code, paths in whales.items():
        enrolled = await gateway.post(
            "/v1/encounters", headers={"X-API-Key": key, "Idempotency-Key": f"enrol-{code}"},
            files=[("images", (p.name, p.read_bytes(), "image/jpeg")) for p in paths[:3]],
            data={"individual_id": code},
        )
        assert enrolled.status_code == 201, enrolled.text
    queries = [paths[3].read_bytes() for paths in whales.values()] + extra
    answers = []
    for data in queries:
        response = await gateway.post("/v1/identify", headers={"X-API-Key": key},
                                      files={"image": ("query.jpg", data, "image/jpeg")})
        assert response.status_code == 200, response.text
        answers.append(response.json())
    detector = (await clients["detector"].get("/metrics")).text
    embedder = (await clients["embedder"].get("/metrics")).text
    gateway_metrics = (await clients["gateway"].get("/metrics")).text
    decoded = [float(line.rsplit(" ", 1)[1]) for line in gateway_metrics.splitlines()
               if line.startswith("finprint_gateway_decode_seconds_count")]
    used = {"gateway decodes": sum(decoded),"detect/pixels": pixel_requests(detector, "/v1/detect/pixels"), "detect": pixel_requests(detector, "/v1/detect"),
            "embed/pixels": pixel_requests(embedder, "/v1/embed/pixels"), "embed": pixel_requests(embedder, "/v1/embed")}
    return answers, used


def assert_same_answer(once: dict, each: dict) -> None:
    assert len(once["results"]) == len(each["results"])
    for a, b in zip(once["results"], each["results"]):
        assert a["box"] == b["box"] and a["view"] == b["view"]
        assert [s["species"] for s in a["species"]] == [s["species"] for s in b["species"]]
        for x, y in zip(a["species"], b["species"]):
            assert x["score"] == pytest.approx(y["score"], abs=1e-4)
        assert [c["individual_id"] for c in a["candidates"]] == [c["individual_id"] for c in b["candidates"]]
        for x, y in zip(a["candidates"], b["candidates"]):
            assert x["score"] == pytest.approx(y["score"], abs=1e-4)
        assert a["new_individual"] == pytest.approx(b["new_individual"], abs=1e-4)
        assert a["ranking"] == b["ranking"]


async def test_decoding_once_gives_the_answers_each_service_gives_from_the_bytes(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, whales: dict[str, list[Path]], shared_data: Path) -> None:
    full_size = sorted((shared_data / "curvrank_examples" / "images").glob("fluke_*"))[:2]
    extra = [p.read_bytes() for p in full_size] + [letterboxed_jpeg(next(iter(whales.values()))[3], bar=120)]
    runs = {}
    for decode_once in (False, True):
        async with embedded_system(tmp_path / f"once-{decode_once}", monkeypatch, decode_once) as clients:
            runs[decode_once] = await identify_everything(clients, whales, extra)
    (once, used_once), (each, used_each) = runs[True], runs[False]
    assert any(answer["results"] for answer in once)
    for a, b in zip(once, each):
        assert_same_answer(a, b)
    # The known whales are found among the candidates either way.
    for answer, code in zip(once, whales):
        assert code in [c["individual_id"] for c in answer["results"][0]["candidates"]]
    # And each way took its own route: pixels when decoding once, the photo's bytes otherwise.
    assert used_once["detect/pixels"] >= len(once) and used_once["detect"] == 0
    assert used_once["embed/pixels"] > 0
    assert used_once["gateway decodes"] >= len(once) and used_each["gateway decodes"] == 0
    assert used_each["detect/pixels"] == 0 and used_each["embed/pixels"] == 0 and used_each["detect"] >= len(each)


async def test_a_bad_photo_is_refused_by_the_gateway_with_its_reason_and_nothing_is_stored(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    gif = b"GIF89a" + b"\x00" * 64
    truncated = b"\xff\xd8\xff\xe0" + b"\x00" * 64
    async with embedded_system(tmp_path, monkeypatch, decode_once=True) as clients:
        key = await contributor_key(clients)
        for data, status, words in ((gif, 415, "GIF"), (truncated, 422, "")):
            response = await clients["gateway"].post(
                "/v1/identify?store=true", headers={"X-API-Key": key},
                files={"image": ("photo.jpg", data, "image/jpeg")})
            assert response.status_code == status, response.text
            assert response.headers["content-type"].startswith("application/problem+json")
            assert words in response.json()["detail"]
        listed = await clients["gateway"].get("/v1/encounters", headers={"X-API-Key": key})
        assert listed.status_code == 200 and listed.json()["items"] == []
        detector = (await clients["detector"].get("/metrics")).text
        assert pixel_requests(detector, "/v1/detect/pixels") == 0
