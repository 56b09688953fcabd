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
issues 4, 5, 8, 9 and 20: met, MISSED (with the reason) or NOT MEASURED.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data"
RESULTS = REPO / "bench" / "results"
MIB = 2**20
MEMORY_TARGET_BYTES = 1.5e9


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
)
BY_NAME = {b.name: b for b in BENCHMARKS}


# --- running ----------------------------------------------------------------------------------


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


# --- the machine ------------------------------------------------------------------------------


def machine() -> dict[str, str]:
    cpu = "unknown"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    mem_kib = next(
        int(line.split()[1])
        for line in Path("/proc/meminfo").read_text().splitlines()
        if line.startswith("MemTotal")
    )
    return {
        "CPU": cpu,
        "cores (usable by this run)": f"{len(os.sched_getaffinity(0))} of {os.cpu_count()}",
        "RAM": f"{mem_kib / 2**20:.1f} GiB",
        "GPU": gpu() or "none",
        "OS": platform.platform(),
        "Python": platform.python_version(),
        "onnxruntime / faiss": f"{version('onnxruntime')} / {version('faiss-cpu')}",
        "models": models(),
        "code": git_revision(),
    }


def gpu() -> str | None:
    if shutil.which("nvidia-smi") is None:
        return None
    done = subprocess.run(["nvidia-smi", "-L"], check=False, capture_output=True, text=True)
    return done.stdout.strip() or None if done.returncode == 0 else None


def version(module: str) -> str:
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import version as installed

    try:
        return installed(module)
    except PackageNotFoundError:
        return "not installed"


def models() -> str:
    names = []
    for name in ("finprint_detector", "finprint_embedder"):
        card = next(iter(sorted((REPO / "model_repository" / name).glob("**/finprint.json"))), None)
        if card is None:
            names.append(f"{name}: missing")
            continue
        meta = json.loads(card.read_text())
        about = ", ".join(str(meta[k]) for k in ("stage", "backbone", "created") if meta.get(k))
        names.append(f"{name} v{meta.get('version', '?')}" + (f" ({about})" if about else ""))
    return ", ".join(names)


def git_revision() -> str:
    head = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], check=False, cwd=REPO, capture_output=True, text=True
    )
    dirty = subprocess.run(
        ["git", "status", "--porcelain"], check=False, cwd=REPO, capture_output=True, text=True
    )
    if head.returncode != 0:
        return "unknown"
    return head.stdout.strip() + (" + uncommitted changes" if dirty.stdout.strip() else "")


# --- the page ---------------------------------------------------------------------------------


@dataclass
class Target:
    issue: int
    what: str
    measured: str
    met: bool | None
    """None: not measured in this run."""
    reason: str = ""
    figure_only: bool = False
    """A figure the issue asks for, without a threshold."""

    def verdict(self) -> str:
        if self.figure_only and self.met is not None:
            return "reported" if self.met else "reported (smaller size)"
        if self.met is None:
            return "NOT MEASURED"
        return "met" if self.met else "MISSED"


def table(header: list[str], rows: list[list[object]]) -> str:
    def cell(value: object) -> str:
        if isinstance(value, float):
            return f"{value:,.3g}" if abs(value) < 100 else f"{value:,.0f}"
        return "–" if value is None else str(value)

    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def ratio(a: object, b: object) -> float | None:
    return a / b if isinstance(a, int | float) and isinstance(b, int | float) and b else None


def x(value: float | None) -> str:
    return "–" if value is None else f"{value:.2f}x"


Section = Callable[[dict, list[Target], bool], str]


def preprocess_section(data: dict, targets: list[Target], full: bool) -> str:
    rows = [
        [
            name.replace("_", " "),
            row["images"],
            row["reduced_images_per_s"],
            row["full_images_per_s"],
            x(row["speedup"]),
        ]
        for name, row in data.items()
        if isinstance(row, dict)
    ]
    large = data.get("photos_10mp_and_up")
    if large:
        ok = large["speedup"] >= 3.0
        targets.append(
            Target(
                4,
                "reduced-size JPEG decoding >= 3x faster than full decode on 12-MP photos",
                f"{large['speedup']:.2f}x on {large['images']} photo(s) of 10 MP and more "
                f"({large['reduced_images_per_s']:.1f} vs {large['full_images_per_s']:.1f} images/s)",
                ok,
                ""
                if ok
                else "below 3x in this run; one photo, best of a few passes: the "
                "figure moves with the machine's other load",
            )
        )
    else:
        targets.append(
            Target(
                4,
                "reduced-size JPEG decoding >= 3x faster than full decode on 12-MP photos",
                "no photo of 10 MP or more in the set",
                None,
            )
        )
    return (
        f"Decode + resize to {data.get('size')} px on one thread, the services' code path "
        "(`finprint.imaging.load_model_input`), real full-size photos (curvrank_examples); peer: the same "
        "call with reduced-size decoding off.\n\n"
        + table(["photos", "n", "reduced-size decode, images/s", "full decode, images/s", "ratio"], rows)
    )


EMBEDDER_ROWS = (
    ("service over HTTP (uvicorn, loopback), JPEG crops", "service_http"),
    ("service over HTTP, decoded pixels (`/v1/embed/pixels`)", "service_http_pixels"),
    ("service in process (ASGI), JPEG crops", "service_in_process"),
    ("onnxruntime raw (decoded arrays) — the peer", "onnxruntime"),
    ("onnxruntime raw + decoding in line", "onnxruntime_decode"),
    ("PyTorch eager, same weights", "torch_eager"),
)


def repo_relative(path: str) -> str:
    try:
        return str(Path(path).relative_to(REPO))
    except ValueError:
        return path


def best_service_rate(data: dict, prefix: str) -> tuple[str, float] | None:
    """The better of a service's batch-32 columns (sequential, or two requests in flight)."""
    rates = [(key, data[key]) for key in (f"{prefix}_b32", f"{prefix}_b32x2") if isinstance(data.get(key), float)]
    return max(rates, key=lambda kv: kv[1], default=None)


def service_overhead_target(data: dict) -> Target:
    """Issue 4's service-vs-raw target, like for like: decoded pixels in both (the service's
    pixels route); the JPEG route against raw onnxruntime decoding the same crops in line."""
    goal = "embedder service within 15% of raw onnxruntime at batch 32"
    raw, raw_decoding = data.get("onnxruntime_b32"), data.get("onnxruntime_decode_b32")
    pixels, photos = best_service_rate(data, "service_http_pixels"), best_service_rate(data, "service_http")
    if not (pixels and isinstance(raw, float)):
        return Target(4, goal, "not measured", None)
    share = pixels[1] / raw
    measured = (f"{share:.2f} x raw, both on decoded pixels ({pixels[1]:.1f} vs {raw:.1f} images/s; "
                f"column `{pixels[0].removeprefix('service_http_')}`)")
    if photos and isinstance(raw_decoding, float):
        measured += (f"; JPEG crops, which the service decodes: {photos[1] / raw_decoding:.2f} x raw onnxruntime "
                     f"decoding the same crops in line, {photos[1] / raw:.2f} x raw on arrays")
    reason = "" if share >= 0.85 else "HTTP, batching and the JSON answer cost more than 15% on these cores"
    return Target(4, goal, measured, share >= 0.85, reason)


def embedder_section(data: dict, targets: list[Target], full: bool) -> str:
    rows = []
    for label, key in EMBEDDER_ROWS:
        service = key.startswith("service")
        rows.append(
            [
                label,
                data.get(f"{key}_b1"),
                data.get(f"{key}_b32"),
                data.get(f"{key}_b1x32") if service else None,
                data.get(f"{key}_b32x2") if service else None,
            ]
        )
    targets.append(service_overhead_target(data))
    ratios = [
        [key.removeprefix("ratio_"), f"{value:.3g}"]
        for key, value in data.items()
        if key.startswith("ratio_") and isinstance(value, float)
    ]
    torch = data.get("torch")
    eager = [data.get("torch_eager_b1"), data.get("torch_eager_b32")]
    targets.append(
        Target(
            4,
            "PyTorch eager images/s at batch 1 and 32, beside the service and raw onnxruntime "
            "(a figure to report; no threshold)",
            f"{eager[0]:.1f} and {eager[1]:.1f} images/s" if None not in eager else f"not measured: {torch}",
            True if None not in eager else None,
            figure_only=True,
        )
    )
    torch_note = (
        ""
        if torch == "ok"
        else (
            f"\n\nPyTorch eager column: {torch} (it needs the `train` extra, which `make test` and "
            "`make bench` install)."
        )
    )
    if data.get("torch_weights"):
        torch_note += f"\n\nPyTorch eager weights: `{repo_relative(str(data['torch_weights']))}` in the training network."
    if "torch_vs_onnx_max_abs_diff" in data:
        torch_note += f" PyTorch vs ONNX embedding max abs diff: {data['torch_vs_onnx_max_abs_diff']:.2g}."
    return (
        f"Images/s, model {data.get('model')}, input {data.get('input_size')} px, {data.get('threads')} "
        f"intra-op threads, {data.get('images')} real crops (kaggle_humpback2019), best of {data.get('rounds')} "
        "passes, columns taking turns.\n\n"
        + table(["", "batch 1", "batch 32", "1 x 32 concurrent", "32 x 2 concurrent"], rows)
        + "\n\n"
        + table(["ratio", "value"], ratios)
        + torch_note
    )


def matcher_section(data: dict, targets: list[Target], full: bool) -> str:
    parts = []
    rows = data.get("rows", [])
    for dataset in dict.fromkeys(r["dataset"] for r in rows):
        mine = [r for r in rows if r["dataset"] == dataset]
        parts.append(
            f"**{dataset}**\n\n"
            + table(
                [
                    "engine",
                    "q/s batch 1",
                    "p50 ms",
                    "p99 ms",
                    "q/s batch 64",
                    "recall@5",
                    "bytes/vector",
                    "RSS MB",
                    "build s",
                ],
                [
                    [
                        r["engine"],
                        r["batch1_qps"],
                        r["batch1_p50_ms"],
                        r["batch1_p99_ms"],
                        r["batch64_qps"],
                        r["recall_at_5"],
                        r["bytes_per_vector"],
                        r["rss_delta_mb"],
                        r["build_s"],
                    ]
                    for r in mine
                ],
            )
        )
    summary = data.get("ratios", [])
    earlier = None if full else newest_result("matcher", "full")
    if summary:
        parts.append(
            "Matcher ÷ scikit-learn queries/s (the matcher's default index):\n\n"
            + table(
                ["gallery", "matcher index", "batch 1", "batch 64", "HTTP b64 batch 1"],
                [
                    [
                        s["dataset"],
                        s["matcher_engine"],
                        x(s["batch1_qps_ratio"]),
                        x(s["batch64_qps_ratio"]),
                        x(s.get("http_b64_batch1_qps_ratio")),
                    ]
                    for s in summary
                ],
            )
        )
    matcher_targets(rows, summary, targets)
    if earlier is not None:
        replace_1m_targets(targets, *earlier)
    return (
        "Synthetic clustered 512-d galleries shaped like re-identification embeddings (a third of the "
        "queries are new individuals); peer: scikit-learn `NearestNeighbors(brute, cosine)`, the seed "
        "paper's KNN, on the same gallery and queries. Latencies in ms.\n\n" + "\n\n".join(parts)
    )


def _default_row(rows: list[dict], summary: list[dict], dataset: str) -> dict | None:
    engine = next((s["matcher_engine"] for s in summary if s["dataset"] == dataset), None)
    return next((r for r in rows if r["dataset"] == dataset and r["engine"] == engine), None)


def replace_1m_targets(targets: list[Target], path: Path, stamp: str) -> None:
    """Quick mode has no 1M gallery: its targets come from the newest full run, marked as such."""
    data = json.loads(path.read_text())
    from_full: list[Target] = []
    matcher_targets(data.get("rows", []), data.get("ratios", []), from_full)
    for mine, theirs in zip(targets[-3:], from_full):
        if mine.met is None and theirs.met is not None:
            mine.measured = (
                f"{theirs.measured} — from the earlier full run of {stamp} (`{path.relative_to(REPO)}`)"
            )
            mine.met, mine.reason = theirs.met, theirs.reason


def matcher_targets(rows: list[dict], summary: list[dict], targets: list[Target]) -> None:
    for size, label, limit in (("100k", "100k", 10.0), ("1M", "1M", 25.0)):
        dataset = f"synthetic-{size}"
        row = _default_row(rows, summary, dataset)
        what = f"matcher p99 <= {limit:g} ms for one query at {label}, recall@5 >= 0.99"
        if row is None:
            targets.append(Target(5, what, "not measured in this run (1M is in `--full`)", None))
            continue
        ok = row["batch1_p99_ms"] <= limit and (row["recall_at_5"] or 0) >= 0.99
        targets.append(
            Target(
                5,
                what,
                f"p99 {row['batch1_p99_ms']:.2f} ms, p50 {row['batch1_p50_ms']:.2f} ms, "
                f"recall@5 {row['recall_at_5']:.3f} ({row['engine']})",
                ok,
                ""
                if ok
                else f"a long tail: p50 {row['batch1_p50_ms']:.2f} ms, p99 "
                f"{row['batch1_p99_ms']:.2f} ms; see the nprobe sweep rows",
            )
        )
    million = next((s for s in summary if s["dataset"] == "synthetic-1M"), None)
    what = "matcher >= 20x scikit-learn's queries/s at 1M"
    if million is None:
        targets.append(Target(5, what, "not measured in this run (1M is in `--full`)", None))
    else:
        value = million["batch1_qps_ratio"]
        targets.append(
            Target(
                5,
                what,
                f"{value:.0f}x at batch 1, {million['batch64_qps_ratio']:.1f}x at batch 64",
                value >= 20,
                "" if value >= 20 else "scikit-learn's brute force is close at this size",
            )
        )


INGEST_TARGET = (
    "bulk ingestion images per minute for 2,000 real images with 1 and 2 workers, and the time "
    "per stage (a figure to report; no threshold)"
)
STAGES = ("decode", "detector", "embedder", "matcher", "catalog", "gateway + network")


def ingest_section(data: list | dict, targets: list[Target], full: bool) -> str:
    runs = data if isinstance(data, list) else data.get("runs", [])
    stage_names = list(dict.fromkeys(s for r in runs for s in r.get("stage_ms_per_image", {})))
    rows = [
        [
            r.get("workers"),
            r.get("items", r.get("images")),
            r.get("images_per_minute"),
            r.get("wall_s"),
            r.get("upload_s"),
            *[r.get("stage_ms_per_image", {}).get(s) for s in stage_names],
        ]
        for r in runs
    ]
    images = runs[0].get("images") if runs else None
    rates = ", ".join(
        f"{r.get('images_per_minute')} images/min with {r.get('workers')} worker(s)" for r in runs
    )
    scaling = (
        ratio(runs[-1].get("images_per_minute"), runs[0].get("images_per_minute")) if len(runs) > 1 else None
    )
    targets.append(
        Target(
            8,
            INGEST_TARGET,
            (rates or "no runs") + (f" on {images} images" if images else ""),
            None if not runs else (images or 0) >= 2000,
            "" if (images or 0) >= 2000 else "quick mode ingests fewer images; `--full` runs 2,000",
            figure_only=True,
        )
    )
    return (
        "Separate services on loopback, a CSV manifest of real photos (kaggle_humpback2019), `finprint worker` "
        "processes; the detector and the embedder with one onnxruntime thread each (they share the 2 cores); "
        "stage times are ms per image summed over the workers (they overlap within a batch). "
        "Peer: 1 worker against 2."
        + (f" 2 workers ÷ 1 worker: {x(scaling)}." if scaling else "")
        + "\n\n"
        + table(
            ["workers", "images", "images/min", "wall s", "upload s", *[f"{s} ms" for s in stage_names]], rows
        )
    )


def e2e_section(data: dict, targets: list[Target], full: bool) -> str:
    parts = []
    separate = data.get("separate")
    if separate:
        parts.append(e2e_latency(data, separate))
        parts.append(e2e_stages(separate))
        parts.append(e2e_cpu(separate))
        parts.append(e2e_throughput(separate))
        e2e_targets(separate, targets)
    else:
        for what in (
            "identify p50 <= 150 ms and p99 <= 400 ms at concurrency 1 for a 2-MP photo",
            "identify throughput at concurrency 8 within 20% of the embedder's raw onnxruntime throughput",
        ):
            targets.append(Target(9, what, "not measured", None))
    memory = data.get("embedded_memory")
    if memory:
        parts.append(e2e_memory(memory, targets))
    else:
        targets.append(
            Target(9, "embedded default under 1.5 GB with a 100k-image gallery", "not measured", None)
        )
    return "\n\n".join(parts)


def e2e_latency(data: dict, separate: dict) -> str:
    classes = separate.get("photo_classes", {})
    enrolment = separate.get("enrolment", {})
    about = "; ".join(
        f"`{name}`: {c['photos']} photos, mean {c['mean_megapixels']:.2f} MP, {c['source']}"
        for name, c in classes.items()
    )
    rows = [
        [
            lv["photos"],
            lv["concurrency"],
            lv["requests"],
            lv["ok"],
            lv["with_animal"],
            lv.get("with_candidates"),
            lv["throughput_per_s"],
            lv["p50_ms"],
            lv["p95_ms"],
            lv["p99_ms"],
            lv.get("p50_ms_with_animal"),
            lv.get("p99_ms_with_animal"),
            ", ".join(f"{k}: {v}" for k, v in lv["errors"].items()) or "none",
        ]
        for lv in separate["levels"]
    ]
    return (
        "**Identify latency and throughput** through the gateway, the five services as separate processes "
        f"on PostgreSQL + the S3 server (SeaweedFS), all on 127.0.0.1. Gallery: {enrolment.get('photos')} real "
        f"photos of {enrolment.get('individuals')} individuals enrolled with their catalogue codes (indexed), "
        f"at {enrolment.get('photos_per_s', 0):.1f} photos/s. Model services' settings: "
        f"{', '.join(f'`{k}={v}`' for k, v in separate.get('model_settings', {}).items()) or 'defaults'} "
        "(the two share the 2 cores, as two pods of one CPU each would). Load: a fixed number of requests per level "
        f"(httpx, on the same cores as the services). Photos: {about}. `with animal`: answers with at least "
        "one detection (the others stop after "
        "the detector, so they are faster); `whole pipeline` percentiles are over those answers only; "
        "`with candidates`: answers naming catalogued individuals.\n\n"
        + table(
            [
                "photos",
                "concurrency",
                "requests",
                "200 OK",
                "with animal",
                "with candidates",
                "identify/s",
                "p50 ms",
                "p95 ms",
                "p99 ms",
                "p50 ms whole pipeline",
                "p99 ms whole pipeline",
                "errors",
            ],
            rows,
        )
    )


def e2e_stages(separate: dict) -> str:
    rows = []
    for lv in separate["levels"]:
        if lv["concurrency"] not in (1, 8):
            continue
        total = lv["stages_ms"].get("identify (gateway total)")
        rows.append(
            [
                lv["photos"],
                lv["concurrency"],
                total,
                *[f"{lv['stages_ms'].get(s, 0):.1f} ({lv['stage_shares'].get(s, 0):.0%})" for s in STAGES],
            ]
        )
    return (
        "**Time per stage**, ms per identify request (share of the gateway's request time), from the services' "
        "own Prometheus metrics scraped before and after each level: `decode` = the gateway's decoding of the "
        "photo into the models' input (`finprint_gateway_decode_seconds`) plus the detector's and the "
        "embedder's request time outside model inference (reading the pixels, or decoding the photo where "
        "they get its bytes); "
        "`detector`/`embedder` = `finprint_detector_inference_seconds` / `finprint_embedder_inference_seconds` "
        "(one embedder observation per micro-batch); `matcher` = its `/v1/search` requests; `catalog` = its "
        "requests outside the matcher's change-log polling; `gateway + network` = the gateway's request time "
        "outside its calls. At concurrency 8 the inference figures include the wait for the single inference "
        "thread, and `decode` the wait for a micro-batch.\n\n"
        + table(["photos", "concurrency", "identify ms", *STAGES], rows)
    )


CPU_SERVICES = ("gateway", "detector", "embedder", "matcher", "catalog")


def _model_cpu(level: dict) -> tuple[float, float]:
    """CPU ms per identify of the detector and the embedder, and their share of all services' CPU."""
    cpu = level["cpu_ms"]
    services = sum(cpu.get(s, 0.0) for s in CPU_SERVICES)
    models = cpu.get("detector", 0.0) + cpu.get("embedder", 0.0)
    return models, models / services if services else 0.0


def e2e_cpu(separate: dict) -> str:
    levels = [lv for lv in separate["levels"] if lv.get("cpu_ms")]
    if not levels:
        return "**CPU per identify**: not measured in this run (its results predate the CPU figures)."
    rows = []
    for lv in levels:
        cpu = lv["cpu_ms"]
        models, share = _model_cpu(lv)
        rows.append(
            [
                lv["photos"],
                lv["concurrency"],
                *[cpu.get(s) for s in (*CPU_SERVICES, "load generator", "other processes")],
                sum(cpu.values()),
                f"{models:.1f} ({share:.0%})",
            ]
        )
    return (
        "**CPU per identify**, ms of CPU time per request by process: each service's "
        "`process_cpu_seconds_total` (its own `/metrics`), the load generator's own CPU time, and the "
        "rest of the machine's busy time from `/proc/stat` (`other processes`: the database, the S3 "
        "server, other tenants of this shared machine). On 2 cores, 2,000 ms of CPU per second is all "
        "there is, so this, not the wall time per stage, says which process limits throughput. The "
        "gateway decodes each photo once and sends both models its pixels (`FINPRINT_GATEWAY_DECODE_ONCE`), so "
        "the photo's size shows in the gateway's CPU (compare `crops` with `2mp`).\n\n"
        + table(
            [
                "photos",
                "concurrency",
                *CPU_SERVICES,
                "load generator",
                "other processes",
                "total",
                "detector + embedder (share of services)",
            ],
            rows,
        )
    )


def e2e_throughput(separate: dict) -> str:
    raw = separate.get("raw_onnxruntime", {})
    rows = [
        [
            lv["photos"],
            lv["throughput_per_s"],
            raw.get("embedder_best_images_per_s"),
            x(lv.get("ratio_to_raw_embedder")),
            raw.get("models_only_photos_per_s"),
            x(lv.get("ratio_to_raw_models")),
        ]
        for lv in separate["levels"]
        if lv["concurrency"] == 8
    ]
    return (
        "**Throughput at concurrency 8 against the raw model**, measured in the same run: the embedder's ONNX "
        f"(`{raw.get('onnx')}`, {raw.get('embedder_model')}, {raw.get('embedder_input')} px) with onnxruntime "
        "directly on decoded inputs and the services' session options: "
        f"{raw.get('embedder_b1_images_per_s', 0):.1f} images/s at batch 1, "
        f"{raw.get('embedder_b8_images_per_s', 0):.1f} at batch 8 (the better is the peer); the detector's "
        f"ONNX ({raw.get('detector_model')}, {raw.get('detector_input')} px) at batch 1: "
        f"{raw.get('detector_b1_images_per_s', 0):.1f} images/s. An identify runs both models, so `detector + "
        "embedder` (1 / (1/detector + 1/embedder)) is the most the models alone allow.\n\n"
        + table(
            [
                "photos",
                "identify/s at c=8",
                "raw embedder images/s",
                "ratio",
                "raw detector + embedder photos/s",
                "ratio",
            ],
            rows,
        )
    )


def _level(separate: dict, photos: str, concurrency: int) -> dict | None:
    return next(
        (lv for lv in separate["levels"] if lv["photos"] == photos and lv["concurrency"] == concurrency), None
    )


def _largest_stages(level: dict) -> str:
    shares = sorted(((v, k) for k, v in level["stage_shares"].items()), reverse=True)[:2]
    return ", ".join(f"{k} {level['stages_ms'][k]:.0f} ms ({v:.0%})" for v, k in shares)


def _failures(level: dict) -> str:
    """The requests of a level that did not answer 200, as a reason; "" when all did."""
    errors = level.get("errors") or {}
    if not errors:
        return ""
    listed = ", ".join(f"{count} x {status}" for status, count in errors.items())
    return f"{sum(errors.values())} of {level['requests']} requests failed ({listed})"


def e2e_targets(separate: dict, targets: list[Target]) -> None:
    c1 = _level(separate, "2mp", 1)
    what = "identify p50 <= 150 ms and p99 <= 400 ms at concurrency 1 for a 2-MP photo"
    if c1 is None:
        targets.append(Target(9, what, "not measured", None))
    else:
        # Requests whose photo got no detection skip three stages: the whole pipeline's figures count.
        whole = c1.get("p50_ms_with_animal") is not None
        p50 = c1["p50_ms_with_animal"] if whole else c1["p50_ms"]
        p99 = c1["p99_ms_with_animal"] if whole else c1["p99_ms"]
        failed = _failures(c1)
        ok = p50 <= 150 and p99 <= 400 and not failed
        counted = (
            f"{c1['with_animal']} requests that ran the whole pipeline" if whole else f"{c1['ok']} requests"
        )
        targets.append(
            Target(
                9,
                what,
                f"p50 {p50:.0f} ms, p99 {p99:.0f} ms ({counted} of {c1['requests']})",
                ok,
                failed or ("" if ok else f"largest stages: {_largest_stages(c1)}"),
            )
        )
    c8 = _level(separate, "2mp", 8)
    what = (
        "identify throughput at concurrency 8 within 20% of the embedder's raw onnxruntime throughput "
        "(2-MP photos)"
    )
    if c8 is None or c8.get("ratio_to_raw_embedder") is None:
        targets.append(Target(9, what, "not measured", None))
        return
    value = c8["ratio_to_raw_embedder"]
    raw = separate["raw_onnxruntime"]
    reason = (
        f"every identify also runs the detector ({raw['detector_b1_images_per_s']:.1f} images/s raw): the two "
        f"models alone allow {raw['models_only_photos_per_s']:.1f} photos/s = "
        f"{raw['models_only_photos_per_s'] / raw['embedder_best_images_per_s']:.2f}x the embedder's rate, and "
        f"the identify rate is {c8['ratio_to_raw_models']:.2f}x of that; largest stages at c=8: "
        f"{_largest_stages(c8)}"
    )
    if c8.get("cpu_ms"):
        cpu = c8["cpu_ms"]
        reason += (
            f"; CPU per identify at c=8, {sum(cpu.values()):.0f} ms in all on 2 cores: detector "
            f"{cpu.get('detector', 0):.0f} ms, embedder {cpu.get('embedder', 0):.0f} ms, gateway "
            f"{cpu.get('gateway', 0):.0f} ms (decoding the photo included), catalog {cpu.get('catalog', 0):.0f} ms, "
            f"matcher {cpu.get('matcher', 0):.0f} ms"
        )
    reason = "; ".join(r for r in (_failures(c8), reason) if r)
    targets.append(
        Target(
            9,
            what,
            f"{value:.2f}x ({c8['throughput_per_s']:.1f} identify/s vs "
            f"{raw['embedder_best_images_per_s']:.1f} images/s)",
            value >= 0.8 and not _failures(c8),
            "" if value >= 0.8 and not _failures(c8) else reason,
        )
    )


def e2e_memory(memory: dict, targets: list[Target]) -> str:
    gallery = memory["gallery"]
    ready, after = memory["rss_at_ready"], memory["rss_after_identify"]
    level = memory["identify_2mp_c1"]
    peak_bytes = max(ready["vm_hwm_mib"], after["vm_hwm_mib"], after["tree_rss_mib"]) * MIB
    ok = peak_bytes < MEMORY_TARGET_BYTES
    targets.append(
        Target(
            9,
            "embedded default (`finprint up`) under 1.5 GB with a 100k-image gallery",
            f"peak {peak_bytes / 1e9:.2f} GB (VmHWM) with {gallery['images']:,} images",
            ok if gallery["images"] >= 100_000 else None,
            "" if ok else "see the RSS figures: models, FAISS indexes and the rebuild's pages",
        )
    )
    rows = [
        ["after the matcher's rebuild (ready)", ready["vm_rss_mib"], ready["vm_hwm_mib"]],
        [f"after {level['ok']} identify requests", after["vm_rss_mib"], after["vm_hwm_mib"]],
    ]
    return (
        f"**Memory of the embedded default** (`finprint up` as a process: five apps, SQLite, local files): "
        f"{gallery['images']:,} images of {gallery['individuals']:,} individuals "
        f"({', '.join(gallery['species'])}) with **synthetic** vectors ({memory['vectors']}) written straight into "
        "its SQLite through the catalog's own migrations and models, then `finprint up` on that data "
        f"directory; ready (matcher rebuilt from the catalogue) after {memory['ready_s']:.0f} s. Identify "
        f"through it at concurrency 1 on 2-MP photos: p50 {level['p50_ms']:.0f} ms, p99 {level['p99_ms']:.0f} ms "
        f"({level['ok']} requests, {level.get('with_candidates', '?')} answered with candidates from the "
        "synthetic gallery).\n\n"
        + table(["when", "VmRSS MiB", "VmHWM (peak) MiB"], rows)
        + "\n\nThe target counts 1.5 GB as 1.5e9 bytes, against the peak (VmHWM) of the `finprint up` process."
    )


def load_section(data: dict, targets: list[Target], full: bool) -> str:
    from bench.bench_load import section  # the load test renders its own section

    return section(data, targets, Target, table)


SECTIONS: dict[str, tuple[str, Section]] = {
    "preprocess": ("Preprocessing: reduced-size JPEG decoding (issue 4)", preprocess_section),
    "embedder": ("Embedder: service against raw onnxruntime and PyTorch eager (issue 4)", embedder_section),
    "matcher": ("Matcher: FAISS against scikit-learn (issue 5)", matcher_section),
    "ingest": ("Bulk ingestion (issue 8)", ingest_section),
    "e2e": (
        "End to end: identify through the gateway, and the embedded default's memory (issue 9)",
        e2e_section,
    ),
    "load": ("Load: mixed traffic at twice the c=8 identify throughput (issue 20)", load_section),
}


def render(outcomes: list[Outcome], full: bool, started: datetime, finished: datetime, *,
           ran_nothing: bool = False) -> str:
    targets: list[Target] = []
    body = []
    for outcome in outcomes:
        title, section = SECTIONS[outcome.name]
        head = f"## {title}\n\n"
        status = f"*{outcome.name}*: {outcome.status}"
        if outcome.seconds:
            status += f", {outcome.seconds:.0f} s"
        if outcome.load_before is not None:
            status += f", load average {outcome.load_before:.1f} before / {outcome.load_after:.1f} after"
        if outcome.json_path:
            status += f"; results `{outcome.json_path}`"
        if outcome.note:
            status += f"\n\nLast lines of its log: `{outcome.note}`"
        if outcome.data is None:
            body.append(head + status + "\n\nNo figures: see the status above.")
            add_unmeasured(outcome.name, outcome.status, targets)
            continue
        before = len(targets)
        try:
            text = section(outcome.data, targets, full)
        except (KeyError, TypeError, ValueError, AttributeError, IndexError, ZeroDivisionError) as exc:
            # A benchmark's JSON changed shape: say so, and keep the rest of the page.
            text = f"Could not read its results ({type(exc).__name__}: {exc})."
            add_unmeasured(outcome.name, "its results could not be read", targets)
        if outcome.load_before is not None:
            for target in targets[before:]:
                if target.met is False and not target.figure_only:
                    target.reason += (
                        f" (measured at load average {outcome.load_before:.1f} to "
                        f"{outcome.load_after:.1f} on {os.cpu_count()} cores)"
                    )
        body.append(head + status + "\n\n" + text)
    info = machine()
    if info["GPU"] == "none":
        targets += [
            Target(
                4,
                "the embedder benchmark on a GPU (when the task has one)",
                "no GPU here",
                None,
                "this machine has no GPU",
            ),
            Target(
                9,
                "GPU section: embedder images/s at batch 1..256 and matcher queries/s at 1M (when "
                "the task has a GPU)",
                "no GPU here",
                None,
                "this machine has no GPU",
            ),
        ]
    return "\n".join(
        [
            "# Performance",
            "",
            "Generated by `python -m bench"
            + (" --full" if full else "")
            + "` (`make bench`); do not edit by hand. "
            "Every table puts the hot path next to its peer, measured in the same run on the same inputs. "
            "Benchmarks print figures and ratios; they assert nothing.",
            "",
            (
                f"- Date: page written {started:%Y-%m-%d %H:%M} UTC from earlier results (`--render-only`): each "
                "section names the run its figures come from, and `code` below is the code that wrote the page"
                if ran_nothing
                else f"- Date: {started:%Y-%m-%d %H:%M} – {finished:%H:%M} UTC"
            ),
            "- Mode: "
            + (
                "full"
                if full
                else "quick (small sizes; `python -m bench --full` for the sizes of the issues)"
            ),
            *[f"- {k}: {v}" for k, v in info.items()],
            (
                "- The machine is shared: other processes ran during the benchmarks (the load averages per benchmark "
                "are shown); treat absolute figures as noisy and compare the ratios."
            ),
            "",
            "## Targets",
            "",
            table(
                ["issue", "target", "measured", "verdict", "reason"],
                [
                    [t.issue, t.what, t.measured, t.verdict(), t.reason]
                    for t in sorted(targets, key=lambda t: t.issue)
                ],
            ),
            "",
            *[part + "\n" for part in body],
            "## GPU",
            "",
            gpu_section(info["GPU"]),
            "",
        ]
    )


def add_unmeasured(name: str, why: str, targets: list[Target]) -> None:
    wanted = {
        "preprocess": [(4, "reduced-size JPEG decoding >= 3x faster than full decode on 12-MP photos")],
        "embedder": [(4, "embedder service within 15% of raw onnxruntime at batch 32")],
        "matcher": [
            (5, "matcher p99 <= 10 ms for one query at 100k, recall@5 >= 0.99"),
            (5, "matcher p99 <= 25 ms for one query at 1M, recall@5 >= 0.99"),
            (5, "matcher >= 20x scikit-learn's queries/s at 1M"),
        ],
        "ingest": [(8, INGEST_TARGET)],
        "e2e": [
            (9, "identify p50 <= 150 ms and p99 <= 400 ms at concurrency 1 for a 2-MP photo"),
            (
                9,
                "identify throughput at concurrency 8 within 20% of the embedder's raw onnxruntime throughput",
            ),
            (9, "embedded default under 1.5 GB with a 100k-image gallery"),
        ],
        "load": [(20, "mixed traffic at 2x the c=8 identify throughput: no 5xx, 429s only from the rate limiter")],
    }
    targets.extend(Target(issue, what, f"not measured: {name} {why}", None) for issue, what in wanted[name])


def gpu_section(found: str) -> str:
    if found == "none":
        return (
            "Not measured: this machine has no GPU, and no GPU machine was lent to this task. The GPU figures "
            "of issues 4 and 9 (Triton or onnxruntime-gpu embedder images/s at batch 1 to 256, matcher "
            "queries/s at 1M with faiss-gpu) are missing from this page."
        )
    return f"A GPU is present ({found}) but the GPU benchmarks are not part of this command yet."


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
