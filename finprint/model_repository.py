"""Models in a Triton-layout repository, run in process with onnxruntime.

``<repository>/<name>/<version>/model.onnx`` with ``finprint.json`` (the model's card: input size,
labels, thresholds) next to the version or beside ``config.pbtxt``. The detector and the embedder
load their models through here; onnxruntime is imported only when a session is made, so services
without it (the gateway, the matcher) can still read cards.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, Field

from finprint.paths import default_model_repository

if TYPE_CHECKING:
    import onnxruntime as ort

log = logging.getLogger("finprint.models")
MODEL_FILE = "model.onnx"
CARD_FILE = "finprint.json"
ExecutionProvider = Literal["auto", "cpu", "cuda"]


class OnnxModelSettings(BaseModel):
    """Settings of a service that runs a model from the repository (mixed into its settings class)."""

    model_repository: Path = Field(
        default_factory=default_model_repository,
        description="Triton-layout model repository holding <model_name>/<version>/model.onnx and finprint.json "
        "(default: the model_repository/ bundled with the project).",
    )
    model_version: str = Field(
        "", description='Model version directory; "" takes the highest numbered one (pinned at startup).'
    )
    execution_provider: ExecutionProvider = Field(
        "auto", description="onnxruntime execution provider: auto takes CUDA when onnxruntime-gpu sees a GPU."
    )
    intra_op_threads: int = Field(
        0, ge=0, description="onnxruntime threads per inference; 0 lets onnxruntime use one per physical core."
    )
    allow_spinning: bool = Field(
        False,
        description="Let idle onnxruntime threads busy-wait for the next inference: lower latency on a "
        "dedicated machine, but it takes CPU from image decoding on a shared one.",
    )


@dataclass(frozen=True)
class ModelFiles:
    name: str
    version: str
    onnx: Path
    card: Path

    def read_card(self) -> dict[str, Any]:
        return json.loads(self.card.read_text())


def latest_version(repository: Path, name: str) -> str:
    model_dir = repository / name
    versions = sorted(int(p.name) for p in model_dir.glob("*") if p.name.isdigit() and (p / MODEL_FILE).exists())
    if not versions:
        raise FileNotFoundError(f"no {name}/<version>/{MODEL_FILE} in {repository}")
    return str(versions[-1])


def locate_model(repository: Path, name: str, version: str = "") -> ModelFiles:
    """The files of ``name`` at ``version`` ("" = highest numbered). The ONNX file itself may be
    absent where Triton serves the model and only the card is read here."""
    version = version or latest_version(repository, name)
    model_dir = repository / name
    # A version may carry its own card; otherwise the model's card describes every version.
    card = next((p for p in (model_dir / version / CARD_FILE, model_dir / CARD_FILE) if p.exists()), None)
    if card is None:
        raise FileNotFoundError(f"no {CARD_FILE} for {name} version {version} in {repository}")
    return ModelFiles(name, version, model_dir / version / MODEL_FILE, card)


def providers_for(preference: ExecutionProvider) -> list[str]:
    import onnxruntime as ort

    available = ort.get_available_providers()
    if preference != "cpu" and "CUDAExecutionProvider" in available:
        return ["CUDAExecutionProvider", "CPUExecutionProvider"]
    if preference == "cuda":
        log.warning("CUDA requested but this onnxruntime has no CUDA provider (install onnxruntime-gpu)")
    return ["CPUExecutionProvider"]


def session_options(intra_op_threads: int, allow_spinning: bool) -> ort.SessionOptions:
    """The options the services run with (the benchmarks' raw-onnxruntime columns use them too)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.intra_op_num_threads = intra_op_threads
    options.inter_op_num_threads = 1
    options.add_session_config_entry("session.intra_op.allow_spinning", "1" if allow_spinning else "0")
    return options


def create_session(files: ModelFiles, settings: OnnxModelSettings) -> ort.InferenceSession:
    """An onnxruntime session for the model, logging which execution provider runs it."""
    import onnxruntime as ort

    session = ort.InferenceSession(
        str(files.onnx),
        sess_options=session_options(settings.intra_op_threads, settings.allow_spinning),
        providers=providers_for(settings.execution_provider),
    )
    log.info("model loaded", extra={"fields": {"model": f"{files.name}:{files.version}", "path": str(files.onnx),
                                                "provider": session.get_providers()[0]}})
    return session
