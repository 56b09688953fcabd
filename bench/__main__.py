"""Run every benchmark in bench/ and write docs/performance.md.

    python -m bench                          # quick sizes (a few minutes on 2 cores)
    python -m bench --full                   # the large sizes of the issues (about 35 minutes on 2 cores)
    python -m bench --only e2e matcher       # some of them; the others' sections come from the
                                             # newest earlier results of the same mode, marked so
    python -m bench --output docs/performance.md --torch-checkpoint runs/x/final.pt

Each benchmark runs as its own subprocess with ``--json`` into ``bench/results/<date>/`` (ignored
by git), with a time limit; a benchmark that fails or runs out of time leaves its section saying
so, and the page is still written. The page has one table per hot path with its peer measured in
the same run and the ratio, the machine it ran on, and a Targets section with each target of
issues 4, 5, 8, 9, 20, 21 and 22: met, MISSED (with the reason) or NOT MEASURED.
"""

from __future__ import annotations

import argparse
import json
import os
from datetime import UTC, datetime
from pathlib import Path

from bench.page import render
from bench.runner import BENCHMARKS, BY_NAME, REPO, RESULTS, earlier_outcome, run_benchmark


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--full", action="store_true", help="the large sizes (about 35 minutes on 2 cores)")
    parser.add_argument("--only", nargs="+", choices=list(BY_NAME), default=None, help="run only these")
    parser.add_argument(
        "--render-only",
        action="store_true",
        help="run nothing: write the page from the newest results of each benchmark (after a change to the page)",
    )
    parser.add_argument("--output", type=Path, default=REPO / "docs" / "performance.md")
    parser.add_argument(
        "--torch-checkpoint",
        type=Path,
        default=os.environ.get("FINPRINT_BENCH_TORCH_CHECKPOINT") or None,
        help="a training checkpoint for the PyTorch eager column "
        "(default: $FINPRINT_BENCH_TORCH_CHECKPOINT, else the served ONNX file's own weights)",
    )
    args = parser.parse_args()
    started = datetime.now(UTC)
    out_dir = RESULTS / f"{started:%Y-%m-%d}"
    out_dir.mkdir(parents=True, exist_ok=True)
    extra = {"embedder": ["--torch-checkpoint", str(args.torch_checkpoint)] if args.torch_checkpoint else []}
    outcomes = []
    for bench in BENCHMARKS:
        if args.render_only or (args.only and bench.name not in args.only):
            outcomes.append(earlier_outcome(bench, args.full))
        else:
            outcomes.append(run_benchmark(bench, args.full, out_dir, extra.get(bench.name, [])))
    page = render(outcomes, args.full, started, datetime.now(UTC), ran_nothing=args.render_only)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(page)
    (out_dir / f"run-{'full' if args.full else 'quick'}.json").write_text(
        json.dumps([{k: v for k, v in vars(o).items() if k != "data"} for o in outcomes], indent=2) + "\n"
    )
    print(f"[bench] wrote {args.output}", flush=True)


if __name__ == "__main__":
    main()
