from __future__ import annotations

from pydantic_settings import SettingsConfigDict

from finprint.settings import ServiceSettings


class DetectorSettings(ServiceSettings):
    """Settings of the detector (env prefix ``FINPRINT_DETECTOR_``)."""

    model_config = SettingsConfigDict(env_prefix="FINPRINT_DETECTOR_", extra="ignore")
