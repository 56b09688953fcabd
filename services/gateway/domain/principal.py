"""Who is calling, for which organisation, with which role."""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum
from typing import Literal


class Role(IntEnum):
    """Roles are ordered: each one may do everything the ones below it may."""

    viewer = 1
    contributor = 2
    reviewer = 3
    admin = 4

    @classmethod
    def parse(cls, name: str) -> Role:
        try:
            return cls[name]
        except KeyError:
            raise ValueError(f"unknown role {name!r}; one of {', '.join(r.name for r in cls)}") from None


@dataclass(frozen=True)
class Principal:
    org_id: str
    role: Role
    subject: str
    """The user id or the API key's id: what rate limits and audit entries are keyed by."""
    kind: Literal["api_key", "user"]

    def may(self, needed: Role) -> bool:
        return self.role >= needed
