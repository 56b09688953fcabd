"""Routes of the embedder service."""

from __future__ import annotations

import asyncio
import base64
import json
from typing import Annotated, Any

import numpy as np
import orjson
from fastapi import APIRouter, Depends, File, Form, Query, Request, Response, UploadFile
from starlette.concurrency import run_in_threadpool

from finprint.imaging import Box, ImageLimits, ModelInput, load_model_input
from finprint.problems import InvalidImage, Problem
from finprint.schemas.embedder import EmbedderModel, EmbeddingEncoding, EmbedResponse, ExplainedPhoto, ExplainResponse
from finprint.schemas.embeddings import encode_vector
from finprint.schemas.pixels import InvalidPixels, pixels_route_docs, read_pixels_request
from services.embedder.dependencies import EmbedderRuntime, ServedModel, embedder_runtime
from services.embedder.domain import explain as explaining
from services.embedder.domain.model import EmbedderCard, ranked_species

router = APIRouter(prefix="/v1", tags=["embedder"])
ModelVersion = Annotated[str | None, Query(
    pattern=r"^([\w.-]+:)?\d+$", max_length=100,
    description="A version served beside the default (`extra_model_versions`), as `3` or `finprint_embedder:3`; "
    "the default version when absent.")]

_PROBLEMS: dict[int | str, dict[str, Any]] = {
    413: {"description": "An image has more bytes or pixels than the limits (`too-large`, `too-many-pixels`)."},
    415: {"description": "An image is not JPEG, PNG or WebP (`unsupported-format`, with `detected_format`)."},
    422: {"description": "Empty, truncated or corrupt image (`image_index` says which), bad `boxes`, or no `images`."},
    404: {"description": "`model_version` is not served here (`model-version-not-served`, with `served_versions`)."},
    503: {"description": "The model is not loaded, or Triton is unreachable."},
}


def parse_boxes(text: str | None, count: int) -> list[Box | None]:
    """The ``boxes`` form field: a JSON list with one null or [x0, y0, x1, y1] per image."""
    if text is None or not text.strip():
        return [None] * count
    try:
        raw = json.loads(text)
    except json.JSONDecodeError as exc:
        raise _bad_boxes(f"`boxes` is not JSON: {exc.msg}.") from exc
    if not isinstance(raw, list) or len(raw) != count:
        raise _bad_boxes(f"`boxes` must be a JSON list with one entry per image ({count}).")
    boxes: list[Box | None] = []
    for position, entry in enumerate(raw):
        if entry is None:
            boxes.append(None)
        elif (isinstance(entry, list) and len(entry) == 4
              and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in entry)):
            boxes.append((float(entry[0]), float(entry[1]), float(entry[2]), float(entry[3])))
        else:
            raise _bad_boxes(f"`boxes[{position}]` must be null or [x0, y0, x1, y1] numbers.")
    return boxes


def _bad_boxes(detail: str) -> Problem:
    return Problem(422, detail, slug="validation-error",
                   errors=[{"field": "boxes", "message": detail, "type": "value_error"}])


async def _decoded(upload: UploadFile, box: Box | None, card: EmbedderCard, limits: ImageLimits,
                   position: int) -> ModelInput:
    data = await upload.read()
    try:
        return await run_in_threadpool(load_model_input, data, card.input_size, limits, box,
                                       trim_letterbox=card.trim_letterbox)
    except Problem as problem:
        # Which part failed matters when a request carries many crops.
        problem.detail = f"images[{position}] ({upload.filename or 'unnamed'}): {problem.detail}"
        problem.extensions["image_index"] = position
        raise


async def _model_inputs(runtime: EmbedderRuntime, card: EmbedderCard, images: list[UploadFile],
                        boxes: str | None) -> list[ModelInput]:
    """Every image part decoded (cropped to its box) into the model's input, concurrently; a refused part
    is counted by its reason and fails the request naming its index."""
    crops = parse_boxes(boxes, len(images))
    limits = runtime.settings.image_limits()
    try:
        return list(await asyncio.gather(
            *(_decoded(upload, box, card, limits, i) for i, (upload, box) in enumerate(zip(images, crops)))))
    except InvalidImage as problem:
        runtime.rejected.labels(problem.extensions["reason"]).inc()
        raise


def _result(embedding: np.ndarray, probabilities: np.ndarray, card: EmbedderCard, encoding: EmbeddingEncoding) -> dict:
    return {
        "species": [s.model_dump() for s in ranked_species(probabilities, card.species)],
        "embedding": encode_vector(embedding) if encoding == "base64" else embedding,
    }


@router.post(
    "/embed",
    response_model=EmbedResponse,
    summary="Species probabilities and the re-identification embedding of each image",
    responses=_PROBLEMS,
)
async def embed(
    images: Annotated[list[UploadFile], File(description="One file part per crop or photo: JPEG, PNG or WebP.")],
    runtime: Annotated[EmbedderRuntime, Depends(embedder_runtime)],
    boxes: Annotated[
        str | None,
        Form(description="JSON list, one entry per image: null, or [x0, y0, x1, y1] in pixels of the upright "
             "photo to crop that region first (the detector's box).", examples=['[[812, 640, 3544, 2210], null]']),
    ] = None,
    embedding_encoding: Annotated[
        EmbeddingEncoding, Query(description="`base64`: each embedding as base64 of little-endian float32.")
    ] = "json",
    model_version: ModelVersion = None,
) -> Response:
    """Each image (or its box) is resized to the model's input square, as in training; results come
    back in the order the images were sent, with the model name and version that produced them."""
    settings = runtime.settings
    if len(images) > settings.max_images_per_request:
        raise Problem(422, f"{len(images)} images in one request; the limit is {settings.max_images_per_request}.",
                      slug="too-many-images")
    served = runtime.select(model_version)
    card = await served.card()
    inputs = await _model_inputs(runtime, card, images, boxes)
    return await _embedded(runtime, served, card, np.stack([i.pixels for i in inputs]), embedding_encoding)


async def _embedded(runtime: EmbedderRuntime, served: ServedModel, card: EmbedderCard, pixels: np.ndarray,
                    encoding: EmbeddingEncoding) -> Response:
    embeddings, probabilities = await runtime.embed(served, pixels)
    body = {
        "model": served.model.model_dump(),
        "embedding_dim": int(embeddings.shape[1]),
        "embedding_encoding": encoding,
        "results": [_result(e, p, card, encoding) for e, p in zip(embeddings, probabilities)],
    }
    # Serialised directly with orjson: through the response model and json, 32 x 512 floats take
    # 25 ms; orjson writes float32 arrays in 0.5 ms, as the shortest text that reads back exactly.
    return Response(orjson.dumps(body, option=orjson.OPT_SERIALIZE_NUMPY), media_type="application/json")


@router.get("/model", response_model=EmbedderModel, summary="The served model and the inputs it takes",
            responses={404: _PROBLEMS[404], 503: _PROBLEMS[503]})
async def served_model(runtime: Annotated[EmbedderRuntime, Depends(embedder_runtime)],
                       model_version: ModelVersion = None) -> EmbedderModel:
    served = runtime.select(model_version)
    card = await served.card()
    return EmbedderModel(model=served.model, input_size=card.input_size, trim_letterbox=card.trim_letterbox,
                         species=list(card.species), embedding_dim=card.embedding_dim,
                         served_versions=[s.model.key for s in runtime.served])


@router.post(
    "/embed/pixels",
    response_model=EmbedResponse,
    summary="The same results for inputs already decoded and resized by the client",
    **pixels_route_docs(
        "[N, S, S, 3]", too_large="The body is larger than `max_images_per_request` inputs (`invalid-pixels`).",
        invalid="Not a uint8 [N, S, S, 3] .npy array of the model's input size (`invalid-pixels`).",
        unavailable=_PROBLEMS[503]),
)
async def embed_pixels(
    request: Request,
    runtime: Annotated[EmbedderRuntime, Depends(embedder_runtime)],
    embedding_encoding: Annotated[
        EmbeddingEncoding, Query(description="`base64`: each embedding as base64 of little-endian float32.")
    ] = "json",
    model_version: ModelVersion = None,
) -> Response:
    """What Triton takes: the model inputs as uint8 pixels (decoded, cropped, letterbox bars trimmed
    and resized as `finprint.imaging.load_model_input` does), so nothing is decoded here."""
    served = runtime.select(model_version)
    card = await served.card()
    try:
        pixels = await read_pixels_request(request, card.input_size, runtime.settings.max_images_per_request)
    except InvalidPixels:
        runtime.rejected.labels("invalid-pixels").inc()
        raise
    return await _embedded(runtime, served, card, pixels, embedding_encoding)


@router.post(
    "/explain",
    response_model=ExplainResponse,
    summary="Why two photos match: a heatmap per photo of the regions that drive their similarity",
    responses=_PROBLEMS,
)
async def explain(
    images: Annotated[list[UploadFile], File(description="Exactly two file parts: the query, then the candidate.")],
    runtime: Annotated[EmbedderRuntime, Depends(embedder_runtime)],
    boxes: Annotated[str | None, Form(description="As for /v1/embed: null or [x0, y0, x1, y1] per image.")] = None,
    grid: Annotated[int, Query(ge=4, le=16, description="Cells per side of the heatmaps.")] = explaining.DEFAULT_GRID,
    window: Annotated[int, Query(ge=1, le=4, description="Cells per side hidden at a time.")]
    = explaining.DEFAULT_WINDOW,
    model_version: ModelVersion = None,
) -> ExplainResponse:
    """Sliding occlusion: each photo is embedded again with every placement of a window hidden, and a
    cell scores the mean drop of the cosine to the other photo; ``2 + 2 (grid - window + 1)^2`` model
    inputs (100 at the defaults), so it is for a reviewer's one pair, not for bulk use."""
    if len(images) != 2:
        raise Problem(422, f"Send exactly two images (the query and the candidate), not {len(images)}.",
                      slug="validation-error", errors=[{"field": "images", "message": "two files", "type": "value_error"}])
    if window >= grid:
        raise Problem(422, "The window must be smaller than the grid.", slug="validation-error",
                      errors=[{"field": "window", "message": "smaller than grid", "type": "value_error"}])
    served = runtime.select(model_version)
    card = await served.card()
    inputs = await _model_inputs(runtime, card, images, boxes)
    placements = explaining.windows(grid, window)
    pixels = [i.pixels for i in inputs]
    batch = np.concatenate([np.stack(pixels), *(explaining.occluded_inputs(p, grid, placements) for p in pixels)])
    embeddings, _ = await runtime.embed(served, batch)
    query, candidate = embeddings[0], embeddings[1]
    similarity = float(query @ candidate)
    n = len(placements)
    occluded = {0: embeddings[2:2 + n] @ candidate, 1: embeddings[2 + n:] @ query}
    photos = []
    for side, decoded in enumerate(inputs):
        heat = explaining.occlusion_map(similarity, occluded[side], grid, placements)
        x0, y0, x1, y1 = decoded.region
        png = await run_in_threadpool(explaining.overlay_png, decoded.pixels, heat, max(1.0, x1 - x0) / max(1.0, y1 - y0))
        photos.append(ExplainedPhoto(heatmap=np.round(heat, 6).tolist(), overlay_png=base64.b64encode(png).decode()))
    return ExplainResponse(model=served.model, similarity=round(similarity, 6), grid=grid, window=window,
                           photos=photos)
