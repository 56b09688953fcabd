"""The model generation rows as the matcher and the API see them."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from finprint.schemas.embeddings import ShardGeneration
from services.catalog.adapters.db.models import ModelGeneration


def generations(session: Session, org_id: str | None = None) -> list[ShardGeneration]:
    query = select(ModelGeneration).order_by(ModelGeneration.org_id, ModelGeneration.species_group,
                                              ModelGeneration.state)
    if org_id:
        query = query.where(ModelGeneration.org_id == org_id)
    return [ShardGeneration(org_id=g.org_id, species_group=g.species_group, model_version=g.model_version,
                            state=g.state) for g in session.scalars(query)]
