"""A search request answered: candidates by individual, new-individual probability and ranking."""

from __future__ import annotations

from finprint.galleries import gallery_pairs
from finprint.schemas.matcher import (
    AutoAcceptCut,
    Candidate,
    DuplicatePair,
    DuplicatesRequest,
    DuplicatesResponse,
    QueryResult,
    SearchRequest,
    SearchResponse,
)
from services.matcher.domain.calibration import SpeciesCalibration
from services.matcher.domain.gallery import Gallery
from services.matcher.domain.ranking import IndividualScoring, NewIndividualRule
from services.matcher.domain.thresholds import ThresholdBook


def _auto_accept(calibrated: SpeciesCalibration | None, target: float | None,
                 top_score: float | None) -> AutoAcceptCut | None:
    if target is None:
        return None
    if calibrated is None:  # no calibration for this model and species: nothing is accepted unseen
        return AutoAcceptCut(precision_target=target, accepted=False)
    return calibrated.auto_accept(target, top_score)


def _new_individual(calibrated: SpeciesCalibration | None, rule: NewIndividualRule, top_score: float | None) -> float:
    """The calibrated P(the animal is new) where the card has it for the species and model; else the
    logistic around the threshold (an empty gallery: 1, whatever the animal is)."""
    fitted = None if calibrated is None or top_score is None else calibrated.new_probability(top_score)
    return rule.probability(top_score) if fitted is None else round(fitted, 6)


def identify(gallery: Gallery, thresholds: ThresholdBook, request: SearchRequest) -> SearchResponse:
    scoring = IndividualScoring(thresholds.model.centroid_weight)
    per_query, info = gallery.search(request, request.matrix(), request.k, scoring)
    rule = NewIndividualRule(
        threshold=thresholds.threshold_for(request.org_id, request.species_group),
        temperature=thresholds.model.temperature,
    )
    calibrated = thresholds.model.calibration.of(request.model_version, request.species_group)
    results = []
    for candidates in per_query:
        top = candidates[0].score if candidates else None
        results.append(QueryResult(
            candidates=[
                Candidate(individual_id=c.individual_id, score=c.score, best_embedding_id=c.best_embedding_id)
                for c in candidates
            ],
            new_individual=_new_individual(calibrated, rule, top),
            ranking=rule.ranking(candidates, request.k),
            threshold=rule.threshold,
            top_candidate_probability=None if calibrated is None or top is None else round(
                calibrated.probability(top), 6),
            auto_accept=_auto_accept(calibrated, request.precision_target, top),
        ))
    return SearchResponse(results=results, index=info,
                          serving_version=gallery.serving_version(request.org_id, request.species_group),
                          kept_versions=gallery.kept_versions(request.org_id, request.species_group))


def duplicates(gallery: Gallery, thresholds: ThresholdBook, request: DuplicatesRequest) -> DuplicatesResponse:
    """Pairs of the index's individuals whose galleries score at least the cut, best first."""
    cut = request.min_score
    if cut is None:
        cut = thresholds.model.calibration.duplicate_cut(request.model_version, request.species_group)
    photos = gallery.photos(request)
    if photos is None or cut is None:
        return DuplicatesResponse(cut=cut, individuals=0 if photos is None else len(set(photos[1])), pairs=[])
    embedding_ids, owners, vectors = photos
    pairs = gallery_pairs(vectors, owners, thresholds.model.centroid_weight, min_score=cut)[: request.limit]
    return DuplicatesResponse(cut=cut, individuals=len(set(owners)), pairs=[
        DuplicatePair(individual_a=p.a, individual_b=p.b, score=p.score, best_photo_similarity=p.best,
                      centroid_similarity=p.centroid, embedding_a=embedding_ids[p.photo_a],
                      embedding_b=embedding_ids[p.photo_b])
        for p in pairs])
