"""The migrations run both ways on both databases, and describe exactly the models."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Engine, inspect, select, text

from finprint_testing.postgres import PostgresServer
from services.catalog.adapters.db import migrate
from services.catalog.adapters.db.engine import make_engine, make_session_factory
from services.catalog.adapters.db.models import Base, Species
from services.catalog.accounts import service as accounts

pytestmark = pytest.mark.servers


@pytest.fixture(params=["sqlite", "postgres"])
def empty_engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    """A database of its own: going down to base must not disturb the other tests' database."""
    if request.param == "sqlite":
        engine = make_engine(f"sqlite:///{tmp_path / 'roundtrip.db'}")
        yield engine
        engine.dispose()
        return
    server: PostgresServer = request.getfixturevalue("postgres_server")
    with server.fresh_database() as url:
        engine = make_engine(url)
        yield engine
        engine.dispose()


def _drift(engine: Engine) -> list:
    with engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        return compare_metadata(context, Base.metadata)


def test_upgrade_downgrade_upgrade_round_trip(empty_engine: Engine) -> None:
    migrate.upgrade(empty_engine)
    assert migrate.current_revision(empty_engine) == "0005"
    assert set(Base.metadata.tables) <= set(inspect(empty_engine).get_table_names())

    migrate.downgrade(empty_engine, "base")
    assert migrate.current_revision(empty_engine) is None
    assert set(inspect(empty_engine).get_table_names()) <= {"alembic_version"}

    migrate.upgrade(empty_engine)
    assert migrate.current_revision(empty_engine) == "0005"
    assert _drift(empty_engine) == []


def test_embeddings_move_to_their_own_table_and_back(empty_engine: Engine) -> None:
    """0004 keeps every embedding, under its annotation's id, and its downgrade puts them back."""
    migrate.upgrade(empty_engine, "0003")
    vector = b"\x00\x00\x80?" * 4
    with empty_engine.begin() as db:
        db.exec_driver_sql("INSERT INTO organisations (id, slug, name, created_at) "
                           "VALUES ('o', 'o', 'O', '2026-01-01 00:00:00+00:00')")
        db.exec_driver_sql("INSERT INTO media (id, org_id, object_key, content_type, size_bytes, sha256, width, "
                           "height, created_at) VALUES ('m', 'o', 'k', 'image/jpeg', 1, 'x', 10, 10, "
                           "'2026-01-01 00:00:00+00:00')")
        for annotation_id, blob in (("a1", vector), ("a2", None)):
            db.execute(text(
                "INSERT INTO annotations (id, org_id, media_id, box_x, box_y, box_width, box_height, "
                "embedding_model, embedding, change_seq, updated_at, created_at) VALUES (:id, 'o', 'm', 0, 0, 1, 1, "
                ":model, :blob, 7, '2026-01-01 00:00:00+00:00', '2026-01-01 00:00:00+00:00')"),
                {"id": annotation_id, "model": "finprint_embedder:2" if blob else None, "blob": blob})
        # On SQLite the annotations table is copied and dropped: rows that refer to it must survive.
        db.exec_driver_sql("INSERT INTO identifications (id, org_id, annotation_id, candidates, decision, created_at) "
                           "VALUES ('i', 'o', 'a1', '[]', 'pending', '2026-01-01 00:00:00+00:00')")

    migrate.upgrade(empty_engine)
    with empty_engine.connect() as db:
        rows = db.execute(text("SELECT id, annotation_id, model_version, vector, change_seq FROM embeddings")).all()
    assert [tuple(r) for r in rows] == [("a1", "a1", "finprint_embedder:2", vector, 7)]
    with empty_engine.connect() as db:
        assert db.execute(text("SELECT annotation_id FROM identifications")).scalars().all() == ["a1"]

    migrate.downgrade(empty_engine, "0003")
    with empty_engine.connect() as db:
        rows = db.execute(text("SELECT id, embedding_model, embedding, change_seq FROM annotations ORDER BY id")).all()
    assert [tuple(r) for r in rows] == [("a1", "finprint_embedder:2", vector, 7), ("a2", None, None, 0)]


def test_models_and_migrations_do_not_drift(empty_engine: Engine) -> None:
    migrate.upgrade(empty_engine)
    assert _drift(empty_engine) == [], (
        "models changed without a migration: run alembic revision --autogenerate"
    )


def test_a_model_change_without_migration_is_detected(empty_engine: Engine) -> None:
    """The drift check itself can fail: a column the migrations lack shows up as a difference."""
    migrate.upgrade(empty_engine)
    with empty_engine.begin() as connection:
        connection.exec_driver_sql("ALTER TABLE encounters ADD COLUMN stray_column INTEGER")
    differences = _drift(empty_engine)
    assert [(d[0], d[2], d[3].name) for d in differences] == [("remove_column", "encounters", "stray_column")]


def test_species_are_seeded(empty_engine: Engine) -> None:
    migrate.upgrade(empty_engine)
    with empty_engine.connect() as connection:
        rows = {row.key: row for row in connection.execute(select(Species))}
    for key in (
        "humpback_whale",
        "north_atlantic_right_whale",
        "beluga",
        "bottlenose_dolphin",
        "gray_whale",
        "killer_whale",
        "blue_whale",
        "spinner_dolphin",
        "cuviers_beaked_whale",
        "not_cetacean",
    ):
        assert key in rows, key
    assert len(rows) == 27  # the 25 Happywhale species, the NOAA right whale, not_cetacean
    assert rows["humpback_whale"].scientific_name == "Megaptera novaeangliae"
    assert rows["not_cetacean"].is_cetacean is False
    assert all(r.is_cetacean for k, r in rows.items() if k != "not_cetacean")


def test_migrate_command_upgrades_and_downgrades(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from finprint.cli import main

    url = f"sqlite:///{tmp_path / 'cli.db'}"
    assert main(["migrate", "--database-url", url]) == 0
    assert "revision 0005" in capsys.readouterr().out
    assert main(["migrate", "--database-url", url, "--downgrade", "base"]) == 0
    assert "revision base" in capsys.readouterr().out


def test_apikey_create_command_makes_a_key_that_verifies(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The command `finprint up` prints for a first key, on the embedded data directory."""
    from finprint.cli import main

    data_dir = tmp_path / "data"
    assert (
        main(["apikey", "create", "--org", "my-lab", "--role", "reviewer", "--data-dir", str(data_dir)]) == 0
    )
    key = capsys.readouterr().out.strip()
    engine = make_engine(f"sqlite:///{data_dir / 'finprint.db'}")
    with make_session_factory(engine)() as session:
        principal = accounts.verify_api_key(session, key)
    engine.dispose()
    assert principal is not None
    assert (principal.org_slug, principal.role) == ("my-lab", "reviewer")
    assert (
        main(["apikey", "create", "--org", "my-lab", "--data-dir", str(data_dir)]) == 0
    )  # same organisation
    assert capsys.readouterr().out.strip() != key
