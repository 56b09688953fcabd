"""The command line every benchmark shares with the runner (bench/runner.py): ``--json`` for where
its results go, ``--full`` for the sizes the issues name, and sizes whose default follows ``--full``.

bench_wire.py keeps its own parser: it is copied into the baseline revision's tree, which may not
have this module.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path


class BenchmarkParser(argparse.ArgumentParser):
    """A benchmark's arguments: ``--json``, ``--full`` when it has full sizes, and its own."""

    def __init__(self, description: str | None, *, full: str | None = None) -> None:
        """``full`` is the help of ``--full`` (what the full sizes are); None: the benchmark has one size."""
        super().__init__(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
        self._sizes: dict[str, tuple[float, float]] = {}
        if full is not None:
            self.add_argument("--full", action="store_true", help=full)
        self.add_argument("--json", type=Path, default=None, help="write the results here")

    def add_size(self, flag: str, kind: type[int] | type[float], *, quick: float, full: float, help: str) -> None:
        """An argument whose default is ``quick``, or ``full`` with ``--full``; its help says both."""
        assert any(action.dest == "full" for action in self._actions), "a size that follows --full needs --full"
        action = self.add_argument(flag, type=kind, default=None, help=f"{help} (quick {quick:,g}, full {full:,g})")
        self._sizes[action.dest] = (quick, full)

    def parse(self, argv: Sequence[str] | None = None) -> argparse.Namespace:
        """The parsed arguments (of the command line without ``argv``), every size left unset given its
        quick or full default."""
        args = self.parse_args(argv)
        for dest, (quick, full) in self._sizes.items():
            if getattr(args, dest) is None:
                setattr(args, dest, full if args.full else quick)
        return args
