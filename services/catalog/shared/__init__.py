"""What every domain of the catalog shares: the request's context and database session, organisation
scoping, paging, idempotent creation and the problems the rules raise."""
