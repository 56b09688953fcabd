"""Photos made for tests from the shared real ones (in memory, never written into the repository)."""

from __future__ import annotations

import io
from pathlib import Path

from PIL import Image


def letterboxed_jpeg(path: Path, bar: int) -> bytes:
    """The photo with white bars ``bar`` pixels high above and below, as some archives store flukes."""
    with Image.open(path) as image:
        photo = image.convert("RGB")
    framed = Image.new("RGB", (photo.width, photo.height + 2 * bar), "white")
    framed.paste(photo, (0, bar))
    buffer = io.BytesIO()
    framed.save(buffer, "JPEG", quality=92)
    return buffer.getvalue()
