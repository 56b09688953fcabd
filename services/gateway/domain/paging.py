"""Opaque cursors for the public API's lists.

The catalog pages by offset; partners get an opaque cursor so that the paging scheme can change
(e.g. to keyset paging) without breaking them.
"""

from __future__ import annotations

import base64
import json

from finprint.problems import Problem
from finprint.schemas.catalog import OFFSET_MAX


def encode_cursor(offset: int) -> str:
    return base64.urlsafe_b64encode(json.dumps({"o": offset}).encode()).decode().rstrip("=")


def decode_cursor(cursor: str | None) -> int:
    if not cursor:
        return 0
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        offset = json.loads(base64.urlsafe_b64decode(padded))["o"]
    except (ValueError, KeyError, TypeError):
        raise Problem(422, "The cursor is not one this API returned.", slug="validation-error",
                      errors=[{"field": "cursor", "message": "invalid cursor", "type": "value_error"}]) from None
    if not isinstance(offset, int) or not 0 <= offset <= OFFSET_MAX:
        raise Problem(422, "The cursor is not one this API returned.", slug="validation-error",
                      errors=[{"field": "cursor", "message": "invalid cursor", "type": "value_error"}])
    return offset


def public_page(catalog_page: dict, offset: int) -> dict:
    """A catalog page (items, total, offset, limit) as a public page (items, next_cursor, total)."""
    items = catalog_page["items"]
    following = offset + len(items)
    more = following < catalog_page["total"] and bool(items)
    return {"items": items, "next_cursor": encode_cursor(following) if more else None,
            "total": catalog_page["total"]}
