"""Routes of the detector service."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile

from finprint.imaging import MEDIA_TYPES, ImageLimits, load_model_input
from finprint.problems import InvalidImage, Problem
from finprint.schemas.detector import NO_CETACEAN, Detection, DetectResponse, ImageMetadata
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
    limits = ImageLimits(max_bytes=settings.max_image_bytes, max_pixels=settings.max_image_pixels)
    try:
        model_input = await run_in_threadpool(
            load_model_input, data, detector.card.input_size, limits, trim_letterbox=detector.card.trim_letterbox
        )
    except InvalidImage as problem:
        runtime.rejected.labels(problem.extensions["reason"]).inc()
        raise
    output = await runtime.infer(detector, model_input.pixels)
    info = model_input.info
    finding = find_cetacean(output, detector.card, model_input.region, settings.box_margin)
    runtime.photos.labels("cetacean" if finding else NO_CETACEAN).inc()
    detections = [] if finding is None else [
        Detection(box=finding.box, view=finding.view, score=finding.score, view_scores=finding.view_scores)
    ]
    return DetectResponse(
        model=detector.info,
        image=ImageMetadata(format=info.format, width=info.width, height=info.height),
        cetacean_probability=output.cetacean_prob,
        detections=detections,
        reason=None if finding else NO_CETACEAN,
    )
