"""Which new-individual threshold applies to a search.

Most specific first: the organisation's override for the species group, the organisation's
override for all its species groups, the model's threshold for the species group, the model's
global threshold. The model's values come from the embedder's ``finprint.json`` (calibrated by
the evaluation); organisations override them through the API.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from dataclasses import dataclass, field

from finprint.schemas.matcher import OrgThresholds
from services.matcher.domain.calibration import Calibration


@dataclass(frozen=True)
class ModelThresholds:
    default: float
    by_species: Mapping[str, float] = field(default_factory=dict)
    temperature: float = 0.05
    centroid_weight: float = 0.0
    """How individuals were scored when these thresholds were chosen (``IndividualScoring``)."""
    calibration: Calibration = field(default_factory=Calibration)
    """Calibrated probabilities and auto-accept cuts, fitted under the same scoring rule."""


class ThresholdBook:
    """The model's thresholds plus every organisation's overrides; safe to use from many threads."""

    def __init__(self, model: ModelThresholds) -> None:
        self.model = model
        self._overrides: dict[str, OrgThresholds] = {}
        self._lock = threading.Lock()

    def threshold_for(self, org_id: str, species_group: str) -> float:
        with self._lock:
            override = self._overrides.get(org_id)
        if override is not None:
            if species_group in override.by_species_group:
                return override.by_species_group[species_group]
            if override.default is not None:
                return override.default
        return self.model.by_species.get(species_group, self.model.default)

    def overrides_of(self, org_id: str) -> OrgThresholds:
        with self._lock:
            return self._overrides.get(org_id) or OrgThresholds(org_id=org_id, default=None)

    def with_override(self, org_id: str, threshold: float, species_group: str | None) -> OrgThresholds:
        """The organisation's overrides with one more applied (not stored: the caller persists, then sets)."""
        current = self.overrides_of(org_id)
        if species_group is None:
            return current.model_copy(update={"default": threshold})
        return current.model_copy(
            update={"by_species_group": {**current.by_species_group, species_group: threshold}}
        )

    def without_override(self, org_id: str, species_group: str | None) -> OrgThresholds:
        current = self.overrides_of(org_id)
        if species_group is None:
            return current.model_copy(update={"default": None})
        remaining = {g: t for g, t in current.by_species_group.items() if g != species_group}
        return current.model_copy(update={"by_species_group": remaining})

    def set(self, overrides: OrgThresholds) -> None:
        with self._lock:
            self._overrides[overrides.org_id] = overrides

    def replace_all(self, overrides: Mapping[str, OrgThresholds]) -> None:
        with self._lock:
            self._overrides = dict(overrides)
