"""The FastAPI dependencies every domain's routes declare: the catalog's context, the request's database
session, the organisation of the path, and the paging parameters.

Routes are plain ``def``: FastAPI runs them in its thread pool, with a synchronous SQLAlchemy session
per request; each request commits once, at the end, so it changes everything it means to or nothing.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, Query, Request
from sqlalchemy.orm import Session

from finprint.schemas.catalog import OFFSET_MAX
from services.catalog.shared.context import Catalog
from services.catalog.shared.scoping import get_organisation


def catalog_context(request: Request) -> Catalog:
    return request.app.state.catalog


CatalogContext = Annotated[Catalog, Depends(catalog_context)]


def database_session(context: CatalogContext) -> Iterator[Session]:
    with context.sessions() as session:
        yield session


DbSession = Annotated[Session, Depends(database_session)]


def require_org(org_id: str, db: DbSession) -> str:
    """The organisation of the path, which must exist; every query of a route filters by it."""
    get_organisation(db, org_id)
    return org_id


OrgId = Annotated[str, Depends(require_org)]

Offset = Annotated[int, Query(ge=0, le=OFFSET_MAX)]


def page_limit(context: CatalogContext, limit: Annotated[int, Query(ge=1, le=OFFSET_MAX)] = 100) -> int:
    """The page size asked for, at most the catalog's ``PAGE_SIZE_MAX``."""
    return min(limit, context.settings.page_size_max)


Limit = Annotated[int, Depends(page_limit)]
