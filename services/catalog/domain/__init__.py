"""The catalogue's rules: no HTTP here. Functions take a SQLAlchemy session (and the object store
where bytes are involved), scope every query by organisation, and leave committing to the caller
so that one request is one transaction."""
