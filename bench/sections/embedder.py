"""Embedder (issue 4): the service against raw onnxruntime and PyTorch eager (bench_embedder)."""

from __future__ import annotations

from bench.markdown import repo_relative, table
from bench.targets import EMBEDDER_WITHIN_15, TORCH_EAGER, Target

TITLE = "Embedder: service against raw onnxruntime and PyTorch eager (issue 4)"


EMBEDDER_ROWS = (
    ("service over HTTP (uvicorn, loopback), JPEG crops", "service_http"),
    ("service over HTTP, decoded pixels (`/v1/embed/pixels`)", "service_http_pixels"),
    ("service in process (ASGI), JPEG crops", "service_in_process"),
    ("onnxruntime raw (decoded arrays) — the peer", "onnxruntime"),
    ("onnxruntime raw + decoding in line", "onnxruntime_decode"),
    ("PyTorch eager, same weights", "torch_eager"),
)


def best_service_rate(data: dict, prefix: str) -> tuple[str, float] | None:
    """The better of a service's batch-32 columns (sequential, or two requests in flight)."""
    rates = [(key, data[key]) for key in (f"{prefix}_b32", f"{prefix}_b32x2") if isinstance(data.get(key), float)]
    return max(rates, key=lambda kv: kv[1], default=None)


def service_overhead_target(data: dict) -> Target:
    """Issue 4's service-vs-raw target, like for like: decoded pixels in both (the service's
    pixels route); the JPEG route against raw onnxruntime decoding the same crops in line."""
    raw, raw_decoding = data.get("onnxruntime_b32"), data.get("onnxruntime_decode_b32")
    pixels, photos = best_service_rate(data, "service_http_pixels"), best_service_rate(data, "service_http")
    if not (pixels and isinstance(raw, float)):
        return Target.of(EMBEDDER_WITHIN_15, "not measured", None)
    share = pixels[1] / raw
    measured = (f"{share:.2f} x raw, both on decoded pixels ({pixels[1]:.1f} vs {raw:.1f} images/s; "
                f"column `{pixels[0].removeprefix('service_http_')}`)")
    if photos and isinstance(raw_decoding, float):
        measured += (f"; JPEG crops, which the service decodes: {photos[1] / raw_decoding:.2f} x raw onnxruntime "
                     f"decoding the same crops in line, {photos[1] / raw:.2f} x raw on arrays")
    reason = "" if share >= 0.85 else "HTTP, batching and the JSON answer cost more than 15% on these cores"
    return Target.of(EMBEDDER_WITHIN_15, measured, share >= 0.85, reason)


def render(data: dict, targets: list[Target], full: bool) -> str:
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
    measured = f"{eager[0]:.1f} and {eager[1]:.1f} images/s" if None not in eager else f"not measured: {torch}"
    targets.append(Target.of(TORCH_EAGER, measured, True if None not in eager else None, figure_only=True))
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
