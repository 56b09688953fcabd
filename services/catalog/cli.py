"""Catalogue commands of the ``finprint`` CLI.

    finprint migrate [--database-url URL] [--downgrade base]     Alembic migrations
    finprint apikey create --org SLUG [--role admin] [--data-dir D | --database-url URL]

The database is FINPRINT_CATALOG_DATABASE_URL unless ``--database-url`` is given, or the
embedded default's SQLite under ``--data-dir`` (the same data directory as ``finprint up``).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from pydantic import ValidationError
from sqlalchemy import Engine

from finprint.schemas.catalog import ApiKeyCreate, OrganisationCreate
from services.catalog.accounts import service as accounts
from services.catalog.adapters.db import migrate
from services.catalog.adapters.db.engine import make_engine, make_session_factory
from services.catalog.settings import CatalogSettings

ROLES = ("admin", "reviewer", "contributor", "viewer")


def _engine(args: argparse.Namespace) -> Engine:
    if args.database_url:
        return make_engine(args.database_url)
    if getattr(args, "data_dir", None):
        from finprint.embedded import embedded_environment

        return make_engine(embedded_environment(Path(args.data_dir))["FINPRINT_CATALOG_DATABASE_URL"])
    return make_engine(CatalogSettings().database_url)


def _cmd_migrate(args: argparse.Namespace) -> int:
    engine = _engine(args)
    try:
        if args.downgrade:
            migrate.downgrade(engine, args.downgrade)
        else:
            migrate.upgrade(engine, args.revision)
        print(f"catalogue database at revision {migrate.current_revision(engine) or 'base'}")
    finally:
        engine.dispose()
    return 0


SLUG_RULE = "an organisation slug is 2 to 63 lowercase letters, digits and hyphens, not starting with a hyphen"


def _invalid_argument(command: str, arguments: dict[str, str], exc: ValidationError) -> int:
    """One line naming the argument and what it must be (not pydantic's report); exit status 2, as argparse."""
    error = exc.errors()[0]
    field = str(error["loc"][0]) if error["loc"] else ""
    hint = SLUG_RULE if field == "slug" else error["msg"]
    print(f"finprint {command}: error: {arguments.get(field, field)} {error['input']!r}: {hint}", file=sys.stderr)
    return 2


def _cmd_apikey_create(args: argparse.Namespace) -> int:
    """Create an API key (and its organisation when the slug is new); prints the key, shown only once."""
    try:
        new_organisation = OrganisationCreate(slug=args.org, name=args.org_name or args.org)
    except ValidationError as exc:
        return _invalid_argument("apikey create", {"slug": "--org", "name": "--org-name"}, exc)
    try:
        new_key = ApiKeyCreate(name=args.name, role=args.role)
    except ValidationError as exc:
        return _invalid_argument("apikey create", {"name": "--name"}, exc)
    engine = _engine(args)
    try:
        if args.data_dir:
            migrate.upgrade(engine)  # the embedded default migrates at start; it may not have run yet
        with make_session_factory(engine)() as session:
            organisation = accounts.find_organisation(session, args.org) or accounts.create_organisation(
                session, new_organisation
            )
            api_key, key = accounts.create_api_key(session, organisation.id, new_key)
            session.commit()
    finally:
        engine.dispose()
    print(
        f"API key {api_key.id} of {organisation.slug} ({organisation.id}), role {api_key.role}:",
        file=sys.stderr,
    )
    print(key)
    return 0


def add_commands(subparsers: argparse._SubParsersAction) -> None:
    migrate_parser = subparsers.add_parser("migrate", help="upgrade the catalogue database (Alembic) to head")
    migrate_parser.add_argument("--database-url", default=None, help="default: FINPRINT_CATALOG_DATABASE_URL")
    migrate_parser.add_argument("--revision", default="head", help="upgrade to this revision (default head)")
    migrate_parser.add_argument(
        "--downgrade",
        metavar="REVISION",
        default=None,
        help="downgrade instead, e.g. --downgrade base (drops every table)",
    )
    migrate_parser.set_defaults(func=_cmd_migrate)

    apikey = subparsers.add_parser("apikey", help="API keys of the catalogue")
    apikey_commands = apikey.add_subparsers(dest="apikey_command", required=True)
    create = apikey_commands.add_parser("create", help="create an API key (and the organisation if new)")
    create.add_argument("--org", required=True, help="organisation slug, e.g. my-lab")
    create.add_argument("--org-name", default=None, help="name of a new organisation (default: the slug)")
    create.add_argument("--role", choices=ROLES, default="admin")
    create.add_argument("--name", default="created with the finprint CLI", help="what the key is for")
    location = create.add_mutually_exclusive_group()
    location.add_argument(
        "--data-dir", default=None, help="the embedded default's data directory (finprint up)"
    )
    location.add_argument("--database-url", default=None, help="default: FINPRINT_CATALOG_DATABASE_URL")
    create.set_defaults(func=_cmd_apikey_create)
