from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from finprint.paths import default_model_repository
from finprint.settings import ServiceSettings


class DetectorSettings(ServiceSettings):
    """Settings of the detector (env prefix ``FINPRINT_DETECTOR_``)."""

    model_config = SettingsConfigDict(env_prefix="FINPRINT_DETECTOR_", extra="ignore", protected_namespaces=())

    model_repository: Path = Field(
        default_factory=default_model_repository,
        description="Triton-layout model repository holding <model_name>/<version>/model.onnx and finprint.json "
        "(default: the model_repository/ bundled with the project).",
    )
    model_name: str = Field("finprint_detector", description="Detector model in the repository.")
    model_version: str = Field("", description='Model version directory; "" takes the highest numbered one.')
    max_image_bytes: int = Field(25 * 1024 * 1024, gt=0, description="Largest photo accepted, bytes (413 beyond).")
    max_image_pixels: int = Field(
        64_000_000, gt=0, description="Largest photo accepted, pixels, checked from the header before decoding (413)."
    )
    box_margin: float = Field(
        0.05, ge=0.0, le=1.0, description="Fraction of the box's size added on each side of the heatmap box."
    )
    execution_provider: Literal["auto", "cpu", "cuda"] = Field(
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
