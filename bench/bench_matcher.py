"""Matcher benchmark: the matcher's index against scikit-learn's brute-force cosine KNN.

    python -m bench.bench_matcher                      # quick: galleries of 10k and 100k
    python -m bench.bench_matcher --full --json out.json   # adds 1M
    python -m bench.bench_matcher --real ../shared/data/kaggle_humpback2019 --real-limit 3000

For each gallery size, side by side in one run: queries/s and p50/p99 latency at batch 1 and
batch 64, recall@5 of the returned INDIVIDUALS against exact search, and memory (bytes per vector
of the index, RSS growth while building it), for

- ``matcher/<kind>``: the matcher's domain layer (VectorIndex) with the service's default
  settings (exact flat below ``approximate_index_min_size``, IVF above) and, for comparison, the
  exact flat index at every size;
- ``matcher/http``: one HTTP round trip through the matcher app (in process, ASGI) on the
  same gallery: JSON, validation, ranking and thresholds included;
- ``sklearn``: ``NearestNeighbors(algorithm="brute", metric="cosine")``, the seed paper's KNN.

Synthetic galleries are shaped like re-identification embeddings: 512-d, L2-normalised,
individuals with 1 to 8 images each (about 4 on average) around an individual centre, individuals
grouped in populations (species, region, viewpoint). Cosine similarity is about 0.7 between
images of one individual, 0.25 within a population and 0 otherwise. A third of the queries are
individuals the gallery does not hold (new individuals, whose neighbours are the hardest to find
approximately). ``--real`` embeds photographs with the bundled embedder model (onnxruntime) instead.

Latency targets (two cores): p99 <= 10 ms at 100k and <= 25 ms at 1M for one query at recall@5
>= 0.99, and >= 20x scikit-learn's queries/s at 1M. Timings on a shared machine are noisy; the
printed ratios are what to compare.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import gc
import json
import os
import platform
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import faiss
import numpy as np
from fastapi import FastAPI

from bench.arguments import BenchmarkParser
from finprint.schemas.embeddings import ChangePage, EmbeddingPage, IndexKey, encode_vector
from services.matcher.app import index_policy
from services.matcher.domain.index import IndexedImage, IndexPolicy, VectorIndex
from services.matcher.domain.placement import Placement
from services.matcher.settings import MatcherSettings

DIM = 512
K = 5
BATCH = 64
KEY = {"org_id": "bench-org", "species_group": "humpback_whale", "model_version": "finprint_embedder:1"}


# -- data --------------------------------------------------------------------------------------


@dataclass
class Dataset:
    name: str
    gallery: np.ndarray
    individuals: np.ndarray  # one individual label per gallery row
    queries: np.ndarray


def _unit_rows(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def synthetic(size: int, n_queries: int, seed: int = 0, new_fraction: float = 1 / 3) -> Dataset:
    rng = np.random.default_rng(seed)
    images_per = rng.integers(1, 9, size=size // 2)  # 1..8 images, mean 4.5
    counts = images_per[: int(np.searchsorted(np.cumsum(images_per), size)) + 1]
    n_individuals = len(counts) + n_queries  # extra individuals never in the gallery: "new" queries
    populations = _unit_rows(rng.standard_normal((max(16, n_individuals // 500), DIM), dtype=np.float32))
    population_of = rng.integers(0, len(populations), n_individuals)
    individual_centres = _unit_rows(rng.standard_normal((n_individuals, DIM), dtype=np.float32))

    def images(of: np.ndarray) -> np.ndarray:
        out = np.empty((len(of), DIM), dtype=np.float32)
        for start in range(0, len(of), 100_000):
            rows = of[start : start + 100_000]
            noise = _unit_rows(rng.standard_normal((len(rows), DIM), dtype=np.float32))
            out[start : start + len(rows)] = (
                np.sqrt(0.25) * populations[population_of[rows]]
                + np.sqrt(0.45) * individual_centres[rows]
                + np.sqrt(0.30) * noise
            )
        return _unit_rows(out)

    individuals = np.repeat(np.arange(len(counts)), counts)[:size]
    n_new = int(n_queries * new_fraction)
    known = rng.choice(individuals, n_queries - n_new)
    unknown = np.arange(len(counts), len(counts) + n_new)
    query_individuals = rng.permutation(np.concatenate([known, unknown]))
    return Dataset(f"synthetic-{_label(size)}", images(individuals), individuals, images(query_individuals))


def real_embeddings(folder: Path, limit: int, model_repository: Path) -> Dataset:
    """Photographs of known individuals embedded by the bundled embedder; one image per individual
    with several photos is held out as a query."""
    import onnxruntime

    from finprint.imaging import ImageLimits, load_model_input
    from finprint.model_repository import locate_model

    from services.embedder.adapters.model_files import load_card

    files = locate_model(model_repository, "finprint_embedder")
    card = load_card(files.card)
    rows = [r for r in csv.DictReader((folder / "labels.csv").open()) if r["individual_id"]][:limit]
    session = onnxruntime.InferenceSession(str(files.onnx), providers=["CPUExecutionProvider"])
    vectors = []
    for start in range(0, len(rows), 32):
        batch = np.stack(
            [
                load_model_input((folder / "images" / r["image"]).read_bytes(), card.input_size, ImageLimits(),
                                 trim_letterbox=card.trim_letterbox).pixels
                for r in rows[start : start + 32]
            ]
        )
        vectors.append(session.run(["embedding"], {"images": batch})[0])
    embeddings = _unit_rows(np.concatenate(vectors))
    labels = np.asarray([r["individual_id"] for r in rows])
    _, first, counts = np.unique(labels, return_index=True, return_counts=True)
    query_rows = first[counts > 1]
    keep = np.setdiff1d(np.arange(len(rows)), query_rows)
    _, individual_codes = np.unique(labels[keep], return_inverse=True)
    return Dataset(
        f"real-{folder.name}-{len(keep)}", embeddings[keep], individual_codes, embeddings[query_rows]
    )


def _label(size: int) -> str:
    return f"{size // 1_000_000}M" if size >= 1_000_000 else f"{size // 1000}k"


# -- measuring ---------------------------------------------------------------------------------


def rss_bytes() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


@dataclass
class Row:
    dataset: str
    size: int
    engine: str
    build_s: float
    batch1_qps: float
    batch1_p50_ms: float
    batch1_p99_ms: float
    batch64_qps: float
    batch64_p50_ms: float
    batch64_p99_ms: float
    recall_at_5: float | None
    bytes_per_vector: float | None
    rss_delta_mb: float
    notes: dict = field(default_factory=dict)


def timed(
    call: Callable[[np.ndarray], object], queries: np.ndarray, batch: int, max_calls: int
) -> tuple[float, float, float, list]:
    """(queries/s, p50 ms, p99 ms, outputs) over up to ``max_calls`` calls of ``batch`` queries."""
    call(queries[:batch])  # warm-up
    latencies, outputs = [], []
    for start in range(0, min(len(queries), batch * max_calls), batch):
        chunk = queries[start : start + batch]
        if len(chunk) < batch:
            break
        began = time.perf_counter()
        outputs.append(call(chunk))
        latencies.append(time.perf_counter() - began)
    return (*rates(latencies, batch), outputs)


Rates = tuple[float, float, float]
"""Queries/s, p50 ms and p99 ms of one batch size."""


def rates(latencies: list[float], batch: int) -> Rates:
    seconds = np.asarray(latencies)
    return batch * len(seconds) / seconds.sum(), 1e3 * np.percentile(seconds, 50), 1e3 * np.percentile(seconds, 99)


def search_rates(
    search: Callable[[np.ndarray], list[list[int]]],
    queries: np.ndarray,
    calls: tuple[int, int],
    threads: tuple[int, int] | None = None,
) -> tuple[Rates, Rates, list[list[int]]]:
    """Batch 1 and batch ``BATCH`` (``calls`` of each), and the batch-1 answers, one per query;
    ``threads``: FAISS's OpenMP threads for each."""
    if threads:
        faiss.omp_set_num_threads(threads[0])
    *one, answers = timed(search, queries, 1, calls[0])
    if threads:
        faiss.omp_set_num_threads(threads[1])
    *many, _ = timed(search, queries, BATCH, calls[1])
    return tuple(one), tuple(many), [r for batch in answers for r in batch]  # type: ignore[return-value]


def make_row(data: Dataset, engine: str, build_s: float, one: Rates, many: Rates, recall: float | None,
             bytes_per_vector: float | None, rss_mb: float, notes: dict | None = None) -> Row:
    return Row(data.name, len(data.gallery), engine, build_s, *one, *many, recall, bytes_per_vector, rss_mb,
               notes or {})


def individuals_search(index: VectorIndex) -> Callable[[np.ndarray], list[list[int]]]:
    """The matcher index's top-K individuals (as numbers) of each query in a chunk."""

    def search(chunk: np.ndarray) -> list[list[int]]:
        return [[int(c.individual_id[1:]) for c in result] for result in index.search(chunk, K)]

    return search


def individual_recall(found: list[list[int]], exact: list[list[int]]) -> float:
    return float(np.mean([len(set(f) & set(e)) / max(1, len(e)) for f, e in zip(found, exact)]))


def build_matcher(data: Dataset, policy: IndexPolicy) -> tuple[VectorIndex, float, float]:
    gc.collect()
    before = rss_bytes()
    began = time.perf_counter()
    index = VectorIndex(IndexKey(**KEY), policy, Placement.choose("auto"))
    for start in range(0, len(data.gallery), 200_000):
        index.upsert_many(
            [
                IndexedImage(f"e{row}", f"i{data.individuals[row]}", data.gallery[row], 1)
                for row in range(start, min(start + 200_000, len(data.gallery)))
            ]
        )
    return index, time.perf_counter() - began, (rss_bytes() - before) / 2**20


def matcher_row(
    data: Dataset,
    engine: str,
    policy: IndexPolicy,
    exact: list[list[int]] | None,
    args: argparse.Namespace,
    queries: int | None = None,
) -> tuple[Row, VectorIndex, list[list[int]]]:
    index, build_s, rss_mb = build_matcher(data, policy)
    queries = queries or args.queries
    one, many, found = search_rates(individuals_search(index), data.queries, (queries, max(2, queries // BATCH)),
                                    (args.batch1_threads, args.batch_threads))
    recall = individual_recall(found, exact[: len(found)]) if exact is not None else 1.0
    notes = {"nprobe": index._faiss.nprobe, "nlist": index._faiss.nlist} if index.kind == "ivf" else {}
    row = make_row(data, f"{engine}/{index.kind}", build_s, one, many, recall, _index_bytes(index) / len(data.gallery),
                   rss_mb, notes)
    return row, index, found


def nprobe_row(
    data: Dataset, index: VectorIndex, nprobe: int, exact: list[list[int]], args: argparse.Namespace
) -> Row:
    """The same IVF index searched with another nprobe: the recall/latency trade-off."""
    index._faiss.nprobe = nprobe
    one, many, found = search_rates(individuals_search(index), data.queries,
                                    (args.queries, max(2, args.queries // BATCH)),
                                    (args.batch1_threads, args.batch_threads))
    recall = individual_recall(found, exact[: len(found)])
    return make_row(data, f"sweep/ivf/nprobe={nprobe}", 0.0, one, many, recall, None, 0.0, {"nprobe": nprobe})


def _index_bytes(index: VectorIndex) -> int:
    return len(faiss.serialize_index(index._faiss))  # the vectors, lists and id map; not the Python maps


def exact_individuals(index: VectorIndex, queries: np.ndarray) -> list[list[int]]:
    faiss.omp_set_num_threads(os.cpu_count() or 1)
    search = individuals_search(index)
    return [found for start in range(0, len(queries), BATCH) for found in search(queries[start : start + BATCH])]


def http_row(data: Dataset, index: VectorIndex, args: argparse.Namespace, encoding: str) -> Row:
    """One round trip through the matcher app (in process) per search, the gallery swapped in.

    ``encoding``: ``json`` sends the queries as JSON numbers, ``b64`` as base64 float32.
    """
    import httpx

    from services.matcher.app import create_app

    settings = MatcherSettings(
        catalog_url="http://catalog",
        local_object_dir=Path(args.work_dir) / "objects",
        snapshot_on_shutdown=False,
        sync_interval_s=3600,
        max_body_bytes=2**30,
    )
    app = create_app(settings, transports={"catalog": httpx.ASGITransport(app=_empty_catalog())})

    async def run() -> tuple:
        async with app.router.lifespan_context(app):
            runtime = app.state.matcher
            while not runtime.loaded:
                await asyncio.sleep(0.01)
            runtime.gallery._indexes[tuple(KEY.values())] = (
                index  # the benchmark's gallery, not the catalogue's
            )
            async with httpx.AsyncClient(
                transport=httpx.ASGITransport(app=app), base_url="http://matcher"
            ) as client:

                async def call(chunk: np.ndarray) -> None:
                    queries = (
                        {"queries": chunk.tolist()}
                        if encoding == "json"
                        else {"queries_b64": [encode_vector(q) for q in chunk]}
                    )
                    response = await client.post("/v1/search", json={**KEY, **queries, "k": K})
                    response.raise_for_status()

                results = []
                # The service picks its own OpenMP threads per search (one for a single query).
                for batch, calls in ((1, args.queries), (BATCH, max(2, args.queries // BATCH))):
                    await call(data.queries[:batch])
                    latencies = []
                    for start in range(0, min(len(data.queries), batch * calls), batch):
                        chunk = data.queries[start : start + batch]
                        if len(chunk) < batch:
                            break
                        began = time.perf_counter()
                        await call(chunk)
                        latencies.append(time.perf_counter() - began)
                    results.append(rates(latencies, batch))
                return tuple(results)

    one, many = asyncio.run(run())
    return make_row(data, f"matcher/http-{encoding}/{index.kind}", 0.0, one, many, None, None, 0.0)


def _empty_catalog() -> FastAPI:
    """A catalogue with nothing in it: the HTTP rows swap the benchmark's gallery in after the load."""
    app = FastAPI()

    @app.get("/readyz")
    async def ready() -> dict:
        return {"ready": True}

    @app.get("/v1/internal/embeddings")
    async def no_embeddings() -> EmbeddingPage:
        return EmbeddingPage(records=[], next_cursor=None, head_seq=0)

    @app.get("/v1/internal/changes")
    async def no_changes() -> ChangePage:
        return ChangePage(changes=[], head_seq=0)

    return app


def sklearn_row(data: Dataset, exact: list[list[int]], args: argparse.Namespace) -> Row:
    from sklearn.neighbors import NearestNeighbors

    gc.collect()
    before = rss_bytes()
    began = time.perf_counter()
    knn = NearestNeighbors(algorithm="brute", metric="cosine").fit(data.gallery)
    build_s = time.perf_counter() - began
    rss_mb = (rss_bytes() - before) / 2**20
    # The seed paper's KNN returns images; ask for as many as the matcher's first FAISS request,
    # then keep the best image per individual, so both answer the same question.
    width = min(len(data.gallery), 4 * K * 2)

    def search(chunk: np.ndarray) -> list[list[int]]:
        _, rows = knn.kneighbors(chunk, n_neighbors=width)
        out = []
        for row in rows:
            seen: list[int] = []
            for individual in data.individuals[row]:
                if individual not in seen:
                    seen.append(int(individual))
            out.append(seen[:K])
        return out

    calls = max(2, args.sklearn_queries)
    one, many, found = search_rates(search, data.queries, (calls, max(1, calls // 16)))
    recall = individual_recall(found, exact[: len(found)])
    return make_row(data, "sklearn/brute-cosine", build_s, one, many, recall, data.gallery.itemsize * DIM, rss_mb)


# -- the run -----------------------------------------------------------------------------------


def bench_dataset(data: Dataset, args: argparse.Namespace) -> list[Row]:
    overrides = {
        "approximate_index_min_size": args.approximate_min_size,
        "ivf_nprobe": args.nprobe,
        "ivf_nlist": args.nlist,
    }
    default_policy = index_policy(MatcherSettings(**{k: v for k, v in overrides.items() if v is not None}))
    flat_policy = IndexPolicy(approximate_min_size=10**12)
    rows: list[Row] = []

    flat_row, flat_index, _ = matcher_row(data, "matcher", flat_policy, None, args, args.flat_queries)
    exact = exact_individuals(flat_index, data.queries[: args.queries])
    flat_row.recall_at_5 = 1.0
    rows.append(flat_row)
    _print_row(flat_row)
    if default_policy.kind_for(len(data.gallery), "flat") == "ivf" or args.force_ivf:
        del flat_index
        gc.collect()
        policy = replace(default_policy, approximate_min_size=2) if args.force_ivf else default_policy
        row, index, _ = matcher_row(data, "matcher", policy, exact, args)
        rows.append(row)
        _print_row(row)
        for nprobe in args.sweep_nprobe:
            rows.append(nprobe_row(data, index, nprobe, exact, args))
            _print_row(rows[-1])
        index._faiss.nprobe = policy.nprobe_for(index._faiss.nlist)
    else:
        index = flat_index
    if not args.no_http:
        for encoding in ("json", "b64"):
            rows.append(http_row(data, index, args, encoding))
            _print_row(rows[-1])
    del index
    gc.collect()
    if not args.no_sklearn:
        rows.append(sklearn_row(data, exact, args))
        _print_row(rows[-1])
    return rows


def _print_row(row: Row) -> None:
    recall = f"{row.recall_at_5:.4f}" if row.recall_at_5 is not None else "   -  "
    bpv = f"{row.bytes_per_vector:8.0f}" if row.bytes_per_vector is not None else "      - "
    print(
        f"{row.dataset:>22} {row.engine:>22} {row.build_s:8.1f} {row.batch1_qps:9.1f} "
        f"{row.batch1_p50_ms:8.2f} {row.batch1_p99_ms:8.2f} {row.batch64_qps:9.1f} "
        f"{row.batch64_p50_ms:9.2f} {row.batch64_p99_ms:9.2f} "
        f"{recall} {bpv} {row.rss_delta_mb:8.0f}",
        flush=True,
    )


def _print_header() -> None:
    print(
        f"{'dataset':>22} {'engine':>22} {'build_s':>8} {'qps@1':>9} {'p50@1':>8} {'p99@1':>8} {'qps@64':>9} "
        f"{'p50@64':>9} {'p99@64':>9} {'rec@5':>6} {'B/vec':>8} {'rss_MB':>8}"
    )


def ratios(rows: list[Row]) -> list[dict]:
    """matcher / sklearn queries/s per dataset, for the matcher's default index and its HTTP path."""
    out = []
    for dataset in dict.fromkeys(r.dataset for r in rows):
        mine = [r for r in rows if r.dataset == dataset]
        sk = next((r for r in mine if r.engine.startswith("sklearn")), None)
        if sk is None:
            continue
        chosen = [
            r for r in mine if r.engine.startswith("matcher/") and not r.engine.startswith("matcher/http")
        ][-1]
        entry = {
            "dataset": dataset,
            "matcher_engine": chosen.engine,
            "batch1_qps_ratio": chosen.batch1_qps / sk.batch1_qps,
            "batch64_qps_ratio": chosen.batch64_qps / sk.batch64_qps,
        }
        for http in (r for r in mine if r.engine.startswith("matcher/http")):
            encoding = http.engine.split("/")[1].removeprefix("http-")
            entry[f"http_{encoding}_batch1_qps_ratio"] = http.batch1_qps / sk.batch1_qps
            entry[f"http_{encoding}_batch64_qps_ratio"] = http.batch64_qps / sk.batch64_qps
        out.append(entry)
    return out


def parse_args() -> argparse.Namespace:
    parser = BenchmarkParser(__doc__, full="add a 1M gallery")
    parser.add_argument("--sizes", default="10000,100000", help="gallery sizes, comma separated")
    parser.add_argument("--queries", type=int, default=400, help="batch-1 queries timed per engine")
    parser.add_argument(
        "--flat-queries",
        type=int,
        default=100,
        help="batch-1 queries timed for the exact flat index (slow at 1M)",
    )
    parser.add_argument(
        "--sklearn-queries", type=int, default=100, help="batch-1 queries timed for scikit-learn (slow at 1M)"
    )
    parser.add_argument(
        "--nprobe", type=int, default=None, help="IVF lists probed (default: the matcher's setting)"
    )
    parser.add_argument("--nlist", type=int, default=None, help="IVF lists (default: the matcher's setting, about 2*sqrt(n))")
    parser.add_argument(
        "--approximate-min-size",
        type=int,
        default=None,
        help="size from which the matcher goes IVF (default: the matcher's setting)",
    )
    parser.add_argument("--force-ivf", action="store_true", help="measure IVF at every size")
    parser.add_argument(
        "--sweep-nprobe",
        type=lambda text: [int(v) for v in text.split(",") if v],
        default=[],
        help="also measure the IVF index at these nprobe values, e.g. 8,16,64",
    )
    parser.add_argument(
        "--batch1-threads", type=int, default=1, help="faiss OpenMP threads for batch-1 queries"
    )
    parser.add_argument(
        "--batch-threads",
        type=int,
        default=os.cpu_count() or 1,
        help="faiss OpenMP threads for batch-64 queries",
    )
    parser.add_argument("--no-sklearn", action="store_true")
    parser.add_argument("--no-http", action="store_true")
    parser.add_argument(
        "--real",
        type=Path,
        default=None,
        help="a ../shared/data folder (labels.csv + images/) to embed with the bundled model",
    )
    parser.add_argument("--real-limit", type=int, default=3000)
    parser.add_argument("--model-repository", type=Path, default=None)
    parser.add_argument("--work-dir", default="/tmp/finprint-bench-matcher")
    return parser.parse()


def main() -> None:
    args = parse_args()
    sizes = [int(s) for s in args.sizes.split(",") if s]
    if args.full and 1_000_000 not in sizes:
        sizes.append(1_000_000)
    print(
        f"faiss {faiss.__version__}, {os.cpu_count()} cores, batch-1 threads {args.batch1_threads}, "
        f"batch-{BATCH} threads {args.batch_threads}; latencies in ms",
        flush=True,
    )
    _print_header()
    rows: list[Row] = []
    for size in sizes:
        rows += bench_dataset(synthetic(size, args.queries), args)
        gc.collect()
    if args.real is not None:
        from finprint.paths import default_model_repository

        rows += bench_dataset(
            real_embeddings(args.real, args.real_limit, args.model_repository or default_model_repository()),
            args,
        )
    summary = ratios(rows)
    print("\nmatcher queries/s ÷ scikit-learn queries/s")
    for entry in summary:
        print(
            "  " + ", ".join(f"{k}={v:.1f}" if isinstance(v, float) else f"{k}={v}" for k, v in entry.items())
        )
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(
            json.dumps(
                {
                    "machine": {
                        "cores": os.cpu_count(),
                        "platform": platform.platform(),
                        "faiss": faiss.__version__,
                    },
                    "args": {k: str(v) for k, v in vars(args).items()},
                    "rows": [asdict(r) for r in rows],
                    "ratios": summary,
                },
                indent=2,
            )
        )
        print(f"results written to {args.json}")


if __name__ == "__main__":
    main()
