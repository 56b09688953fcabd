"""The CSV manifest of an ingest job: one row per photo.

The header is checked when the job is created (a manifest without an ``image`` column is refused
whole); each row is checked by the worker that takes it, so one bad row fails alone, with its reason,
and the rest of the job goes on.
"""

from __future__ import annotations

import csv
import io
import unicodedata
from collections.abc import Iterator
from pathlib import PurePosixPath

from pydantic import BaseModel, Field, ValidationError

from finprint.problems import Problem
from services.gateway.domain.enrolment import EncounterForm

COLUMNS = ("image", "observed_at", "latitude", "longitude", "location", "observer", "species", "individual_id")
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp")


class ManifestRow(EncounterForm):
    """A manifest row as the worker reads it: the encounter's fields plus the species when known."""

    species: str | None = Field(None, min_length=1, max_length=64, examples=["humpback_whale"])


class ManifestItem(BaseModel):
    item_key: str
    payload: dict[str, str]


def normalise_key(name: str) -> str:
    """An image's key: a relative POSIX path without ``.`` or ``..`` parts (no escaping the archive)."""
    if any(unicodedata.category(char) == "Cc" for char in name):
        raise ValueError(f"{name!r} has a control character in its name")
    path = PurePosixPath(name.strip().replace("\\", "/"))
    parts = [p for p in path.parts if p not in ("", ".", "/")]
    if not parts or ".." in parts:
        raise ValueError(f"{name!r} is not a relative path inside the archive")
    return "/".join(parts)


def checked_key(name: str, what: str) -> str:
    """:func:`normalise_key`, refusing an unusable name with a 422 that names it (``what``: where it is)."""
    try:
        return normalise_key(name)
    except ValueError as exc:
        raise Problem(422, f"{what} {exc}; nothing was created.", slug="invalid-archive", member=name) from None


def read_manifest(data: bytes) -> list[ManifestItem]:
    """The items of a manifest; a row whose image key is unusable is refused with the whole file.

    Other columns are kept verbatim (empty ones dropped) for the worker to validate.
    """
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise Problem(422, "The manifest is not UTF-8 text.", slug="invalid-manifest") from None
    reader = csv.DictReader(io.StringIO(text))
    if not reader.fieldnames or "image" not in [f.strip() for f in reader.fieldnames]:
        raise Problem(422, f"The manifest needs a header with an `image` column; columns are {', '.join(COLUMNS)}.",
                      slug="invalid-manifest")
    items: dict[str, ManifestItem] = {}
    for line, row in enumerate(reader, start=2):
        row = {(k or "").strip(): (v or "").strip() for k, v in row.items() if k in COLUMNS}
        try:
            key = normalise_key(row.pop("image", ""))
        except ValueError as exc:
            raise Problem(422, f"Manifest line {line}: {exc}.", slug="invalid-manifest", line=line) from None
        if key in items:
            raise Problem(422, f"Manifest line {line}: image {key} is listed twice.", slug="invalid-manifest",
                          line=line)
        items[key] = ManifestItem(item_key=key, payload={k: v for k, v in row.items() if v})
    if not items:
        raise Problem(422, "The manifest lists no images.", slug="invalid-manifest")
    return list(items.values())


def parse_row(payload: dict[str, str]) -> ManifestRow:
    """A row's fields, validated; raises ValueError with a reason a researcher can act on."""
    try:
        return ManifestRow.model_validate(payload)
    except ValidationError as exc:
        reasons = "; ".join(f"{'.'.join(str(p) for p in e['loc']) or 'row'}: {e['msg']}" for e in exc.errors())
        raise ValueError(f"invalid manifest row ({reasons})") from None


def image_names(names: Iterator[str], what: str) -> list[str]:
    """The photos among an archive's or a bucket's names (by suffix), as item keys (422 for an unusable name)."""
    keys = []
    for name in names:
        if name.lower().endswith(IMAGE_SUFFIXES) and not PurePosixPath(name).name.startswith("."):
            keys.append(checked_key(name, what))
    return keys
