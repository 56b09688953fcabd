"""The problems the catalogue's rules raise (rendered as problem+json by the app)."""

from __future__ import annotations

from finprint.problems import NotFound, Problem

__all__ = ["Conflict", "Invalid", "NotFound"]


class Conflict(Problem):
    """The request clashes with what is stored (a taken catalogue code, a merged individual...)."""

    def __init__(self, detail: str, **extensions: object) -> None:
        super().__init__(409, detail, slug="conflict", **extensions)


class Invalid(Problem):
    """The request is well-formed but names something that cannot be used (an unknown species...)."""

    def __init__(self, detail: str, field: str | None = None) -> None:
        extensions = {"errors": [{"field": field, "message": detail}]} if field else {}
        super().__init__(422, detail, slug="validation-error", **extensions)
