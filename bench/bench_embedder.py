"""Embedder throughput, side by side in one run on the same crops (images/s, batch 1 and 32):

- service over HTTP: ``finprint serve embedder`` (uvicorn) on loopback, the crops sent as JPEG
  multipart parts, decoded, batched and embedded by the service, answered as JSON; and the same
  service sent the decoded arrays as one ``.npy`` body (``/v1/embed/pixels``, Triton's contract),
  which does the raw column's work plus HTTP, batching and the JSON answer;
- service in process: the same app reached through ``httpx.ASGITransport`` (no sockets);
- onnxruntime, raw: ``InferenceSession.run`` on the already decoded arrays, with the service's
  session options; and the same with the decoding done in line (what the service also does);
- PyTorch eager (the seeds' way to serve) on the same weights: the ONNX file's, loaded into the
  training network (``finprint_train.warm_start``), or a training checkpoint's. It runs in a
  worker process under an interpreter with the ``train`` extra (this one by default; torch is
  not a serving dependency); skipped, saying why, if torch is missing.

    .venv/bin/python bench/bench_embedder.py [--count 64] [--rounds 3] [--threads 2] \\
        [--torch-checkpoint runs/lite0/final.pt] [--torch-python .venv/bin/python] [--json out.json]

The columns take turns, one pass each per round, so that the shared machine's other load falls
on all of them alike; each figure is the best of ``--rounds`` passes (the least disturbed one).
``1 x 32 conc.`` sends single-image requests from 32 concurrent clients (the service's
micro-batching at work); ``32 x 2 conc.`` keeps two 32-image requests in flight. A benchmark, not a test: it prints numbers and ratios and asserts nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from bench.arguments import BenchmarkParser

if TYPE_CHECKING:  # the torch worker runs under the training interpreter, which has no httpx
    import httpx

REPO = Path(__file__).resolve().parents[1]
DEFAULT_CROPS = REPO.parent / "shared" / "data" / "kaggle_humpback2019" / "images"
DEFAULT_TORCH_PYTHON = Path(sys.executable)
BATCHES = (1, 32)
CONCURRENT_CLIENTS = 32


def chunks(items: list, size: int) -> list[list]:
    return [items[i : i + size] for i in range(0, len(items), size)]


Pass = Callable[[], Awaitable[float]]
"""One timed pass over the crops; returns images per second."""


def timed(work: Callable[[], int]) -> Pass:
    async def run() -> float:
        started = time.perf_counter()
        count = work()
        return count / (time.perf_counter() - started)

    return run


def timed_async(work: Callable[[], Awaitable[int]]) -> Pass:
    async def run() -> float:
        started = time.perf_counter()
        count = await work()
        return count / (time.perf_counter() - started)

    return run


async def run_round_robin(passes: dict[str, Pass], rounds: int) -> dict[str, float]:
    """A warm-up pass of each column, then ``rounds`` rounds of one pass per column in turn, so
    that the machine's other load falls on every column alike; each column keeps its best pass."""
    best = {name: 0.0 for name in passes}
    for name, one_pass in passes.items():
        await one_pass()
    for _ in range(rounds):
        for name, one_pass in passes.items():
            best[name] = max(best[name], await one_pass())
    return best


def parts(crops: list[bytes]) -> list[tuple[str, tuple[str, bytes, str]]]:
    return [("images", (f"crop{i}.jpg", data, "image/jpeg")) for i, data in enumerate(crops)]


# --- onnxruntime ---------------------------------------------------------------------------------


def onnxruntime_passes(onnx_path: Path, arrays: np.ndarray, crops: list[bytes], size: int,
                       threads: int, trim_letterbox: bool) -> dict[str, Pass]:
    import onnxruntime as ort

    from finprint.imaging import ImageLimits, load_model_input
    from finprint.model_repository import session_options

    session = ort.InferenceSession(str(onnx_path), sess_options=session_options(threads, False),
                                   providers=["CPUExecutionProvider"])
    outputs = ["embedding", "species_probs"]
    limits = ImageLimits()
    passes: dict[str, Pass] = {}
    for batch in BATCHES:
        def arrays_only(batch: int = batch) -> int:
            for start in range(0, len(arrays), batch):
                session.run(outputs, {"images": arrays[start : start + batch]})
            return len(arrays)

        def with_decoding(batch: int = batch) -> int:
            for group in chunks(crops, batch):
                pixels = np.stack([load_model_input(c, size, limits, trim_letterbox=trim_letterbox).pixels
                                   for c in group])
                session.run(outputs, {"images": pixels})
            return len(crops)

        passes[f"onnxruntime_b{batch}"] = timed(arrays_only)
        passes[f"onnxruntime_decode_b{batch}"] = timed(with_decoding)
    return passes


# --- the service ---------------------------------------------------------------------------------


def service_env(model_repository: Path, threads: int) -> dict[str, str]:
    return {
        "FINPRINT_EMBEDDER_BACKEND": "onnxruntime",
        "FINPRINT_EMBEDDER_MODEL_REPOSITORY": str(model_repository),
        "FINPRINT_EMBEDDER_INTRA_OP_THREADS": str(threads),
        "FINPRINT_EMBEDDER_EXECUTION_PROVIDER": "cpu",
    }


Post = Callable[["httpx.AsyncClient", list], Awaitable["httpx.Response"]]
"""Sends one request's worth of inputs to the embedder."""


async def post_photos(client: httpx.AsyncClient, crops: list[bytes]) -> httpx.Response:
    return await client.post("/v1/embed", files=parts(crops))


async def post_pixels(client: httpx.AsyncClient, rows: list[np.ndarray]) -> httpx.Response:
    from finprint.schemas.pixels import PIXELS_MEDIA_TYPE, encode_pixels

    return await client.post("/v1/embed/pixels", content=encode_pixels(np.stack(rows)),
                             headers={"content-type": PIXELS_MEDIA_TYPE})


def client_passes(client, items: list, post: Post, prefix: str) -> dict[str, Pass]:
    def check(response) -> None:
        if response.status_code != 200:
            raise RuntimeError(f"the embedder answered {response.status_code}: {response.text[:300]}")

    passes: dict[str, Pass] = {}
    for batch in BATCHES:
        async def sequential(batch: int = batch) -> int:
            for group in chunks(items, batch):
                check(await post(client, group))
            return len(items)

        passes[f"{prefix}_b{batch}"] = timed_async(sequential)

    def concurrent(batch: int, clients: int) -> Pass:
        async def run() -> int:
            gate = asyncio.Semaphore(clients)

            async def one(group: list) -> None:
                async with gate:
                    check(await post(client, group))

            await asyncio.gather(*(one(group) for group in chunks(items, batch)))
            return len(items)

        return timed_async(run)

    # Single images from many clients: micro-batching gathers them. Batches of 32 two at a time:
    # one decodes while the other is in the model, as under a steady load.
    passes[f"{prefix}_b1x{CONCURRENT_CLIENTS}"] = concurrent(1, CONCURRENT_CLIENTS)
    passes[f"{prefix}_b32x2"] = concurrent(32, 2)
    return passes


@asynccontextmanager
async def service_in_process(env: dict[str, str]) -> AsyncIterator[httpx.AsyncClient]:
    import httpx

    from services.embedder.app import create_app
    from services.embedder.settings import EmbedderSettings

    os.environ.update(env)
    app = create_app(EmbedderSettings())
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://embedder", timeout=300) as client:
            yield client


@asynccontextmanager
async def service_over_http(env: dict[str, str], log_dir: Path) -> AsyncIterator[httpx.AsyncClient]:
    import httpx

    from finprint_testing.processes import ServerProcess, free_port

    port = free_port()
    server = ServerProcess(
        "embedder",
        [sys.executable, "-m", "finprint.cli", "--log-level", "WARNING", "serve", "embedder", "--host", "127.0.0.1",
         "--port", str(port)],
        log_dir / "embedder.log",
        env={**os.environ, **env},
        cwd=REPO,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        server.wait_ready(lambda: httpx.get(f"{url}/readyz").status_code == 200, 120)
        # Idle connections expire before uvicorn's 5 s keep-alive closes them: a request sent on a
        # connection the server is closing fails with a ReadError (the other columns' passes
        # leave these connections idle for seconds).
        limits = httpx.Limits(max_connections=CONCURRENT_CLIENTS, keepalive_expiry=1.0)
        async with httpx.AsyncClient(base_url=url, timeout=300, limits=limits) as client:
            yield client
    finally:
        server.stop()


# --- PyTorch eager (runs in the training environment) --------------------------------------------


@asynccontextmanager
async def torch_worker_process(torch_python: Path, weights: Path, arrays: np.ndarray, reference: np.ndarray,
                               threads: int, workdir: Path) -> AsyncIterator[tuple[dict[str, Pass], dict[str, object]]]:
    """A long-lived worker under the training interpreter, asked for one timed pass at a time.

    ``weights``: a training checkpoint (.pt) or the served ONNX file itself."""
    np.save(workdir / "arrays.npy", arrays)
    np.save(workdir / "reference.npy", reference)
    process = await asyncio.create_subprocess_exec(
        str(torch_python), __file__, "--torch-worker", str(workdir), "--torch-checkpoint", str(weights),
        "--threads", str(threads), cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)},
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    assert process.stdin and process.stdout and process.stderr

    async def answer() -> dict:
        line = await process.stdout.readline()
        if not line:
            raise RuntimeError(f"torch worker failed:\n{(await process.stderr.read()).decode()[-2000:]}")
        return json.loads(line)

    def one_pass(batch: int) -> Pass:
        async def run() -> float:
            process.stdin.write(f"{batch}\n".encode())
            await process.stdin.drain()
            return float((await answer())["images_per_s"])

        return run

    try:
        info = await answer()
        yield {f"torch_eager_b{batch}": one_pass(batch) for batch in BATCHES}, info
    finally:
        process.stdin.close()
        await process.wait()


def torch_network(weights: Path):
    """The training network with the weights of a checkpoint (.pt) or of an exported ONNX file."""
    from finprint_train.export import load_embedder_checkpoint
    from finprint_train.model import FinprintNet
    from finprint_train.warm_start import load_exported_embedder

    if weights.suffix != ".onnx":
        return load_embedder_checkpoint(weights)[0]
    card = json.loads((weights.parent.parent / "finprint.json").read_text())
    net = FinprintNet(card["backbone"], len(card["species"]), card["embedding_dim"], pretrained=False)
    load_exported_embedder(net, weights)
    return net.eval()


def torch_worker(workdir: Path, weights: Path, threads: int) -> None:
    """Runs under the training interpreter: the same network, eager, on the same arrays.

    Says first how far its outputs are from the ONNX file's, then answers each batch size read
    from stdin with the images/s of one pass.
    """
    import torch

    from finprint_train.model import ExportedEmbedder

    torch.set_num_threads(threads)
    model = ExportedEmbedder(torch_network(weights)).eval()
    arrays = torch.from_numpy(np.load(workdir / "arrays.npy"))
    reference = np.load(workdir / "reference.npy")
    with torch.inference_mode():
        embedding, _species = model(arrays[: len(reference)])
        diff = float(np.abs(embedding.numpy() - reference).max())
        print(json.dumps({"torch_vs_onnx_max_abs_diff": diff}), flush=True)
        for line in sys.stdin:
            batch = int(line)
            started = time.perf_counter()
            for start in range(0, len(arrays), batch):
                model(arrays[start : start + batch])
            print(json.dumps({"images_per_s": len(arrays) / (time.perf_counter() - started)}), flush=True)


# --- report --------------------------------------------------------------------------------------


def report(results: dict[str, object]) -> None:
    def rate(key: str) -> str:
        value = results.get(key)
        return f"{value:>10.1f}" if isinstance(value, float) else f"{'-':>10}"

    rows = [
        ("service over HTTP (uvicorn, loopback)", "service_http"),
        ("service over HTTP, decoded pixels (.npy)", "service_http_pixels"),
        ("service in process (ASGI)", "service_in_process"),
        ("onnxruntime raw (decoded arrays)", "onnxruntime"),
        ("onnxruntime raw + decoding in line", "onnxruntime_decode"),
        ("PyTorch eager (same weights)", "torch_eager"),
    ]
    print(f"\nembedder images/s: {results['model']}, input {results['input_size']} px, "
          f"{results['threads']} intra-op threads, {results['images']} crops, best of {results['rounds']}")
    print(f"{'':<40}{'batch 1':>10}{'batch 32':>10}{f'1 x {CONCURRENT_CLIENTS} conc.':>16}{'32 x 2 conc.':>14}")
    for label, key in rows:
        service = key.startswith("service")
        singles = rate(f"{key}_b1x{CONCURRENT_CLIENTS}") if service else ""
        pairs = rate(f"{key}_b32x2") if service else ""
        print(f"{label:<40}{rate(f'{key}_b1')}{rate(f'{key}_b32')}{singles:>16}{pairs:>14}")
    if results.get("torch") != "ok":
        print(f"torch: {results.get('torch')}")
    for key, value in results.items():
        if key.startswith("ratio_") or key == "torch_vs_onnx_max_abs_diff":
            print(f"{key}: {value:.4g}" if isinstance(value, float) else f"{key}: {value}")


def ratios(results: dict[str, object]) -> None:
    def ratio(a: str, b: str) -> None:
        if isinstance(results.get(a), float) and isinstance(results.get(b), float):
            results[f"ratio_{a}_over_{b}"] = results[a] / results[b]  # type: ignore[operator]

    ratio("service_http_b32x2", "onnxruntime_b32")
    ratio("service_http_pixels_b32x2", "onnxruntime_b32")
    for batch in BATCHES:
        ratio(f"service_http_b{batch}", f"onnxruntime_b{batch}")
        ratio(f"service_http_b{batch}", f"onnxruntime_decode_b{batch}")
        ratio(f"service_http_pixels_b{batch}", f"onnxruntime_b{batch}")
        ratio(f"service_in_process_b{batch}", f"onnxruntime_b{batch}")
        ratio(f"onnxruntime_b{batch}", f"torch_eager_b{batch}")


async def measure_all(args: argparse.Namespace, onnx_path: Path, size: int, crops: list[bytes], arrays: np.ndarray,
                      env: dict[str, str]) -> dict[str, object]:
    results: dict[str, object] = {}
    passes: dict[str, Pass] = {}
    async with AsyncExitStack() as stack:
        workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="bench-embedder-")))
        if "onnxruntime" not in args.skip:
            passes |= onnxruntime_passes(onnx_path, arrays, crops, size, args.threads, args.trim_letterbox)
        if "http" not in args.skip:
            client = await stack.enter_async_context(service_over_http(env, workdir))
            passes |= client_passes(client, crops, post_photos, "service_http")
            passes |= client_passes(client, list(arrays), post_pixels, "service_http_pixels")
        if "in_process" not in args.skip:
            client = await stack.enter_async_context(service_in_process(env))
            passes |= client_passes(client, crops, post_photos, "service_in_process")
        if "torch" not in args.skip:
            results["torch"] = torch_status(args.torch_python)
            if results["torch"] == "ok":
                import onnxruntime as ort

                weights = args.torch_checkpoint or onnx_path
                results["torch_weights"] = str(weights)
                reference = ort.InferenceSession(str(onnx_path)).run(["embedding"], {"images": arrays[:8]})[0]
                torch_passes, info = await stack.enter_async_context(
                    torch_worker_process(args.torch_python, weights, arrays, reference, args.threads, workdir))
                passes |= torch_passes
                results |= info
        results |= await run_round_robin(passes, args.rounds)
    return results


def torch_status(torch_python: Path) -> str:
    if not torch_python.exists():
        return f"not installed ({torch_python} missing)"
    probe = subprocess.run([str(torch_python), "-c", "import torch, efficientnet_lite_pytorch"], capture_output=True)
    return "ok" if probe.returncode == 0 else f"not installed (no torch in {torch_python}: pip install -e '.[train]')"


def main() -> None:
    parser = BenchmarkParser(__doc__.split("\n")[0])
    parser.add_argument("--model-repository", type=Path, default=REPO / "model_repository")
    parser.add_argument("--crops", type=Path, default=DEFAULT_CROPS, help="folder of JPEG crops")
    parser.add_argument("--count", type=int, default=64, help="how many crops (a multiple of 32)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2, help="intra-op threads for every column")
    parser.add_argument("--torch-python", type=Path, default=DEFAULT_TORCH_PYTHON)
    parser.add_argument("--torch-checkpoint", type=Path, default=None,
                        help="a training checkpoint for the PyTorch column (default: the ONNX file's own weights)")
    parser.add_argument("--skip", nargs="*", default=[], choices=["http", "in_process", "onnxruntime", "torch"])
    parser.add_argument("--torch-worker", type=Path, default=None, help=argparse.SUPPRESS)
    args = parser.parse()
    if args.torch_worker:
        torch_worker(args.torch_worker, args.torch_checkpoint, args.threads)
        return

    from finprint.imaging import ImageLimits, load_model_input
    from finprint.model_repository import locate_model
    from services.embedder.adapters.model_files import load_card

    files = locate_model(args.model_repository, "finprint_embedder", "")
    card = load_card(files.card)
    crops = [p.read_bytes() for p in sorted(args.crops.iterdir())[: args.count]]
    arrays = np.stack([load_model_input(c, card.input_size, ImageLimits(), trim_letterbox=card.trim_letterbox).pixels
                       for c in crops])
    results: dict[str, object] = {
        "model": f"finprint_embedder:{files.version}", "input_size": card.input_size, "threads": args.threads,
        "images": len(crops), "rounds": args.rounds, "cpu_cores": os.cpu_count(),
    }
    args.trim_letterbox = card.trim_letterbox
    env = service_env(args.model_repository, args.threads)
    results |= asyncio.run(measure_all(args, files.onnx, card.input_size, crops, arrays, env))
    ratios(results)
    report(results)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
