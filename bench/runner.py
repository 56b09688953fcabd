"""Running the benchmarks: the table of them, one run as a subprocess with a time limit, and the
newest earlier result of one that is left out (``--only``, ``--render-only``)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data"
RESULTS = REPO / "bench" / "results"


@dataclass(frozen=True)
class Benchmark:
    name: str
    module: str
    quick: tuple[str, ...]
    full: tuple[str, ...]
    quick_timeout_s: int
    full_timeout_s: int
    issue: int


BENCHMARKS = (
    Benchmark("preprocess", "bench.bench_preprocess", ("--rounds", "3"), ("--rounds", "5"), 180, 900, 4),
    Benchmark(
        "embedder",
        "bench.bench_embedder",
        ("--count", "64", "--rounds", "2"),
        ("--count", "256", "--rounds", "3"),
        300,
        2400,
        4,
    ),
    Benchmark(
        "matcher",
        "bench.bench_matcher",
        ("--sizes", "10000,100000", "--queries", "200", "--flat-queries", "50", "--sklearn-queries", "30"),
        ("--full", "--real", str(DATA / "kaggle_humpback2019")),
        480,
        10800,
        5,
    ),
    Benchmark("ingest", "bench.bench_ingest", ("--images", "80"), ("--images", "2000"), 420, 10800, 8),
    Benchmark("e2e", "bench.bench_e2e", (), ("--full",), 720, 10800, 9),
    Benchmark("load", "bench.bench_load", (), ("--full",), 600, 1800, 20),
    Benchmark("wire", "bench.bench_wire", (), ("--full",), 600, 1200, 21),
    Benchmark("reembed", "bench.bench_reembed", (), ("--full",), 900, 3600, 22),
)
BY_NAME = {b.name: b for b in BENCHMARKS}


@dataclass
class Outcome:
    name: str
    status: str
    """ok, failed (rc N), timed out after N s, missing (no such benchmark file), or earlier."""
    seconds: float = 0.0
    json_path: str | None = None
    log_path: str | None = None
    load_before: float | None = None
    load_after: float | None = None
    note: str = ""
    data: object = field(default=None, repr=False)


def run_benchmark(bench: Benchmark, full: bool, out_dir: Path, extra: list[str]) -> Outcome:
    script = REPO / (bench.module.replace(".", "/") + ".py")
    mode = "full" if full else "quick"
    if not script.exists():
        return Outcome(bench.name, f"missing: {script.relative_to(REPO)} does not exist")
    json_path = out_dir / f"{bench.name}-{mode}.json"
    log_path = out_dir / f"{bench.name}-{mode}.log"
    json_path.unlink(missing_ok=True)
    argv = [
        sys.executable,
        "-m",
        bench.module,
        *(bench.full if full else bench.quick),
        *extra,
        "--json",
        str(json_path),
    ]
    timeout = bench.full_timeout_s if full else bench.quick_timeout_s
    print(
        f"[bench] {bench.name}: {' '.join(argv[1:])}  (limit {timeout} s, log {log_path.relative_to(REPO)})",
        flush=True,
    )
    outcome = Outcome(
        bench.name,
        "ok",
        json_path=str(json_path.relative_to(REPO)),
        log_path=str(log_path.relative_to(REPO)),
        load_before=os.getloadavg()[0],
    )
    started = time.monotonic()
    with open(log_path, "w") as log:
        process = subprocess.Popen(
            argv, cwd=REPO, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        try:
            rc = process.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
            rc = None
    outcome.seconds = time.monotonic() - started
    outcome.load_after = os.getloadavg()[0]
    if rc is None:
        outcome.status = f"timed out after {timeout} s"
    elif rc != 0:
        outcome.status = f"failed (exit {rc})"
    if json_path.exists():
        outcome.data = json.loads(json_path.read_text())
    elif outcome.status == "ok":
        outcome.status = "failed (no JSON written)"
    if outcome.status != "ok":
        tail = log_path.read_text(errors="replace").strip().splitlines()[-3:]
        outcome.note = " / ".join(line.strip()[:200] for line in tail)
    print(f"[bench] {bench.name}: {outcome.status} in {outcome.seconds:.0f} s", flush=True)
    return outcome


def newest_result(name: str, mode: str) -> tuple[Path, str] | None:
    """The newest ``<name>-<mode>.json`` under bench/results/ and when it was written."""
    found = sorted(
        [*RESULTS.glob(f"*/{name}-{mode}.json"), *RESULTS.glob(f"{name}-{mode}.json")],
        key=lambda p: p.stat().st_mtime,
    )
    if not found:
        return None
    return found[-1], datetime.fromtimestamp(found[-1].stat().st_mtime, UTC).strftime("%Y-%m-%d %H:%M UTC")


def earlier_outcome(bench: Benchmark, full: bool) -> Outcome:
    """The newest JSON of this benchmark and mode from an earlier run, for benchmarks left out by --only."""
    newest = newest_result(bench.name, "full" if full else "quick")
    if newest is None:
        return Outcome(bench.name, "not run (left out by --only, and no earlier result)")
    path, stamp = newest
    return Outcome(
        bench.name,
        f"earlier run of {stamp}",
        json_path=str(path.relative_to(REPO)),
        data=json.loads(path.read_text()),
    )
