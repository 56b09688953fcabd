"""Routes of the detector service."""

from __future__ import annotations

import math
from typing import Annotated, Any, Literal

import numpy as np
from fastapi import APIRouter, Depends, Query, Request
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile

from finprint.imaging import MEDIA_TYPES, Box, ImageLimits, clip_box, load_model_input
from finprint.problems import InvalidImage, Problem
from finprint.schemas.detector import NO_CETACEAN, Detection, DetectorModel, DetectResponse, ImageMetadata
from finprint.schemas.pixels import InvalidPixels, pixels_route_docs, read_pixels_request
from services.detector.adapters.onnx_runtime import OnnxDetector
from services.detector.dependencies import DetectorRuntime, detector_runtime
from services.detector.domain.detection import find_cetacean

router = APIRouter(prefix="/v1", tags=["detector"])

IMAGE_FIELD = "image"
_PHOTO_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "description": "The photo as the raw body, or as the multipart file field `image`. The type is "
        "sniffed from the bytes: JPEG, PNG or WebP.",
        "content": {
            **{media: {"schema": {"type": "string", "format": "binary"}} for media in MEDIA_TYPES.values()},
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": [IMAGE_FIELD],
                    "properties": {IMAGE_FIELD: {"type": "string", "format": "binary"}},
                }
            },
        },
    }
}
_PROBLEMS: dict[int | str, dict[str, Any]] = {
    413: {"description": "The photo has more bytes or pixels than the limits (`too-large`, `too-many-pixels`)."},
    415: {"description": "The bytes are not JPEG, PNG or WebP (`unsupported-format`, with `detected_format`)."},
    422: {"description": "Empty, truncated or corrupt photo, or no `image` field in a multipart body."},
    503: {"description": "The detector model is not loaded."},
}


async def read_photo(request: Request) -> bytes:
    """The photo's bytes from a raw body or the multipart field ``image``; the declared type is not trusted."""
    if request.headers.get("content-type", "").startswith("multipart/form-data"):
        form = await request.form(max_files=1, max_fields=8)
        part = form.get(IMAGE_FIELD)
        if not isinstance(part, UploadFile):
            sent = ", ".join(sorted(form.keys())) or "none"
            raise Problem(
                422,
                f"The multipart body has no file field `{IMAGE_FIELD}` (fields sent: {sent}).",
                slug="validation-error",
                errors=[{"field": IMAGE_FIELD, "message": "a file part is required", "type": "missing"}],
            )
        return await part.read()
    return await request.body()


@router.post(
    "/detect",
    response_model=DetectResponse,
    summary="Find the cetacean in a photo: box, view and score, or that there is none",
    openapi_extra=_PHOTO_BODY,
    responses=_PROBLEMS,
)
async def detect(request: Request, runtime: Annotated[DetectorRuntime, Depends(detector_runtime)]) -> DetectResponse:
    """Returns the animal's box in pixels of the upright photo (EXIF orientation applied) and its
    view; a photo without a cetacean gets `detections: []` and `reason: "no_cetacean"`."""
    data = await read_photo(request)
    detector = await runtime.loaded()
    settings = runtime.settings
    limits = settings.image_limits()
    try:
        model_input = await run_in_threadpool(
            load_model_input, data, detector.card.input_size, limits, trim_letterbox=detector.card.trim_letterbox
        )
    except InvalidImage as problem:
        runtime.rejected.labels(problem.extensions["reason"]).inc()
        raise
    info = model_input.info
    image = ImageMetadata(format=info.format, width=info.width, height=info.height)
    return await _detected(runtime, detector, model_input.pixels, image, model_input.region)


async def _detected(runtime: DetectorRuntime, detector: OnnxDetector, pixels: np.ndarray, image: ImageMetadata,
                    region: Box) -> DetectResponse:
    """Inference on one model input showing ``region`` of the photo ``image``, and the answer."""
    output = await runtime.infer(detector, pixels)
    finding = find_cetacean(output, detector.card, region, runtime.settings.box_margin)
    runtime.photos.labels("cetacean" if finding else NO_CETACEAN).inc()
    detections = [] if finding is None else [
        Detection(box=finding.box, view=finding.view, score=finding.score, view_scores=finding.view_scores)
    ]
    return DetectResponse(
        model=detector.info,
        image=image,
        cetacean_probability=output.cetacean_prob,
        detections=detections,
        reason=None if finding else NO_CETACEAN,
    )


@router.get("/model", response_model=DetectorModel, summary="The served model and the input it takes",
            responses={503: _PROBLEMS[503]})
async def served_model(runtime: Annotated[DetectorRuntime, Depends(detector_runtime)]) -> DetectorModel:
    detector = await runtime.loaded()
    return DetectorModel(model=detector.info, input_size=detector.card.input_size,
                         trim_letterbox=detector.card.trim_letterbox)


def parse_region(text: str | None, width: int, height: int) -> Box:
    """The ``region`` query parameter, "x0,y0,x1,y1", clipped to the photo as the embedder clips its
    boxes; the whole photo if absent. A region with no pixel inside the photo is refused."""
    if text is None:
        return (0.0, 0.0, float(width), float(height))
    try:
        values = tuple(float(v) for v in text.split(","))
    except ValueError:
        values = ()
    if len(values) != 4 or not all(math.isfinite(v) for v in values):
        raise _bad_region(f"`region` is four numbers x0,y0,x1,y1; got {text!r}.")
    clipped = clip_box(values, width, height)
    if clipped is None:
        raise _bad_region(f"`region` {list(values)} covers no pixel of the {width}x{height} photo.")
    return clipped


def _bad_region(detail: str) -> Problem:
    return Problem(422, detail, slug="validation-error",
                   errors=[{"field": "region", "message": detail, "type": "value_error"}])


PHOTO_SIDE = ImageLimits()
"""A photo decoded elsewhere has the sides a photo sent here could have (too small to show an animal: 422)."""


@router.post(
    "/detect/pixels",
    response_model=DetectResponse,
    summary="The same answer for a photo the client already decoded into the model's input",
    **pixels_route_docs(
        "[1, S, S, 3]", too_large="The body is larger than one input (`invalid-pixels`).",
        invalid="Not a uint8 [1, S, S, 3] .npy array of the model's input size (`invalid-pixels`), "
        "or a `region` outside the photo.", unavailable=_PROBLEMS[503]),
)
async def detect_pixels(
    request: Request,
    runtime: Annotated[DetectorRuntime, Depends(detector_runtime)],
    width: Annotated[int, Query(ge=PHOTO_SIDE.min_side, le=PHOTO_SIDE.max_pixels,
                                description="Width of the upright photo the pixels were made from.")],
    height: Annotated[int, Query(ge=PHOTO_SIDE.min_side, le=PHOTO_SIDE.max_pixels,
                                 description="Height of the upright photo the pixels were made from.")],
    image_format: Annotated[Literal["jpeg", "png", "webp"], Query(alias="format", description="The photo's format, as sniffed.")],
    region: Annotated[str | None, Query(
        description="x0,y0,x1,y1: the part of the photo the pixels show, in its pixels (letterbox bars "
        "trimmed); the whole photo if absent. Boxes come back in pixels of the photo.",
        examples=["0,120,4272,2728"],
    )] = None,
) -> DetectResponse:
    """For a client that decodes the photo once for several models (the gateway): nothing is decoded here."""
    shown = parse_region(region, width, height)
    detector = await runtime.loaded()
    try:
        pixels = await read_pixels_request(request, detector.card.input_size, max_images=1)
    except InvalidPixels:
        runtime.rejected.labels("invalid-pixels").inc()
        raise
    image = ImageMetadata(format=image_format, width=width, height=height)
    return await _detected(runtime, detector, pixels[0], image, shown)
