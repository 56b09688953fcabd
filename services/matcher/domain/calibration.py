"""Calibrated probabilities and the auto-accept cut, from the embedder's model card.

``finprint calibrate`` fits, per species on the validation individuals, a Platt map from the top
candidate's score to the probability that it is the animal, and measures the precision of taking
the top candidate above each score cut. An organisation's precision target picks the lowest cut
whose validation precision reaches it: a match above it may be confirmed without review. Both
hold only for the model version they were fitted on and for the scoring rule of the card.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from finprint.cuts import lowest_lasting_cut
from finprint.schemas.matcher import AutoAcceptCut


@dataclass(frozen=True)
class PrecisionCurve:
    """Validation precision and coverage of accepting the top candidate at or above each score cut."""

    cuts: Sequence[float]
    precision: Sequence[float]
    coverage: Sequence[float]

    def cut_for(self, target: float) -> int | None:
        """The index of the lowest cut whose precision reaches ``target`` and stays there above; None
        when none does (the rule ``finprint calibrate`` measured its test precision with)."""
        return lowest_lasting_cut(self.precision, target)


def _logistic(a: float, b: float, score: float) -> float:
    x = a * score + b
    return 1.0 / (1.0 + math.exp(-x)) if x >= 0 else math.exp(x) / (1.0 + math.exp(x))


@dataclass(frozen=True)
class SpeciesCalibration:
    """Platt maps of the top candidate's score: ``a``, ``b`` to P(it is the animal), ``new`` to
    P(the animal is new); and the auto-accept curve."""

    a: float
    b: float
    curve: PrecisionCurve | None = None
    new: tuple[float, float] | None = None

    def probability(self, score: float) -> float:
        return _logistic(self.a, self.b, score)

    def new_probability(self, score: float) -> float | None:
        return None if self.new is None else _logistic(*self.new, score)

    def auto_accept(self, target: float, top_score: float | None) -> AutoAcceptCut:
        index = None if self.curve is None else self.curve.cut_for(target)
        if index is None or self.curve is None:
            return AutoAcceptCut(precision_target=target, accepted=False)
        cut = float(self.curve.cuts[index])
        return AutoAcceptCut(
            precision_target=target, cut=cut, probability_cut=round(self.probability(cut), 6),
            validation_precision=float(self.curve.precision[index]),
            validation_coverage=float(self.curve.coverage[index]),
            accepted=top_score is not None and top_score >= cut,
        )


@dataclass(frozen=True)
class Calibration:
    """The card's calibration for one model version (``name:version``, as embeddings carry it)."""

    model_version: str | None = None
    by_species: Mapping[str, SpeciesCalibration] = field(default_factory=dict)
    duplicate_cuts: Mapping[str, float] = field(default_factory=dict)
    """Per species: the gallery-pair score above which two individuals may be one (finprint.galleries)."""

    def duplicate_cut(self, model_version: str, species_group: str) -> float | None:
        if model_version != self.model_version:
            return None
        return self.duplicate_cuts.get(species_group)

    def of(self, model_version: str, species_group: str) -> SpeciesCalibration | None:
        """The species' calibration, when it was fitted on the model that made the query's embedding."""
        if model_version != self.model_version:
            return None
        return self.by_species.get(species_group)


def calibration_from_card(card: Mapping) -> Calibration:
    """``probability_calibration`` (top-candidate fits and auto-accept curves) and
    ``duplicate_calibration`` of a finprint.json."""
    section = card.get("probability_calibration") or {}
    curves = (section.get("auto_accept") or {}).get("by_species") or {}
    by_species = {}
    for species, fits in (section.get("by_species") or {}).items():
        top = fits.get("top_candidate")
        if not top:
            continue
        raw = curves.get(species)
        curve = PrecisionCurve(raw["cuts"], raw["precision"], raw["coverage"]) if raw else None
        new = fits.get("new_individual")
        by_species[str(species)] = SpeciesCalibration(float(top["a"]), float(top["b"]), curve,
                                                      (float(new["a"]), float(new["b"])) if new else None)
    version = f"{card['name']}:{card['version']}" if card.get("name") and card.get("version") else None
    duplicates = {str(species): float(entry["cut"])
                  for species, entry in ((card.get("duplicate_calibration") or {}).get("by_species") or {}).items()}
    return Calibration(version, by_species, duplicates)
