"""The ``finprint`` command line.

    finprint up [--host H] [--port P] [--data-dir D]     all five services in one process
    finprint serve SERVICE [--host H] [--port N]         one service, as deployed
    finprint migrate                                     the catalog's Alembic migrations
    finprint settings-doc [--output FILE]                the settings table (docs/configuration.md)
    finprint openapi-doc [--output-dir DIR]              every service's OpenAPI document (docs/openapi/)
    finprint train | evaluate | export ...               the model pipeline (extra `train`)
    finprint backup | restore ...                        database, objects, matcher snapshots (finprint/backup.py)
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from finprint.services import DEFAULT_PORTS, SERVICES

Command = Callable[[argparse.Namespace], int]


def _cmd_up(args: argparse.Namespace) -> int:
    from finprint.embedded import run_embedded

    run_embedded(args.host, args.port, Path(args.data_dir), args.log_level or "INFO")
    return 0


def _cmd_serve(args: argparse.Namespace) -> int:
    import uvicorn

    from finprint.logs import configure_logging
    from finprint.services import settings_class, uvicorn_factory

    configure_logging(args.log_level or settings_class(args.service)().log_level)
    port = args.port or DEFAULT_PORTS[args.service]
    uvicorn.run(uvicorn_factory(args.service), factory=True, host=args.host, port=port, log_config=None,
                workers=1)
    return 0


def _cmd_settings_doc(args: argparse.Namespace) -> int:
    from finprint.settings_doc import render_settings_table

    text = render_settings_table()
    if args.output:
        Path(args.output).write_text(text)
    else:
        sys.stdout.write(text)
    return 0


def _cmd_openapi_doc(args: argparse.Namespace) -> int:
    from finprint.openapi_doc import write_openapi_documents

    for path in write_openapi_documents(Path(args.output_dir)):
        print(path)
    return 0


def _add_service_commands(sub: argparse._SubParsersAction) -> None:
    up = sub.add_parser("up", help="run all five services in one process (the embedded default)")
    up.add_argument("--host", default="127.0.0.1")
    up.add_argument("--port", type=int, default=8000)
    up.add_argument("--data-dir", default="data", help="SQLite database and images (default ./data)")
    up.set_defaults(func=_cmd_up)

    serve = sub.add_parser("serve", help="run one service")
    serve.add_argument("service", choices=SERVICES)
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=None, help="default: the service's usual port")
    serve.set_defaults(func=_cmd_serve)

    doc = sub.add_parser("settings-doc", help="print the table of every service's settings")
    doc.add_argument("--output", default=None)
    doc.set_defaults(func=_cmd_settings_doc)

    openapi = sub.add_parser("openapi-doc", help="write every service's OpenAPI document (docs/openapi/)")
    openapi.add_argument("--output-dir", default="docs/openapi")
    openapi.set_defaults(func=_cmd_openapi_doc)


# Commands contributed by parts of the project that are optional to install: (module, extra,
# function adding the subcommands). A missing optional dependency hides its commands with a hint.
# These modules import their heavy dependencies (torch...) inside the commands, not at import.
OPTIONAL_COMMAND_MODULES: tuple[tuple[str, str, str], ...] = (
    ("services.catalog.cli", "catalog", "add_commands"),
    ("services.gateway.cli", "gateway", "add_commands"),
    ("finprint.backup", "catalog", "add_commands"),
    ("finprint_train.cli", "train", "add_training_commands"),
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="finprint", description="Finprint: photo-ID of whales and dolphins.")
    parser.add_argument("--log-level", default=None, help="default: the service's LOG_LEVEL setting, else INFO")
    sub = parser.add_subparsers(dest="command", required=True)
    _add_service_commands(sub)
    for module_name, extra, adder in OPTIONAL_COMMAND_MODULES:
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name and (exc.name == module_name or module_name.startswith(exc.name + ".")):
                continue  # that part of the project does not exist (yet)
            hint = sub.add_parser(f"[{extra}]", help=f"needs `pip install finprint[{extra}]` ({exc.name} missing)")
            hint.set_defaults(func=lambda _a, e=extra: _missing_extra(e))
            continue
        getattr(module, adder)(sub)
    return parser


def _missing_extra(extra: str) -> int:
    print(f"this command needs the `{extra}` extra: pip install -e '.[{extra}]'", file=sys.stderr)
    return 2


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return int(args.func(args) or 0)


if __name__ == "__main__":
    raise SystemExit(main())
