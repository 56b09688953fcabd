"""The five services by name, and how to build each one's app without importing it statically.

The shared package must not depend on any service, so factories are found by module path:
``services/<name>/app.py`` defines ``create_app(settings=None, transports=None) -> FastAPI``.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import Protocol

import httpx
from fastapi import FastAPI

from finprint.settings import ServiceSettings

SERVICES: tuple[str, ...] = ("gateway", "detector", "embedder", "matcher", "catalog")
DEFAULT_PORTS: dict[str, int] = {"gateway": 8000, "detector": 8001, "embedder": 8002, "matcher": 8003, "catalog": 8004}
BUILD_ORDER: tuple[str, ...] = ("catalog", "detector", "embedder", "matcher", "gateway")
"""Peers before the services that call them: the order the embedded default builds the apps in and
the test fixtures start the processes in."""


class AppFactory(Protocol):
    def __call__(
        self,
        settings: ServiceSettings | None = None,
        transports: Mapping[str, httpx.AsyncBaseTransport] | None = None,
    ) -> FastAPI: ...


def app_factory(service: str) -> AppFactory:
    if service not in SERVICES:
        raise ValueError(f"unknown service {service!r}; choose one of {', '.join(SERVICES)}")
    return importlib.import_module(f"services.{service}.app").create_app


def settings_class(service: str) -> type[ServiceSettings]:
    if service not in SERVICES:
        raise ValueError(f"unknown service {service!r}; choose one of {', '.join(SERVICES)}")
    module = importlib.import_module(f"services.{service}.settings")
    return getattr(module, f"{service.capitalize()}Settings")


def uvicorn_factory(service: str) -> Callable[[], FastAPI]:
    """A no-argument factory (settings from the environment), as ``uvicorn --factory`` wants."""
    return lambda: app_factory(service)()
