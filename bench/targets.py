"""The targets table: every target the issues set for a hot path, by benchmark, and its verdict.

A section of the page (``bench/sections``) measures its benchmark's targets from the results and
appends one :class:`Target` each; a benchmark with no results gets its targets here as NOT
MEASURED. A new target: a :class:`Goal` below, in its benchmark's row of ``TARGETS``.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Goal:
    issue: int
    what: str


DECODE_3X = Goal(4, "reduced-size JPEG decoding >= 3x faster than full decode on 12-MP photos")
EMBEDDER_WITHIN_15 = Goal(4, "embedder service within 15% of raw onnxruntime at batch 32")
TORCH_EAGER = Goal(
    4,
    "PyTorch eager images/s at batch 1 and 32, beside the service and raw onnxruntime "
    "(a figure to report; no threshold)",
)
MATCHER_P99 = {
    "100k": Goal(5, "matcher p99 <= 10 ms for one query at 100k, recall@5 >= 0.99"),
    "1M": Goal(5, "matcher p99 <= 25 ms for one query at 1M, recall@5 >= 0.99"),
}
MATCHER_20X = Goal(5, "matcher >= 20x scikit-learn's queries/s at 1M")
INGEST_RATE = Goal(
    8,
    "bulk ingestion images per minute for 2,000 real images with 1 and 2 workers, and the time "
    "per stage (a figure to report; no threshold)",
)
IDENTIFY_LATENCY = Goal(9, "identify p50 <= 150 ms and p99 <= 400 ms at concurrency 1 for a 2-MP photo")
IDENTIFY_THROUGHPUT = Goal(
    9,
    "identify throughput at concurrency 8 within 20% of the embedder's raw onnxruntime throughput "
    "(2-MP photos)",
)
EMBEDDED_MEMORY = Goal(9, "embedded default (`finprint up`) under 1.5 GB with a 100k-image gallery")
MIXED_LOAD = Goal(
    20,
    "mixed traffic (identify, enrol, review, reads) at 2x the c=8 identify throughput: no 5xx, 429s only "
    "from the rate limiter, every stored photo in the catalogue once",
)
WIRE_BYTES = Goal(
    21,
    "bytes the gateway sends each internal service per photo on the identify and enrol paths, before and after "
    "photos moved once (a figure to report; no threshold)",
)
REEMBED_RATE = Goal(
    22, "re-embedding the catalogue with a new model version: images per minute with 1 and 2 workers "
    "(a figure to report; no threshold)")
REEMBED_IDENTIFY_P99 = Goal(22, "identify p99 while the catalogue is re-embedded <= 2x identify p99 idle")
GPU_EMBEDDER = Goal(4, "the embedder benchmark on a GPU (when the task has one)")
GPU_FIGURES = Goal(
    9,
    "GPU section: embedder images/s at batch 1..256 and matcher queries/s at 1M (when the task has a GPU)",
)

# Each benchmark's targets, as its section reports them.
TARGETS: dict[str, tuple[Goal, ...]] = {
    "preprocess": (DECODE_3X,),
    "embedder": (EMBEDDER_WITHIN_15, TORCH_EAGER),
    "matcher": (MATCHER_P99["100k"], MATCHER_P99["1M"], MATCHER_20X),
    "ingest": (INGEST_RATE,),
    "e2e": (IDENTIFY_LATENCY, IDENTIFY_THROUGHPUT, EMBEDDED_MEMORY),
    "load": (MIXED_LOAD,),
    "wire": (WIRE_BYTES,),
    "reembed": (REEMBED_RATE, REEMBED_IDENTIFY_P99),
}
# Measured only where the task has a GPU (none of the benchmarks above runs one yet).
GPU_TARGETS = (GPU_EMBEDDER, GPU_FIGURES)


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

    @classmethod
    def of(cls, goal: Goal, measured: str, met: bool | None, reason: str = "", *,
           figure_only: bool = False) -> Target:
        return cls(goal.issue, goal.what, measured, met, reason, figure_only)

    def verdict(self) -> str:
        if self.figure_only and self.met is not None:
            return "reported" if self.met else "reported (smaller size)"
        if self.met is None:
            return "NOT MEASURED"
        return "met" if self.met else "MISSED"


def unmeasured(name: str, why: str) -> list[Target]:
    """A benchmark's targets when it has no results (it failed, timed out or never ran)."""
    return [Target.of(goal, f"not measured: {name} {why}", None) for goal in TARGETS[name]]


def gpu_unmeasured() -> list[Target]:
    """The GPU targets on a machine without a GPU."""
    return [Target.of(goal, "no GPU here", None, "this machine has no GPU") for goal in GPU_TARGETS]
