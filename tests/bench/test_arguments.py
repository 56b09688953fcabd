"""The command line the benchmarks share with the runner: --json, --full and sizes that follow it."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.arguments import BenchmarkParser


def _parser() -> BenchmarkParser:
    parser = BenchmarkParser("a benchmark", full="the large sizes")
    parser.add_size("--gallery", int, quick=300, full=5000, help="photos to enrol")
    parser.add_size("--duration", float, quick=60.0, full=300.0, help="seconds of load")
    return parser


def test_sizes_left_unset_take_the_quick_or_the_full_default() -> None:
    quick = _parser().parse([])
    assert (quick.full, quick.gallery, quick.duration, quick.json) == (False, 300, 60.0, None)
    full = _parser().parse(["--full", "--json", "out.json"])
    assert (full.full, full.gallery, full.duration, full.json) == (True, 5000, 300.0, Path("out.json"))


def test_a_size_given_wins_in_either_mode_and_is_parsed_as_its_kind() -> None:
    args = _parser().parse(["--full", "--gallery", "12", "--duration", "2.5"])
    assert (args.gallery, args.duration) == (12, 2.5)


def test_the_help_says_both_defaults(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        _parser().parse(["--help"])
    help_text = " ".join(capsys.readouterr().out.split())  # argparse wraps at the terminal's width
    assert "photos to enrol (quick 300, full 5,000)" in help_text


def test_a_size_needs_the_full_mode_to_follow() -> None:
    with pytest.raises(AssertionError, match="needs --full"):
        BenchmarkParser("one size only").add_size("--gallery", int, quick=1, full=2, help="photos")
