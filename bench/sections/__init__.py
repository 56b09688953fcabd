"""One module per question of the bench page, named like its benchmark (``bench/bench_<name>.py``).

Each has ``TITLE`` (its heading on the page) and ``render(data, targets, full)``: the section's
Markdown from the benchmark's JSON, appending a :class:`bench.targets.Target` for each of the
benchmark's targets (``bench.targets.TARGETS``).
"""

from __future__ import annotations

from types import ModuleType

from bench.sections import e2e, embedder, ingest, load, matcher, preprocess, reembed, wire

SECTIONS: dict[str, ModuleType] = {
    "preprocess": preprocess,
    "embedder": embedder,
    "matcher": matcher,
    "ingest": ingest,
    "e2e": e2e,
    "load": load,
    "wire": wire,
    "reembed": reembed,
}
