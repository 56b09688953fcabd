"""Figures of an organisation's catalogue for charts: individuals by species, sightings by month (and
those without a date, so the months and the undated add up to all), the review queue by decision."""

from __future__ import annotations

from sqlalchemy import extract, func, select
from sqlalchemy.orm import Session

from finprint.schemas.catalog import CatalogueStats, MonthCount
from services.catalog.adapters.db.models import Encounter, Identification, Individual, Media


def catalogue_stats(session: Session, org_id: str) -> CatalogueStats:
    by_species = session.execute(
        select(Individual.species_key, func.count())
        .where(Individual.org_id == org_id, Individual.status == "active")
        .group_by(Individual.species_key)
    ).all()
    year = extract("year", Encounter.occurred_at)
    month = extract("month", Encounter.occurred_at)
    by_month = session.execute(
        select(year, month, func.count())
        .where(Encounter.org_id == org_id, Encounter.occurred_at.is_not(None))
        .group_by(year, month)
        .order_by(year, month)
    ).all()
    by_decision = session.execute(
        select(Identification.decision, func.count())
        .where(Identification.org_id == org_id)
        .group_by(Identification.decision)
    ).all()
    return CatalogueStats(
        individuals_by_species={species: count for species, count in by_species},
        encounters_by_month=[MonthCount(month=f"{int(y):04d}-{int(m):02d}", count=c) for y, m, c in by_month],
        identifications_by_decision={decision: count for decision, count in by_decision},
        media=_count(session, Media, org_id),
        encounters=_count(session, Encounter, org_id),
        encounters_undated=session.scalar(
            select(func.count()).select_from(Encounter)
            .where(Encounter.org_id == org_id, Encounter.occurred_at.is_(None))
        ) or 0,
    )


def _count(session: Session, model: type[Media | Encounter], org_id: str) -> int:
    return session.scalar(select(func.count()).select_from(model).where(model.org_id == org_id)) or 0
