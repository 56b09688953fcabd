from __future__ import annotations

from pathlib import Path

from finprint.services import SERVICES, settings_class
from finprint.settings_doc import render_settings_table

REPO = Path(__file__).resolve().parents[2]


def test_configuration_page_is_generated_from_the_code() -> None:
    page = REPO / "docs" / "configuration.md"
    assert page.read_text() == render_settings_table(), "run `make docs` to regenerate docs/configuration.md"


def test_every_setting_is_documented_and_prefixed_per_service() -> None:
    for service in SERVICES:
        cls = settings_class(service)
        assert cls.model_config["env_prefix"] == f"FINPRINT_{service.upper()}_"
        undocumented = [name for name, field in cls.model_fields.items() if not field.description]
        assert not undocumented, f"{service}: settings without a description: {undocumented}"


def test_settings_come_from_the_environment(monkeypatch) -> None:
    monkeypatch.setenv("FINPRINT_GATEWAY_CATALOG_URL", "http://catalog.example:9999")
    monkeypatch.setenv("FINPRINT_GATEWAY_REQUEST_TIMEOUT_S", "2.5")
    settings = settings_class("gateway")()
    assert settings.catalog_url == "http://catalog.example:9999"
    assert settings.request_timeout_s == 2.5


def test_the_committed_openapi_documents_are_the_services_own() -> None:
    from finprint.openapi_doc import openapi_documents, render

    for service, document in openapi_documents().items():
        committed = REPO / "docs" / "openapi" / f"{service}.json"
        assert committed.exists() and committed.read_text() == render(document), (
            f"run `make docs`: docs/openapi/{service}.json differs from the {service}'s OpenAPI (a contract change "
            "must be deliberate and reviewed as a diff)")
