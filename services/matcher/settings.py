from __future__ import annotations

from pydantic_settings import SettingsConfigDict

from finprint.settings import ServiceSettings


class MatcherSettings(ServiceSettings):
    """Settings of the matcher (env prefix ``FINPRINT_MATCHER_``)."""

    model_config = SettingsConfigDict(env_prefix="FINPRINT_MATCHER_", extra="ignore")
