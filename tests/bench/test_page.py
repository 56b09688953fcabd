"""The bench page (docs/performance.md) from results, without running a benchmark."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from bench import page
from bench.runner import BENCHMARKS, Outcome
from bench.sections import SECTIONS
from bench.targets import TARGETS

WHEN = datetime(2026, 12, 4, 1, 2, tzinfo=UTC)


@pytest.fixture(autouse=True)
def _no_machine_probe(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(page, "machine", lambda: {"CPU": "test", "GPU": "none", "code": "abc"})


def test_every_benchmark_has_a_section_and_targets() -> None:
    names = [b.name for b in BENCHMARKS]
    assert list(SECTIONS) == names
    assert list(TARGETS) == names
    for name, section in SECTIONS.items():
        assert section.TITLE and callable(section.render), name


def test_a_benchmark_without_results_lists_its_targets_as_not_measured() -> None:
    outcomes = [Outcome(b.name, "failed (exit 1)", note="boom") for b in BENCHMARKS]
    text = page.render(outcomes, False, WHEN, WHEN)
    for name, goals in TARGETS.items():
        for goal in goals:
            assert f"| {goal.issue} | {goal.what} | not measured: {name} failed (exit 1) | NOT MEASURED |" in text
    assert text.count("No figures: see the status above.") == len(BENCHMARKS)


def test_sections_render_their_results_and_verdicts() -> None:
    preprocess = {"size": 256, "photos_10mp_and_up": {"images": 1, "reduced_images_per_s": 38.0,
                                                      "full_images_per_s": 11.3, "speedup": 3.36}}
    ingest = {"runs": [{"workers": w, "images": 80, "images_per_minute": 40.0 * w, "wall_s": 120.0 / w,
                        "upload_s": 1.5, "stage_ms_per_image": {"decode": 10.0}} for w in (1, 2)]}
    data = {"preprocess": preprocess, "ingest": ingest}
    outcomes = [Outcome(b.name, "ok", data=data.get(b.name)) for b in BENCHMARKS]
    text = page.render(outcomes, False, WHEN, WHEN)
    assert "| 4 | reduced-size JPEG decoding >= 3x faster than full decode on 12-MP photos | 3.36x on 1" in text
    assert "| photos 10mp and up | 1 | 38 | 11.3 | 3.36x |" in text
    assert "40.0 images/min with 1 worker(s), 80.0 images/min with 2 worker(s) on 80 images | reported (smaller size)" in text
    assert " 2 workers ÷ 1 worker: 2.00x." in text


def test_results_of_another_shape_leave_the_rest_of_the_page() -> None:
    outcomes = [Outcome(b.name, "ok", data={"unexpected": True} if b.name == "load" else None) for b in BENCHMARKS]
    text = page.render(outcomes, False, WHEN, WHEN)
    assert "Could not read its results (KeyError: 'load')." in text
    assert "not measured: load its results could not be read" in text
    assert text.endswith(page.gpu_section("none") + "\n")
