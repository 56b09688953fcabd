"""Alembic migrations of the catalogue (a package so they ship with an installed finprint)."""
