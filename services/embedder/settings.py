from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, field_validator
from pydantic_settings import NoDecode, SettingsConfigDict

from finprint.imaging import ImageLimitSettings
from finprint.model_repository import OnnxModelSettings
from finprint.settings import ServiceSettings


class EmbedderSettings(ServiceSettings, OnnxModelSettings, ImageLimitSettings):
    """Settings of the embedder (env prefix ``FINPRINT_EMBEDDER_``)."""

    model_config = SettingsConfigDict(env_prefix="FINPRINT_EMBEDDER_", extra="ignore", protected_namespaces=())

    backend: Literal["onnxruntime", "triton"] = Field(
        "onnxruntime",
        description="Where the model runs: onnxruntime in this process, or a Triton Inference Server (GPU nodes).",
    )
    model_name: str = Field("finprint_embedder", description="Embedder model name (in the repository and in Triton).")
    triton_url: str = Field(
        "localhost:8001", description="Triton endpoint as host:port (Triton's gRPC port is 8001, HTTP 8000)."
    )
    triton_protocol: Literal["grpc", "http"] = Field("grpc", description="Protocol for Triton.")
    triton_timeout_s: float = Field(30.0, gt=0, description="Timeout of one Triton inference call, seconds.")
    max_batch_size: int = Field(
        32, ge=1, description="Largest batch sent to the model in one inference call (onnxruntime: gathered "
        "from concurrent requests; Triton: larger requests are split, Triton batches server-side)."
    )
    batch_timeout_ms: float = Field(
        2.0, ge=0, description="onnxruntime backend: how long a batch waits for more requests before it runs."
    )
    extra_model_versions: Annotated[list[str], NoDecode] = Field(
        [], description="More version directories served beside `model_version`, comma-separated (e.g. `3`): "
        "a request names one with `?model_version=`. During a model upgrade the embedder serves the old and "
        "the new version; see docs/model-upgrades.md.",
    )
    max_images_per_request: int = Field(64, ge=1, description="Most images in one /v1/embed or /v1/embed/pixels request.")

    @field_validator("extra_model_versions", mode="before")
    @classmethod
    def _comma_separated(cls, value: object) -> object:
        if isinstance(value, str):
            return [v.strip() for v in value.split(",") if v.strip()]
        return value
