from __future__ import annotations

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from finprint.model_repository import OnnxModelSettings
from finprint.settings import ServiceSettings


class DetectorSettings(ServiceSettings, OnnxModelSettings):
    """Settings of the detector (env prefix ``FINPRINT_DETECTOR_``)."""

    model_config = SettingsConfigDict(env_prefix="FINPRINT_DETECTOR_", extra="ignore", protected_namespaces=())

    model_name: str = Field("finprint_detector", description="Detector model in the repository.")
    max_image_bytes: int = Field(25 * 1024 * 1024, gt=0, description="Largest photo accepted, bytes (413 beyond).")
    max_image_pixels: int = Field(
        64_000_000, gt=0, description="Largest photo accepted, pixels, checked from the header before decoding (413)."
    )
    box_margin: float = Field(
        0.05, ge=0.0, le=1.0, description="Fraction of the box's size added on each side of the heatmap box."
    )
