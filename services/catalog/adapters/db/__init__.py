"""The catalogue's database: models, engine and sessions, migrations."""
