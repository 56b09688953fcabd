"""The bytes-on-the-wire section of the bench page from a result, without running the benchmark."""

from __future__ import annotations

from bench.sections import wire
from bench.targets import WIRE_BYTES, Target


def step(photo: int, catalog: int) -> dict:
    return {"photos": 2, "photo_bytes": photo, "services": {
        "detector": {"bytes": 197_100, "requests": 1}, "embedder": {"bytes": 197_000, "requests": 1},
        "matcher": {"bytes": 3_200, "requests": 1}, "catalog": {"bytes": catalog, "requests": 2}}}


def result(enrol_catalog_after: int) -> dict:
    def figures(catalog: int) -> dict:
        return {"decode once": {"full-size": {"enrol": step(200_000, catalog), "identify": step(400_000, 350)}}}

    return {"mode": "quick", "individuals_per_kind": 2,
            "before": {"revision": "5a17062", "figures": figures(275_000)},
            "after": {"revision": "abc1234 + working tree", "figures": figures(enrol_catalog_after)}}


def test_each_path_shows_every_service_before_and_after_per_photo() -> None:
    targets: list[Target] = []
    text = wire.render(result(203_000), targets, False)
    assert ("| decode once | full-size | enrol | 200.0 KB | 197.1 KB → 197.1 KB | 197.0 KB → 197.0 KB | "
            "3.2 KB → 3.2 KB | 275.0 KB → 203.0 KB (0.74x) | 672.3 KB → 600.3 KB (0.89x) |") in text
    assert "| decode once | full-size | identify | 400.0 KB |" in text
    assert "**Before**: `5a17062`; **after**: `abc1234 + working tree`" in text
    [target] = targets
    assert target.what == WIRE_BYTES.what and target.verdict() == "reported"
    assert "enrol (photos of 200.0 KB): detector 197.1 KB → 197.1 KB" in target.measured
    assert "catalog 275.0 KB → 203.0 KB (0.74x)" in target.measured


def test_a_path_the_baseline_did_not_have_shows_no_before() -> None:
    data = result(203_000)
    del data["before"]["figures"]["decode once"]["full-size"]["identify"]
    text = wire.render(data, [], False)
    assert "| decode once | full-size | identify | 400.0 KB | – → 197.1 KB |" in text
