"""``finprint quantize``: an int8 version of a shipped ONNX model, calibrated on real photos.

Static quantization with onnxruntime's tools (``onnxruntime.quantization.quantize_static``):
weights int8 (per output channel by default), activations uint8 with ranges from a calibration
pass over photos of the *training* split only (``split_by_individual`` with the default
``SplitConfig`` over ``DEFAULT_DATASETS``: the validation and test individuals, and the held-back
negatives, never calibrate), decoded as the services decode them (``load_model_input``). The
result is a new version folder in another repository, with its own card saying what it was made
from, so it can be measured and served (onnxruntime or Triton) beside the fp32 version; it
reaches users only through the re-embedding path of a model migration (its embeddings are a new
``finprint_embedder:<N>``).

Measured choices (docs/models.md, docs/performance.md): QDQ format (onnxruntime fuses the
QuantizeLinear/DequantizeLinear pairs into int8 kernels at load time), per-channel weights,
uint8 activations with int8 weights (the VNNI path on x86), the input normalisation and the
float tail (pooling, embedding head, L2 norm, softmax) left in float.
"""

from __future__ import annotations

import json
import logging
import random
import shutil
import tempfile
from collections import defaultdict
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from datetime import date
from pathlib import Path
from typing import Any, Literal

import numpy as np

from finprint.imaging import ImageLimits, load_model_input
from finprint.model_repository import CARD_FILE, MODEL_FILE, latest_version, locate_model
from finprint_train.data import Sample, SplitConfig, load_datasets, split_by_individual

log = logging.getLogger("finprint_train.quantize")

QuantFormat = Literal["qdq", "qoperator"]
CalibrationMethod = Literal["minmax", "entropy", "percentile"]


@dataclass(frozen=True)
class QuantizeOptions:
    format: QuantFormat = "qdq"
    per_channel: bool = True
    calibration_photos: int = 256
    calibration_method: CalibrationMethod = "minmax"
    exclude_first: bool = False
    """Leave the stem convolution (the first Conv) in float."""
    exclude_last: bool = False
    """Leave the last Conv (the head before pooling) in float."""
    op_types: tuple[str, ...] = ("Conv", "MatMul", "Gemm", "Mul", "Add", "Sigmoid")
    """Operator types quantized; the others stay float."""
    seed: int = 0
    batch: int = 16


@dataclass
class QuantizeReport:
    source: str
    output: Path
    version: str
    options: QuantizeOptions
    calibration: dict[str, int] = field(default_factory=dict)
    onnx_bytes: int = 0


def calibration_samples(data_dir: Path, count: int, seed: int = 0, datasets: Sequence[str] | None = None,
                        split_config: SplitConfig = SplitConfig()) -> list[Sample]:
    """``count`` photos of the training split, drawn in turn from each dataset folder.

    The split is the one every shipped model kept unseen (``split_by_individual``, default
    config): validation and test individuals and held-back negatives are never drawn."""
    from finprint_train.evaluation.protocol import DEFAULT_DATASETS

    split = split_by_individual(load_datasets(data_dir, list(datasets or DEFAULT_DATASETS)), split_config)
    by_dataset: dict[str, list[Sample]] = defaultdict(list)
    for sample in split.train:
        by_dataset[sample.dataset].append(sample)
    rng = random.Random(seed)
    pools = []
    for name in sorted(by_dataset):
        pool = sorted(by_dataset[name], key=lambda s: s.path.name)
        rng.shuffle(pool)
        pools.append(pool)
    chosen: list[Sample] = []
    while len(chosen) < count and any(pools):
        for pool in pools:
            if pool and len(chosen) < count:
                chosen.append(pool.pop())
    return chosen


def model_inputs(samples: Sequence[Sample], size: int, trim_letterbox: bool) -> np.ndarray:
    """The photos as the services feed the models: uint8 RGB [N, size, size, 3]."""
    return np.stack([
        load_model_input(s.path.read_bytes(), size, ImageLimits(), trim_letterbox=trim_letterbox).pixels
        for s in samples
    ])


class _Batches:
    """A CalibrationDataReader over decoded photos, ``batch`` at a time."""

    def __init__(self, pixels: np.ndarray, input_name: str, batch: int) -> None:
        self._chunks: Iterator[np.ndarray] = iter([pixels[i : i + batch] for i in range(0, len(pixels), batch)])
        self._name = input_name

    def get_next(self) -> dict[str, np.ndarray] | None:
        chunk = next(self._chunks, None)
        return None if chunk is None else {self._name: chunk}

    def __iter__(self) -> Iterator[dict[str, np.ndarray]]:
        while (batch := self.get_next()) is not None:
            yield batch


def _nodes_to_exclude(model_path: Path, options: QuantizeOptions) -> list[str]:
    """Float islands: everything before the stem convolution (the cast and normalisation of the
    uint8 input) and, when asked, the stem and the last convolution."""
    import onnx

    graph = onnx.load(str(model_path)).graph
    convs = [n for n in graph.node if n.op_type == "Conv"]
    excluded = []
    for node in graph.node:
        if node is convs[0]:
            break
        excluded.append(node.name)
    if options.exclude_first:
        excluded.append(convs[0].name)
    if options.exclude_last:
        excluded.append(convs[-1].name)
    return excluded


def quantize_file(source: Path, output: Path, pixels: np.ndarray, options: QuantizeOptions) -> None:
    """One ONNX file to its int8 twin, calibrated on ``pixels`` (uint8 NHWC model inputs)."""
    import onnx
    from onnxruntime.quantization import CalibrationMethod as OrtCalibration
    from onnxruntime.quantization import QuantFormat as OrtFormat
    from onnxruntime.quantization import QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    with tempfile.TemporaryDirectory(prefix="finprint-quantize-") as tmp:
        prepared = Path(tmp) / "prepared.onnx"
        # Constant folding and ONNX shape inference first, as onnxruntime recommends (its symbolic
        # shape inference fails on the L2 normalisation's Expand, and is not needed): the static
        # padding sub-graphs become constants, and every tensor gets the shape the tools need.
        quant_pre_process(str(source), str(prepared), skip_symbolic_shape=True)
        input_name = onnx.load(str(prepared)).graph.input[0].name
        quantize_static(
            str(prepared),
            str(output),
            _Batches(pixels, input_name, options.batch),
            quant_format=OrtFormat.QDQ if options.format == "qdq" else OrtFormat.QOperator,
            op_types_to_quantize=list(options.op_types),
            per_channel=options.per_channel,
            activation_type=QuantType.QUInt8,
            weight_type=QuantType.QInt8,
            nodes_to_exclude=_nodes_to_exclude(prepared, options),
            calibrate_method={"minmax": OrtCalibration.MinMax, "entropy": OrtCalibration.Entropy,
                              "percentile": OrtCalibration.Percentile}[options.calibration_method],
            extra_options={"CalibMovingAverage": False},
        )


def quantize_model(source_repository: Path, name: str, output_repository: Path, data_dir: Path,
                   options: QuantizeOptions = QuantizeOptions(), version: str = "",
                   output_version: str = "") -> QuantizeReport:
    """Write ``output_repository/<name>/<N>/`` (model.onnx and its own finprint.json) and the
    model's config.pbtxt beside it, N one above the source's version unless ``output_version``."""
    files = locate_model(source_repository, name, version)
    card = files.read_card()
    samples = calibration_samples(data_dir, options.calibration_photos, options.seed)
    log.info("calibrating %s:%s on %d training-split photos", name, files.version, len(samples))
    pixels = model_inputs(samples, int(card["input_size"]), bool(card.get("trim_letterbox", False)))
    model_dir = output_repository / name
    new_version = output_version or _next_version(output_repository, name, files.version)
    version_dir = model_dir / new_version
    version_dir.mkdir(parents=True, exist_ok=True)
    quantize_file(files.onnx, version_dir / MODEL_FILE, pixels, options)
    config = files.onnx.parent.parent / "config.pbtxt"
    if config.exists():
        shutil.copy2(config, model_dir / "config.pbtxt")
    calibration = dict(sorted(_count_by_dataset(samples).items()))
    report = QuantizeReport(f"{name}:{files.version}", version_dir / MODEL_FILE, new_version, options, calibration,
                            (version_dir / MODEL_FILE).stat().st_size)
    (version_dir / CARD_FILE).write_text(json.dumps(_int8_card(card, report), indent=2) + "\n")
    log.info("wrote %s (%d bytes)", report.output, report.onnx_bytes)
    return report


def _next_version(repository: Path, name: str, source_version: str) -> str:
    try:
        highest = int(latest_version(repository, name))
    except FileNotFoundError:
        highest = 0
    return str(max(highest, int(source_version)) + 1)


def _count_by_dataset(samples: Sequence[Sample]) -> dict[str, int]:
    counts: dict[str, int] = defaultdict(int)
    for sample in samples:
        counts[sample.dataset] += 1
    return counts


def _int8_card(card: dict[str, Any], report: QuantizeReport) -> dict[str, Any]:
    out = dict(card)
    out["version"] = report.version
    out["precision"] = "int8"
    out["created"] = date.today().isoformat()
    out["onnx_bytes"] = report.onnx_bytes
    out.pop("onnx_vs_torch_max_abs_diff", None)
    out["quantization"] = {
        "from": report.source,
        "tool": "onnxruntime.quantization.quantize_static",
        **{k: (list(v) if isinstance(v, tuple) else v) for k, v in asdict(report.options).items()},
        "activations": "uint8", "weights": "int8",
        "calibration_photos_by_dataset": report.calibration,
        "calibration_split": "training split of split_by_individual (default SplitConfig, DEFAULT_DATASETS)",
    }
    return out
