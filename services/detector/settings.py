from __future__ import annotations

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from finprint.imaging import ImageLimitSettings
from finprint.model_repository import OnnxModelSettings
from finprint.settings import ServiceSettings


class DetectorSettings(ServiceSettings, OnnxModelSettings, ImageLimitSettings):
    """Settings of the detector (env prefix ``FINPRINT_DETECTOR_``)."""

    model_config = SettingsConfigDict(env_prefix="FINPRINT_DETECTOR_", extra="ignore", protected_namespaces=())

    model_name: str = Field("finprint_detector", description="Detector model in the repository.")
    box_margin: float = Field(
        0.05, ge=0.0, le=1.0, description="Fraction of the box's size added on each side of the heatmap box."
    )
