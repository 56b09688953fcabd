"""Schemas used by more than one service contract."""

from __future__ import annotations

import re
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, Field, field_validator


class ModelInfo(BaseModel):
    """Which model produced a result. Embeddings of different versions are never mixed."""

    name: str = Field(examples=["finprint_embedder"])
    version: str = Field(examples=["1"])

    @property
    def key(self) -> str:
        """``name:version``, as embeddings, indexes and identifications name their model."""
        return f"{self.name}:{self.version}"


class SpeciesScore(BaseModel):
    species: str = Field(examples=["humpback_whale"])
    score: float = Field(ge=0.0, le=1.0, examples=[0.97])


NOTES_MAX_LENGTH = 10_000
"""The longest free-text notes of an encounter or an individual, wherever they are written."""

# Control characters (C0, DEL, C1): PostgreSQL refuses NUL in text and JSON, and no name, code or note
# means to hold the others. Free text keeps its layout (tab, line feed, carriage return).
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
_CONTROL_BUT_LAYOUT = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")


def _single_line(value: str) -> str:
    if _CONTROL.search(value):
        raise ValueError("may not contain control characters (tab, line breaks, NUL...)")
    return value


def _free_text(value: Any) -> Any:
    """``value`` (a string, or lists and mappings of them) unless a string holds a control character
    other than tab or a line break."""
    if isinstance(value, str):
        if _CONTROL_BUT_LAYOUT.search(value):
            raise ValueError("may not contain control characters other than tab and line breaks (e.g. NUL)")
    elif isinstance(value, dict):
        for key, item in value.items():
            _free_text(key)
            _free_text(item)
    elif isinstance(value, list | tuple | set | frozenset):
        for item in value:
            _free_text(item)
    return value


SingleLine = Annotated[str, AfterValidator(_single_line)]
"""A code, key or name: no control character at all."""


class Inbound(BaseModel):
    """Base of every body a client sends: no string in it, however nested, holds a control character other
    than tab and line breaks (fields typed :data:`SingleLine` hold none)."""

    @field_validator("*", mode="after")
    @classmethod
    def _no_control_characters(cls, value: Any) -> Any:
        return _free_text(value)
