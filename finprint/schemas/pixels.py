"""Decoded pixels on the wire: a batch of model inputs as one NumPy ``.npy`` body.

``POST /v1/embed/pixels`` takes what Triton takes: uint8 RGB ``[N, S, S, 3]`` (S the model's
``input_size``), already decoded, cropped and resized as :func:`finprint.imaging.load_model_input`
does it. A client that decodes anyway (a pipeline holding the pixels, a Triton-style client)
then pays neither a JPEG encode nor a second decode. ``.npy`` is self-describing (dtype and
shape in a small text header), written by ``numpy.save`` in any language binding, and read
here without pickles and without copying the pixels.
"""

from __future__ import annotations

import io
from typing import Any

import numpy as np
from starlette.requests import Request

from finprint.problems import Problem

PIXELS_MEDIA_TYPE = "application/x-npy"
# numpy.save writes a header of 128 bytes for these shapes; anything much longer is not ours.
MAX_HEADER_BYTES = 1024


NOT_PIXELS_RESPONSE = {"description": f"The body is not `{PIXELS_MEDIA_TYPE}`."}
"""The 415 of a pixels route, for its OpenAPI ``responses``."""


def pixels_request_body(shape: str) -> dict:
    """The OpenAPI request body of a pixels route taking uint8 RGB arrays of ``shape``."""
    return {
        "required": True,
        "content": {PIXELS_MEDIA_TYPE: {"schema": {"type": "string", "format": "binary"}}},
        "description": f"A NumPy .npy array, uint8 RGB {shape}, S the model's `input_size` (GET /v1/model), "
        "made as `finprint.imaging.load_model_input` makes it.",
    }


def pixels_route_docs(shape: str, *, too_large: str, invalid: str, unavailable: dict[str, Any]) -> dict[str, Any]:
    """The OpenAPI ``responses`` and request body of a pixels route taking uint8 RGB arrays of ``shape``,
    as keyword arguments of its route decorator: ``too_large`` describes the 413, ``invalid`` the 422
    and ``unavailable`` is the route's 503 response."""
    return {
        "responses": {
            413: {"description": too_large},
            415: NOT_PIXELS_RESPONSE,
            422: {"description": invalid},
            503: unavailable,
        },
        "openapi_extra": {"requestBody": pixels_request_body(shape)},
    }


class InvalidPixels(Problem):
    """The body is not a uint8 [N, S, S, 3] ``.npy`` array this model accepts."""

    def __init__(self, detail: str, status: int = 422) -> None:
        super().__init__(status, detail, slug="invalid-pixels", title="Invalid pixel tensor")


def encode_pixels(pixels: np.ndarray) -> bytes:
    """A uint8 [N, S, S, 3] batch as a ``.npy`` body."""
    buffer = io.BytesIO()
    np.save(buffer, np.ascontiguousarray(pixels, dtype=np.uint8), allow_pickle=False)
    return buffer.getvalue()


def max_pixels_body_bytes(size: int, max_images: int) -> int:
    """The largest body a request of at most ``max_images`` inputs of ``size`` px can need."""
    return MAX_HEADER_BYTES + max_images * size * size * 3


def decode_pixels(body: bytes, size: int, max_images: int) -> np.ndarray:
    """The uint8 [N, size, size, 3] array in a ``.npy`` body (a read-only view of ``body``).

    Raises :class:`InvalidPixels` naming what is wrong: not ``.npy``, another dtype, layout or
    shape than the model's input, more than ``max_images`` inputs, or a body whose length does
    not match its header.
    """
    expected = f"uint8 [N, {size}, {size}, 3] (N from 1 to {max_images})"
    stream = io.BytesIO(body)
    try:
        version = np.lib.format.read_magic(stream)
        if version == (1, 0):
            shape, fortran_order, dtype = np.lib.format.read_array_header_1_0(stream, max_header_size=MAX_HEADER_BYTES)
        elif version == (2, 0):
            shape, fortran_order, dtype = np.lib.format.read_array_header_2_0(stream, max_header_size=MAX_HEADER_BYTES)
        else:
            raise InvalidPixels(f"The body is .npy format version {version}; versions 1.0 and 2.0 are read.")
    except (ValueError, EOFError) as exc:
        raise InvalidPixels(f"The body is not a NumPy .npy array ({exc}); expected {expected}.") from exc
    if dtype != np.uint8:
        raise InvalidPixels(f"The array's dtype is {dtype}; expected {expected}.")
    if fortran_order:
        raise InvalidPixels(f"The array is in Fortran order; expected C order, {expected}.")
    if len(shape) != 4 or tuple(shape[1:]) != (size, size, 3):
        raise InvalidPixels(f"The array's shape is {list(shape)}; expected {expected}.")
    count = shape[0]
    if not 1 <= count <= max_images:
        raise InvalidPixels(f"The array holds {count} inputs; expected {expected}.")
    offset = stream.tell()
    if len(body) - offset != count * size * size * 3:
        raise InvalidPixels(
            f"The body has {len(body) - offset} bytes of pixels after its header; its shape {list(shape)} "
            f"needs {count * size * size * 3}."
        )
    return np.frombuffer(body, dtype=np.uint8, offset=offset).reshape(shape)


async def read_pixels_request(request: Request, size: int, max_images: int) -> np.ndarray:
    """The uint8 [N, size, size, 3] inputs of a request to a pixels route.

    415 unless the body is ``.npy``; 413 (:class:`InvalidPixels`) as soon as the body passes what
    ``max_images`` inputs can need, before the rest is read; 422 for anything :func:`decode_pixels`
    refuses.
    """
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type != PIXELS_MEDIA_TYPE:
        raise Problem(415, f"Send the inputs as a {PIXELS_MEDIA_TYPE} body; got {content_type or 'no Content-Type'}.")
    limit = max_pixels_body_bytes(size, max_images)
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise InvalidPixels(f"The body has {declared} bytes; at most {limit} fit the request limits.", status=413)
    chunks: list[bytes] = []
    received = 0
    async for chunk in request.stream():
        received += len(chunk)
        if received > limit:
            raise InvalidPixels(f"The body has more than {limit} bytes, the most the request limits allow.", status=413)
        chunks.append(chunk)
    return decode_pixels(b"".join(chunks), size, max_images)
