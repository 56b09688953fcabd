"""A search request answered: candidates by individual, new-individual probability and ranking."""

from __future__ import annotations

from finprint.schemas.matcher import Candidate, QueryResult, SearchRequest, SearchResponse
from services.matcher.domain.gallery import Gallery
from services.matcher.domain.ranking import IndividualScoring, NewIndividualRule
from services.matcher.domain.thresholds import ThresholdBook


def identify(gallery: Gallery, thresholds: ThresholdBook, request: SearchRequest) -> SearchResponse:
    scoring = IndividualScoring(thresholds.model.centroid_weight)
    per_query, info = gallery.search(request, request.matrix(), request.k, scoring)
    rule = NewIndividualRule(
        threshold=thresholds.threshold_for(request.org_id, request.species_group),
        temperature=thresholds.model.temperature,
    )
    results = [
        QueryResult(
            candidates=[
                Candidate(individual_id=c.individual_id, score=c.score, best_embedding_id=c.best_embedding_id)
                for c in candidates
            ],
            new_individual=rule.probability(candidates[0].score if candidates else None),
            ranking=rule.ranking(candidates, request.k),
            threshold=rule.threshold,
        )
        for candidates in per_query
    ]
    return SearchResponse(results=results, index=info,
                          serving_version=gallery.serving_version(request.org_id, request.species_group),
                          kept_versions=gallery.kept_versions(request.org_id, request.species_group))
