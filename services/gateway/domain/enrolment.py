"""The metadata of an enrolment form, validated before any photo is analysed."""

from __future__ import annotations

from datetime import datetime

from pydantic import AwareDatetime, Field, model_validator

from finprint.schemas.common import NOTES_MAX_LENGTH, Inbound, SingleLine


class EncounterForm(Inbound):
    """The form fields of ``POST /v1/encounters`` (and of a stored identify)."""

    observed_at: AwareDatetime | None = Field(None, description="ISO 8601 with a time zone.",
                                              examples=["2024-07-14T09:32:00-07:00"])
    latitude: float | None = Field(None, ge=-90, le=90)
    longitude: float | None = Field(None, ge=-180, le=180)
    location: str | None = Field(None, max_length=200)
    observer: str | None = Field(None, max_length=200)
    notes: str | None = Field(None, max_length=NOTES_MAX_LENGTH)
    individual_id: SingleLine | None = Field(None, min_length=1, max_length=64,
                                      description="Catalogue code of the animal when known; a new code creates it.")

    @model_validator(mode="after")
    def _both_coordinates_or_none(self) -> EncounterForm:
        if (self.latitude is None) != (self.longitude is None):
            raise ValueError("give both latitude and longitude, or neither")
        return self

    def catalog_encounter(self, uploaded_by: str) -> dict:
        """The catalog's EncounterCreate for these fields."""
        observed: datetime | None = self.observed_at
        return {
            "occurred_at": observed.isoformat() if observed else None,
            "latitude": self.latitude, "longitude": self.longitude, "location_name": self.location,
            "observer": self.observer, "notes": self.notes, "created_by": uploaded_by,
        }
