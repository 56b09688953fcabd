"""End to end: identify through the gateway of the whole system, and the embedded default's memory.

    .venv/bin/python -m bench.bench_e2e [--full] [--gallery 300] [--memory-gallery 100000] [--json out.json]

Part 1, the scaled deployment: the five services as SEPARATE processes on loopback (``finprint
serve``), on PostgreSQL and the S3 server (SeaweedFS), exactly as the end-to-end tests run them.
A gallery of real photos (humpback flukes, right-whale heads, belugas from ../shared/data) is
enrolled through the gateway with each photo's ``individual_id``, so every photo is indexed.
Then a bounded load generator (httpx, a fixed number of requests per level, never open-ended)
sends ``POST /v1/identify`` at concurrency 1, 8 and 32, for three kinds of real photos:

- ``crops``: held-out photos of the gallery's individuals (dataset crops, 200 to 768 px);
- ``2mp``: the full-resolution curvrank_examples photos re-encoded to 2 megapixels (in a temp dir);
- ``original``: the curvrank_examples photos of 3 MP and more, as taken (3 to 12 MP).

The share of time per stage comes from the services' own Prometheus metrics, scraped before and
after each level and differenced: ``finprint_http_request_duration_seconds`` per service and route,
``finprint_detector_inference_seconds`` and ``finprint_embedder_inference_seconds``. ``decode`` is
the detector's and the embedder's request time outside inference (upload parsing, image decoding,
resizing, and at concurrency the wait for the single inference thread or a micro-batch);
``gateway + network`` is the gateway's time outside its calls to the four services.

In the same run, the peer: the embedder's ONNX model from model_repository/ run directly with
onnxruntime (the service's session options) on the same photos, at batch 1 and 8 (the better of
the two is the peer); the detector's ONNX at batch 1 (what one identify also costs).

Part 2, the embedded default's memory: a 100k-image gallery with SYNTHETIC L2-normalised 512-d
vectors (clustered per individual) written straight into the embedded default's SQLite through the
catalog's own models and migrations (no 100k uploads), then ``finprint up`` on that data directory
as a process; once the matcher has rebuilt its indexes (readiness), a few identify requests, and
VmRSS / VmHWM from /proc. A benchmark, not a test: it prints numbers and ratios, asserts nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import hashlib
import io
import json
import os
import random
import subprocess
import sys
import tempfile
import time
import uuid
from collections import defaultdict
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path

import httpx
import numpy as np
from PIL import Image

from bench import SHARED_CORES_MODEL_SETTINGS
from bench.arguments import BenchmarkParser

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data"
GALLERY_SETS = (("kaggle_humpback2019", "HW"), ("noaa_rightwhale_heads", "RW"), ("beluga_2022", "BL"))
CURVRANK = DATA / "curvrank_examples" / "images"
TWO_MP = 2_000_000
ORIGINAL_MIN_PIXELS = 3_000_000
CONCURRENCY = (1, 8, 32)
PHOTOS_PER_ENROLMENT = 6
ENROL_CLIENTS = 4
ORG = "bench-e2e"
UNLIMITED = "1000000/minute"
# The benchmark sends far more than a user's quota; a deployment's limits are not what is measured.
RATE_LIMITS = {"FINPRINT_GATEWAY_RATE_LIMIT": UNLIMITED, "FINPRINT_GATEWAY_IDENTIFY_RATE_LIMIT": UNLIMITED}
QUIET = {
    f"FINPRINT_{s}_LOG_LEVEL": "WARNING" for s in ("CATALOG", "DETECTOR", "EMBEDDER", "MATCHER", "GATEWAY")
}
HTTP_LATENCY = "finprint_http_request_duration_seconds"
PROCESS_CPU = "process_cpu_seconds_total"
NOT_IDENTIFY_WORK = ("/healthz", "/readyz", "/metrics")


# --- photos ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Photo:
    """A JPEG photo (every photo here is one: the dataset's, or a re-encoding) and its bytes."""

    path: Path
    data: bytes


def _individuals(folder: Path) -> dict[str, list[Path]]:
    photos: dict[str, list[Path]] = defaultdict(list)
    with open(folder / "labels.csv", newline="") as handle:
        for row in csv.DictReader(handle):
            if row["individual_id"]:
                photos[row["individual_id"]].append(folder / "images" / row["image"])
    return {code: sorted(paths) for code, paths in photos.items() if len(paths) >= 2}


def gallery_and_queries(size: int, seed: int = 7) -> tuple[dict[str, list[Path]], list[Path]]:
    """Up to ``size`` gallery photos by catalogue code, and one held-out photo per individual.

    Individuals are taken in turn from each set (so all three species are indexed), each with up to
    PHOTOS_PER_ENROLMENT photos; the held-out photo is a query of an individual the gallery holds.
    """
    rng = random.Random(seed)
    queues = []
    for folder, prefix in GALLERY_SETS:
        individuals = _individuals(DATA / folder)
        codes = sorted(individuals)
        rng.shuffle(codes)
        queues.append([(f"{prefix}-{code}", individuals[code]) for code in codes])
    gallery: dict[str, list[Path]] = {}
    queries: list[Path] = []
    taken = 0
    for turn in range(max(len(q) for q in queues)):
        for queue in queues:
            if taken >= size or turn >= len(queue):
                continue
            code, paths = queue[turn]
            photos = paths[1 : 1 + min(PHOTOS_PER_ENROLMENT, size - taken)]
            gallery[code] = photos
            queries.append(paths[0])
            taken += len(photos)
        if taken >= size:
            break
    return gallery, queries


def reencode(path: Path, pixels: int, quality: int = 90) -> bytes:
    """The photo resized to about ``pixels`` (aspect kept), as a JPEG."""
    with Image.open(path) as image:
        rgb = image.convert("RGB")
        scale = (pixels / (rgb.width * rgb.height)) ** 0.5
        resized = rgb.resize((round(rgb.width * scale), round(rgb.height * scale)), Image.Resampling.LANCZOS)
    buffer = io.BytesIO()
    resized.save(buffer, "JPEG", quality=quality)
    return buffer.getvalue()


def query_classes(queries: list[Path], workdir: Path) -> dict[str, list[Photo]]:
    """The photo kinds the load is run with; the 2-MP copies are written to ``workdir`` (a temp dir)."""
    originals = sorted(p for p in CURVRANK.iterdir() if p.suffix.lower() in {".jpg", ".jpeg"})
    two_mp = []
    for path in originals:
        copy = workdir / f"{path.stem}-2mp.jpg"
        copy.write_bytes(reencode(path, TWO_MP))
        two_mp.append(Photo(copy, copy.read_bytes()))
    large = []
    for path in originals:
        with Image.open(path) as image:
            if image.width * image.height >= ORIGINAL_MIN_PIXELS:
                large.append(Photo(path, path.read_bytes()))
    return {
        "crops": [Photo(p, p.read_bytes()) for p in queries],
        "2mp": two_mp,
        "original": large,
    }


def megapixels(photos: list[Photo]) -> float:
    total = 0.0
    for photo in photos:
        with Image.open(io.BytesIO(photo.data)) as image:
            total += image.width * image.height / 1e6
    return total / len(photos)


# --- the load generator ------------------------------------------------------------------------


@dataclass
class LevelResult:
    photos: str
    concurrency: int
    requests: int
    ok: int
    errors: dict[str, int]
    with_animal: int
    """Answers with at least one detection: the whole pipeline ran (the others stop after the detector)."""
    with_candidates: int
    wall_s: float
    throughput_per_s: float
    p50_ms: float
    p95_ms: float
    p99_ms: float
    mean_ms: float
    p50_ms_with_animal: float | None
    p99_ms_with_animal: float | None
    stages_ms: dict[str, float] = field(default_factory=dict)
    stage_shares: dict[str, float] = field(default_factory=dict)
    cpu_ms: dict[str, float] = field(default_factory=dict)
    """CPU milliseconds per identify request, by process (each service, the load generator, the rest)."""


@dataclass
class Answer:
    seconds: float
    status: str
    animal: bool = False
    candidates: bool = False


async def send_identify(client: httpx.AsyncClient, photo: Photo) -> Answer:
    started = time.perf_counter()
    try:
        response = await client.post(
            "/v1/identify", files=[("image", (photo.path.name, photo.data, "image/jpeg"))]
        )
    except httpx.HTTPError as exc:
        return Answer(time.perf_counter() - started, type(exc).__name__)
    answer = Answer(time.perf_counter() - started, str(response.status_code))
    if response.status_code == 200:
        results = response.json().get("results") or []
        answer.animal = bool(results)
        answer.candidates = any(r.get("candidates") for r in results)
    return answer


async def run_level(
    client: httpx.AsyncClient,
    photos: list[Photo],
    requests: int,
    concurrency: int,
) -> tuple[list[Answer], float]:
    """Exactly ``requests`` identify calls with ``concurrency`` in flight; the answers and the wall time."""
    next_index = iter(range(requests))
    answers: list[Answer] = []

    async def worker() -> None:
        for index in next_index:
            answers.append(await send_identify(client, photos[index % len(photos)]))

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return answers, time.perf_counter() - started


def _percentile(seconds: list[float], q: float) -> float | None:
    return float(np.percentile(np.array(seconds) * 1000, q)) if seconds else None


def summarise(name: str, concurrency: int, answers: list[Answer], wall_s: float) -> LevelResult:
    ok = [a for a in answers if a.status == "200"]
    latencies = [a.seconds for a in ok]
    whole = [a.seconds for a in ok if a.animal]
    errors: dict[str, int] = defaultdict(int)
    for answer in answers:
        if answer.status != "200":
            errors[answer.status] += 1
    return LevelResult(
        photos=name,
        concurrency=concurrency,
        requests=len(answers),
        ok=len(ok),
        errors=dict(errors),
        with_animal=len(whole),
        with_candidates=sum(a.candidates for a in ok),
        wall_s=wall_s,
        throughput_per_s=len(ok) / wall_s,
        p50_ms=_percentile(latencies, 50) or float("nan"),
        p95_ms=_percentile(latencies, 95) or float("nan"),
        p99_ms=_percentile(latencies, 99) or float("nan"),
        mean_ms=float(np.mean(latencies) * 1000) if latencies else float("nan"),
        p50_ms_with_animal=_percentile(whole, 50),
        p99_ms_with_animal=_percentile(whole, 99),
    )


# --- the services' metrics ----------------------------------------------------------------------

Samples = dict[tuple[str, str, frozenset], float]
"""(service, sample name, labels) -> value: every _sum and _count of every histogram, and the
process's CPU seconds."""


async def scrape(client: httpx.AsyncClient, urls: dict[str, str]) -> Samples:
    from prometheus_client.parser import text_string_to_metric_families

    samples: Samples = {}
    for service, url in urls.items():
        text = (await client.get(f"{url}/metrics")).text
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                if sample.name.endswith(("_sum", "_count")) or sample.name == PROCESS_CPU:
                    samples[(service, sample.name, frozenset(sample.labels.items()))] = sample.value
    return samples


def difference(before: Samples, after: Samples) -> Samples:
    return {key: value - before.get(key, 0.0) for key, value in after.items()}


def seconds(delta: Samples, service: str, metric: str, **labels: str) -> float:
    """Sum of ``metric``'s observations at ``service`` whose labels include ``labels``."""
    wanted = set(labels.items())
    return sum(
        v
        for (s, name, have), v in delta.items()
        if s == service and name == f"{metric}_sum" and wanted <= have
    )


def catalog_seconds(delta: Samples) -> float:
    """The catalog's request time outside the matcher's change-log polling and the probes."""
    total = 0.0
    for (service, name, labels), value in delta.items():
        route = dict(labels).get("route", "")
        if (
            service == "catalog"
            and name == f"{HTTP_LATENCY}_sum"
            and not route.startswith("/v1/internal/")
            and route not in NOT_IDENTIFY_WORK
        ):
            total += value
    return total


def stage_times(delta: Samples, requests: int) -> tuple[dict[str, float], dict[str, float]]:
    """Milliseconds per identify request in each stage, and each stage's share of the gateway's time."""
    gateway = seconds(delta, "gateway", HTTP_LATENCY, route="/v1/identify")
    gateway_decode = seconds(delta, "gateway", "finprint_gateway_decode_seconds")
    # Photos' bytes or the gateway's decoded pixels: both routes of each model service.
    detect = sum(seconds(delta, "detector", HTTP_LATENCY, route=r) for r in ("/v1/detect", "/v1/detect/pixels"))
    detector = seconds(delta, "detector", "finprint_detector_inference_seconds")
    embed = sum(seconds(delta, "embedder", HTTP_LATENCY, route=r) for r in ("/v1/embed", "/v1/embed/pixels"))
    embedder = seconds(delta, "embedder", "finprint_embedder_inference_seconds")
    matcher = seconds(delta, "matcher", HTTP_LATENCY, route="/v1/search")
    catalog = catalog_seconds(delta)
    stages = {
        "decode": gateway_decode + (detect - detector) + (embed - embedder),
        "detector": detector,
        "embedder": embedder,
        "matcher": matcher,
        "catalog": catalog,
        "gateway + network": gateway - gateway_decode - detect - embed - matcher - catalog,
        "identify (gateway total)": gateway,
    }
    per_request = {k: v * 1000 / max(requests, 1) for k, v in stages.items()}
    shares = {k: v / gateway for k, v in stages.items() if gateway > 0 and k != "identify (gateway total)"}
    return per_request, shares


@dataclass(frozen=True)
class CpuClock:
    """CPU seconds so far: the machine's busy time (all processes) and this process's own."""

    machine_s: float
    own_s: float

    @classmethod
    def now(cls) -> CpuClock:
        fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
        ticks = [int(v) for v in fields]
        idle = ticks[3] + ticks[4]  # idle + iowait
        return cls((sum(ticks[:8]) - idle) / os.sysconf("SC_CLK_TCK"), time.process_time())


def cpu_times(delta: Samples, before: CpuClock, after: CpuClock, requests: int) -> dict[str, float]:
    """CPU milliseconds per identify request by process: on 2 shared cores this, not the wall time
    of a stage, says which process a faster pipeline must slim down."""
    services = {service: v for (service, name, _), v in delta.items() if name == PROCESS_CPU}
    load_generator = after.own_s - before.own_s
    other = (after.machine_s - before.machine_s) - sum(services.values()) - load_generator
    cpu = {**services, "load generator": load_generator, "other processes": max(0.0, other)}
    return {k: v * 1000 / max(requests, 1) for k, v in cpu.items()}


# --- the peer: the models through onnxruntime directly ------------------------------------------


def best_rate(work: Callable[[], None], images: int, rounds: int) -> float:
    """Images/s of the fastest of ``rounds`` passes of ``work`` (after one warm-up pass)."""
    best = 0.0
    work()
    for _ in range(rounds):
        started = time.perf_counter()
        work()
        best = max(best, images / (time.perf_counter() - started))
    return best


def _raw_embedder(photos: list[Photo], rounds: int, count: int = 64) -> dict[str, object]:
    from finprint.imaging import ImageLimits, load_model_input
    from finprint.model_repository import create_session, locate_model
    from services.embedder.adapters.model_files import load_card
    from services.embedder.settings import EmbedderSettings

    settings = EmbedderSettings()
    files = locate_model(settings.model_repository, "finprint_embedder", settings.model_version)
    card = load_card(files.card)
    session = create_session(files, settings)
    arrays = np.stack(
        [
            load_model_input(photos[i % len(photos)].data, card.input_size, ImageLimits()).pixels
            for i in range(count)
        ]
    )
    onnx = files.onnx.relative_to(REPO) if files.onnx.is_relative_to(REPO) else files.onnx
    result: dict[str, object] = {
        "embedder_model": f"{files.name}:{files.version}",
        "embedder_input": card.input_size,
        "onnx": str(onnx),
    }
    for batch in (1, 8):

        def run(batch: int = batch) -> None:
            for start in range(0, count, batch):
                session.run(["embedding", "species_probs"], {"images": arrays[start : start + batch]})

        result[f"embedder_b{batch}_images_per_s"] = best_rate(run, count, rounds)
    return result


def _raw_detector(photos: list[Photo], rounds: int, count: int = 16) -> dict[str, object]:
    from finprint.imaging import ImageLimits, load_model_input
    from services.detector.adapters.onnx_runtime import OnnxDetector
    from services.detector.settings import DetectorSettings

    detector = OnnxDetector(DetectorSettings())
    size = detector.card.input_size
    arrays = [
        load_model_input(photos[i % len(photos)].data, size, ImageLimits()).pixels for i in range(count)
    ]

    def detect_all() -> None:
        for pixels in arrays:
            detector.detect(pixels)

    return {
        "detector_model": f"{detector.info.name}:{detector.info.version}",
        "detector_input": size,
        "detector_b1_images_per_s": best_rate(detect_all, count, rounds),
    }


def raw_onnxruntime(photos: list[Photo], rounds: int) -> dict[str, object]:
    """Images/s of the embedder's ONNX at batch 1 and 8 and the detector's at batch 1 (as the service
    runs it), with onnxruntime directly on already-decoded inputs and the services' session options."""
    result = _raw_embedder(photos, rounds) | _raw_detector(photos, rounds)
    embedder = max(float(result["embedder_b1_images_per_s"]), float(result["embedder_b8_images_per_s"]))
    detector = float(result["detector_b1_images_per_s"])
    result["embedder_best_images_per_s"] = embedder
    result["models_only_photos_per_s"] = 1 / (1 / detector + 1 / embedder)
    return result


# --- part 1: the separate services --------------------------------------------------------------


def api_key(database_args: list[str], role: str = "contributor") -> str:
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "finprint.cli",
            "apikey",
            "create",
            "--org",
            ORG,
            "--role",
            role,
            *database_args,
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    return done.stdout.strip().splitlines()[-1]


@contextmanager
def separate_deployment(workdir: Path) -> Iterator[tuple[dict[str, str], str]]:
    """Postgres + S3 + the five services as processes; yields their URLs and a contributor's API key."""
    from finprint_testing.postgres import start_postgres
    from finprint_testing.s3 import start_s3_server
    from finprint_testing.system import separate_services

    with ExitStack() as stack:
        postgres = stack.enter_context(start_postgres())
        database_url = stack.enter_context(postgres.fresh_database())
        s3 = stack.enter_context(start_s3_server())
        storage = {
            "OBJECT_STORE": "s3",
            "S3_ENDPOINT": s3.endpoint,
            "S3_ACCESS_KEY": s3.access_key,
            "S3_SECRET_KEY": s3.secret_key,
            "S3_BUCKET": f"bench-e2e-{uuid.uuid4().hex[:8]}",
            "S3_SECURE": "false",
        }
        env = {
            "FINPRINT_CATALOG_DATABASE_URL": database_url,
            "FINPRINT_CATALOG_AUTO_MIGRATE": "true",
            "FINPRINT_GATEWAY_JWT_SECRET": "bench-secret-" + "x" * 32,
            **RATE_LIMITS,
            **QUIET,
            **SHARED_CORES_MODEL_SETTINGS,
            **{f"FINPRINT_CATALOG_{k}": v for k, v in storage.items()},
            **{f"FINPRINT_MATCHER_{k}": v for k, v in storage.items()},
        }
        system = stack.enter_context(separate_services(env, workdir, timeout_s=300))
        yield system.urls, api_key(["--database-url", database_url])


async def enrol_gallery(client: httpx.AsyncClient, gallery: dict[str, list[Path]]) -> dict[str, object]:
    """One encounter per individual (its photos, its catalogue code), ENROL_CLIENTS at a time."""
    gate = asyncio.Semaphore(ENROL_CLIENTS)
    failures: dict[str, int] = defaultdict(int)

    async def enrol(code: str, paths: list[Path]) -> int:
        async with gate:
            files = [("images", (p.name, p.read_bytes(), "image/jpeg")) for p in paths]
            response = await client.post(
                "/v1/encounters",
                files=files,
                data={"individual_id": code},
                headers={"Idempotency-Key": f"bench-{code}"},
            )
        if response.status_code != 201:
            failures[f"{response.status_code} {response.text[:120]}"] += 1
            return 0
        return len(paths)

    started = time.perf_counter()
    enrolled = sum(await asyncio.gather(*(enrol(code, paths) for code, paths in gallery.items())))
    wall = time.perf_counter() - started
    return {
        "photos": enrolled,
        "individuals": len(gallery),
        "wall_s": wall,
        "photos_per_s": enrolled / wall,
        "failures": dict(failures),
    }


async def measure_load(
    gateway: str, urls: dict[str, str], key: str, classes: dict[str, list[Photo]], counts: dict[int, int]
) -> list[LevelResult]:
    results = []
    # Idle connections are dropped before uvicorn's 5 s keep-alive ends, so no request races a close.
    limits = httpx.Limits(
        max_connections=max(CONCURRENCY) + 4,
        max_keepalive_connections=max(CONCURRENCY) + 4,
        keepalive_expiry=1.0,
    )
    async with (
        httpx.AsyncClient(base_url=gateway, headers={"X-API-Key": key}, timeout=120, limits=limits) as client,
        httpx.AsyncClient(timeout=30) as scraper,
    ):
        for name, photos in classes.items():
            await run_level(client, photos, min(4, len(photos)), 1)  # warm-up: caches, connections, sessions
            for concurrency in CONCURRENCY:
                requests = counts[concurrency]
                before, clock_before = await scrape(scraper, urls), CpuClock.now()
                answers, wall = await run_level(client, photos, requests, concurrency)
                clock_after = CpuClock.now()
                delta = difference(before, await scrape(scraper, urls))
                level = summarise(name, concurrency, answers, wall)
                level.stages_ms, level.stage_shares = stage_times(delta, requests)
                level.cpu_ms = cpu_times(delta, clock_before, clock_after, requests)
                results.append(level)
                print_level(level)
    return results


def separate_services_part(args: argparse.Namespace, workdir: Path) -> dict[str, object]:
    gallery, queries = gallery_and_queries(args.gallery)
    classes = query_classes(queries, workdir)
    out: dict[str, object] = {
        "model_settings": SHARED_CORES_MODEL_SETTINGS,
        "photo_classes": {
            name: {
                "photos": len(photos),
                "mean_megapixels": megapixels(photos),
                "source": "held-out photos of the gallery's individuals (kaggle_humpback2019, noaa_rightwhale_heads, "
                "beluga_2022)"
                if name == "crops"
                else "curvrank_examples re-encoded to 2 MP (JPEG q90, temp dir)"
                if name == "2mp"
                else "curvrank_examples photos of 3 MP and more, as taken",
            }
            for name, photos in classes.items()
        }
    }
    counts = {1: args.requests_c1, 8: args.requests, 32: args.requests}
    with separate_deployment(workdir) as (urls, key):
        gateway = urls["gateway"]
        print(f"services up: {', '.join(f'{k} {v}' for k, v in urls.items())}", flush=True)

        async def enrol_then_load() -> tuple[dict[str, object], list[LevelResult]]:
            async with httpx.AsyncClient(base_url=gateway, headers={"X-API-Key": key}, timeout=300) as client:
                enrolment = await enrol_gallery(client, gallery)
            print(f"gallery enrolled: {enrolment}", flush=True)
            return enrolment, await measure_load(gateway, urls, key, classes, counts)

        enrolment, levels = asyncio.run(enrol_then_load())
        out["enrolment"] = enrolment
        out["levels"] = [asdict(level) for level in levels]
        out["raw_onnxruntime"] = raw_onnxruntime(classes["2mp"] + classes["crops"], args.rounds)
        print(f"raw onnxruntime: {out['raw_onnxruntime']}", flush=True)
    return out


# --- part 2: the embedded default's memory with a 100k gallery ----------------------------------


def seed_synthetic_gallery(database_url: str, size: int, seed: int = 0) -> dict[str, object]:
    """``size`` indexed images (one annotation per image, about 4 images per individual) with synthetic
    L2-normalised vectors, written through the catalog's models after its own migrations."""
    from sqlalchemy import insert

    from finprint.model_repository import locate_model
    from finprint.paths import default_model_repository
    from finprint.schemas.catalog import ApiKeyCreate, OrganisationCreate
    from services.catalog.adapters.db import migrate
    from services.catalog.adapters.db.engine import make_engine, make_session_factory
    from services.catalog.adapters.db.models import Annotation, Embedding, Encounter, Individual, Media, utcnow
    from services.catalog.accounts import service as accounts

    files = locate_model(default_model_repository(), "finprint_embedder")
    card = files.read_card()
    species = [s for s in card["species"] if s != "not_cetacean"]
    model_version = f"{files.name}:{files.version}"
    rng = np.random.default_rng(seed)
    engine = make_engine(database_url)
    started = time.perf_counter()
    try:
        migrate.upgrade(engine)
        with make_session_factory(engine)() as session:
            org = accounts.create_organisation(session, OrganisationCreate(slug=ORG, name=ORG))
            _, key = accounts.create_api_key(session, org.id, ApiKeyCreate(name="bench", role="viewer"))
            now = utcnow()
            individuals_n = max(1, size // 4)
            individual_ids = [str(uuid.uuid4()) for _ in range(individuals_n)]
            individual_species = [species[i % len(species)] for i in range(individuals_n)]
            centres = rng.standard_normal((individuals_n, 512), dtype=np.float32)
            session.execute(
                insert(Individual.__table__),
                [
                    {
                        "id": iid,
                        "org_id": org.id,
                        "catalogue_code": f"SYN-{n:06d}",
                        "species_key": individual_species[n],
                        "created_at": now,
                        "updated_at": now,
                        "sex": "unknown",
                        "status": "active",
                    }
                    for n, iid in enumerate(individual_ids)
                ],
            )
            encounter_ids = [str(uuid.uuid4()) for _ in range(individuals_n)]
            session.execute(
                insert(Encounter.__table__),
                [{"id": e, "org_id": org.id, "created_at": now} for e in encounter_ids],
            )
            owner = rng.integers(0, individuals_n, size=size)
            for start in range(0, size, 10_000):
                rows = range(start, min(size, start + 10_000))
                noise = rng.standard_normal((len(rows), 512), dtype=np.float32)
                vectors = centres[owner[start : start + len(rows)]] + 0.8 * noise
                vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
                media, annotations, embeddings = [], [], []
                for row, vector in zip(rows, vectors):
                    who = int(owner[row])
                    media_id = str(uuid.uuid4())
                    media.append(
                        {
                            "id": media_id,
                            "org_id": org.id,
                            "encounter_id": encounter_ids[who],
                            "object_key": f"synthetic/{row}",
                            "sha256": hashlib.sha256(b"%d" % row).hexdigest(),
                            "content_type": "image/jpeg",
                            "size_bytes": 0,
                            "width": 1600,
                            "height": 1200,
                            "created_at": now,
                        }
                    )
                    annotations.append(
                        {
                            "id": str(uuid.uuid4()),
                            "org_id": org.id,
                            "media_id": media_id,
                            "individual_id": individual_ids[who],
                            "box_x": 0.0,
                            "box_y": 0.0,
                            "box_width": 1600.0,
                            "box_height": 1200.0,
                            "view": "fluke",
                            "species_key": individual_species[who],
                            "species_score": 0.9,
                            "created_at": now,
                            "updated_at": now,
                        }
                    )
                    embeddings.append(
                        {
                            "id": annotations[-1]["id"],
                            "org_id": org.id,
                            "annotation_id": annotations[-1]["id"],
                            "model_version": model_version,
                            "vector": vector.astype("<f4").tobytes(),
                            "change_seq": 0,
                            "created_at": now,
                        }
                    )
                session.execute(insert(Media.__table__), media)
                session.execute(insert(Annotation.__table__), annotations)
                session.execute(insert(Embedding.__table__), embeddings)
            session.commit()
    finally:
        engine.dispose()
    return {
        "images": size,
        "individuals": individuals_n,
        "species": species,
        "model_version": model_version,
        "seed_s": time.perf_counter() - started,
        "api_key": key,
    }


def process_memory(pid: int) -> dict[str, float]:
    """VmRSS and VmHWM (MiB) of the process, and VmRSS summed over it and its descendants."""

    def status(p: int) -> dict[str, float]:
        fields = {}
        for line in Path(f"/proc/{p}/status").read_text().splitlines():
            name, _, value = line.partition(":")
            if name in ("VmRSS", "VmHWM"):
                fields[name] = int(value.split()[0]) / 1024
        return fields

    def descendants(p: int) -> list[int]:
        children = []
        for task in Path(f"/proc/{p}/task").iterdir():
            children += [int(c) for c in (task / "children").read_text().split()]
        return children + [d for c in children for d in descendants(c)]

    main = status(pid)
    tree = sum(status(p).get("VmRSS", 0.0) for p in [pid, *descendants(pid)])
    return {"vm_rss_mib": main["VmRSS"], "vm_hwm_mib": main["VmHWM"], "tree_rss_mib": tree}


def embedded_memory_part(args: argparse.Namespace, workdir: Path, photos: list[Photo]) -> dict[str, object]:
    from finprint.embedded import embedded_environment
    from finprint_testing.system import embedded_system

    data_dir = workdir / "embedded-data"
    seeded = seed_synthetic_gallery(
        embedded_environment(data_dir)["FINPRINT_CATALOG_DATABASE_URL"], args.memory_gallery
    )
    key = str(seeded.pop("api_key"))
    print(f"synthetic gallery seeded: {seeded}", flush=True)
    started = time.perf_counter()
    env = {**RATE_LIMITS, **QUIET}
    with embedded_system(data_dir, workdir, env=env, timeout_s=args.memory_timeout) as system:
        ready_s = time.perf_counter() - started
        pid = system.processes["gateway"].pid
        at_ready = process_memory(pid)

        async def identify_some() -> tuple[list[Answer], float]:
            async with httpx.AsyncClient(
                base_url=system.gateway_url, headers={"X-API-Key": key}, timeout=120
            ) as client:
                await run_level(client, photos, 2, 1)
                return await run_level(client, photos, args.requests_c1, 1)

        answers, wall = asyncio.run(identify_some())
        after = process_memory(pid)
    level = summarise("2mp", 1, answers, wall)
    result = {
        "gallery": seeded,
        "vectors": "clustered around one centre per individual, L2-normalised, 512-d",
        "ready_s": ready_s,
        "rss_at_ready": at_ready,
        "rss_after_identify": after,
        "identify_2mp_c1": asdict(level),
    }
    print(f"embedded default: {result}", flush=True)
    return result


# --- output --------------------------------------------------------------------------------------


def print_level(level: LevelResult) -> None:
    stages = " ".join(f"{k.split(' ')[0]}={v:.1f}" for k, v in level.stages_ms.items())
    print(
        f"{level.photos:>9} c={level.concurrency:<3} n={level.requests:<4} ok={level.ok:<4} "
        f"animal={level.with_animal:<4} candidates={level.with_candidates:<4} "
        f"{level.throughput_per_s:7.2f}/s p50={level.p50_ms:7.1f} "
        f"p95={level.p95_ms:7.1f} p99={level.p99_ms:7.1f} ms | ms/request: {stages}"
        + " | CPU ms/request: " + " ".join(f"{k.split(' ')[0]}={v:.1f}" for k, v in level.cpu_ms.items())
        + (f" | errors {level.errors}" if level.errors else ""),
        flush=True,
    )


def ratios(results: dict[str, object]) -> None:
    separate = results.get("separate")
    if not isinstance(separate, dict) or "raw_onnxruntime" not in separate:
        return
    raw = separate["raw_onnxruntime"]
    for level in separate["levels"]:
        if level["concurrency"] == 8:
            level["ratio_to_raw_embedder"] = level["throughput_per_s"] / raw["embedder_best_images_per_s"]
            level["ratio_to_raw_models"] = level["throughput_per_s"] / raw["models_only_photos_per_s"]
            print(
                f"{level['photos']:>9} c=8: identify {level['throughput_per_s']:.2f}/s = "
                f"{level['ratio_to_raw_embedder']:.2f} x raw embedder (best of batch 1 and 8, "
                f"{raw['embedder_best_images_per_s']:.1f} images/s), {level['ratio_to_raw_models']:.2f} x raw "
                f"detector+embedder ({raw['models_only_photos_per_s']:.1f} photos/s)"
            )


def parse_args() -> argparse.Namespace:
    parser = BenchmarkParser(__doc__, full="5,000 enrolled photos and more requests per level (default: quick sizes)")
    parser.add_size("--gallery", int, quick=300, full=5000, help="photos to enrol")
    parser.add_size("--requests-c1", int, quick=30, full=200, help="identify requests at concurrency 1, per photo kind")
    parser.add_size("--requests", int, quick=64, full=400,
                    help="identify requests at concurrency 8 and 32, per photo kind")
    parser.add_argument(
        "--memory-gallery",
        type=int,
        default=100_000,
        help="synthetic images in the embedded default's gallery (0 skips part 2)",
    )
    parser.add_argument("--memory-timeout", type=float, default=900, help="seconds allowed for its start")
    parser.add_argument("--skip-load", action="store_true", help="skip part 1 (the separate services)")
    parser.add_argument(
        "--rounds", type=int, default=3, help="passes of the raw onnxruntime peer (best kept)"
    )
    return parser.parse()


def main() -> None:
    args = parse_args()
    results: dict[str, object] = {
        "mode": "full" if args.full else "quick",
        "cpu_cores": os.cpu_count(),
        "gallery": args.gallery,
        "requests_c1": args.requests_c1,
        "requests_c8_c32": args.requests,
    }
    with tempfile.TemporaryDirectory(prefix="finprint-bench-e2e-") as tmp:
        workdir = Path(tmp)
        if not args.skip_load:
            started = time.perf_counter()
            results["separate"] = separate_services_part(args, workdir)
            results["separate"]["wall_s"] = time.perf_counter() - started  # type: ignore[index]
            ratios(results)
        if args.memory_gallery > 0:
            two_mp = [Photo(p, reencode(p, TWO_MP)) for p in sorted(CURVRANK.iterdir())[:8]]
            started = time.perf_counter()
            results["embedded_memory"] = embedded_memory_part(args, workdir, two_mp)
            results["embedded_memory"]["wall_s"] = time.perf_counter() - started  # type: ignore[index]
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=2, default=str) + "\n")
        print(f"results written to {args.json}")


if __name__ == "__main__":
    main()
