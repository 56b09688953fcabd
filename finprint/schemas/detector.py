"""The detector's HTTP contract: where the animal is in a photo, which view, or that there is none.

``POST /v1/detect`` takes the photo as the raw body (``image/jpeg``, ``image/png``,
``image/webp``) or as the multipart field ``image``; ``POST /v1/detect/pixels`` takes the model
input a client already decoded (``GET /v1/model`` says its size), with the photo's size and the
region the pixels show. Boxes are in pixels of the upright photo (EXIF orientation applied), the
coordinates the embedder's ``boxes`` field takes.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from finprint.schemas.common import ModelInfo

View = Literal["fluke", "dorsal_fin", "head", "other"]
NO_CETACEAN = "no_cetacean"


class ImageMetadata(BaseModel):
    format: Literal["jpeg", "png", "webp"] = Field(description="Sniffed from the bytes, not the Content-Type.")
    width: int = Field(gt=0, description="Width of the upright photo, pixels.", examples=[4272])
    height: int = Field(gt=0, description="Height of the upright photo, pixels.", examples=[2848])


class Detection(BaseModel):
    box: tuple[int, int, int, int] = Field(
        description="[x0, y0, x1, y1] in pixels of the upright photo; x1 and y1 exclusive.",
        examples=[[812, 640, 3544, 2210]],
    )
    view: View = Field(description="The view with the highest score.", examples=["fluke"])
    score: float = Field(ge=0.0, le=1.0, description="Probability that the photo shows a cetacean.", examples=[0.98])
    view_scores: dict[View, float] = Field(
        description="Probability of each view.",
        examples=[{"fluke": 0.91, "dorsal_fin": 0.05, "head": 0.01, "other": 0.03}],
    )


class DetectResponse(BaseModel):
    model: ModelInfo
    image: ImageMetadata
    cetacean_probability: float = Field(ge=0.0, le=1.0, examples=[0.98])
    detections: list[Detection] = Field(description="Empty when no cetacean was found.")
    reason: Literal["no_cetacean"] | None = Field(
        None, description=f'"{NO_CETACEAN}" when ``detections`` is empty because the photo shows no cetacean.'
    )


class DetectorModel(BaseModel):
    """The served model and the input it takes: what a client preparing pixels needs."""

    model: ModelInfo
    input_size: int = Field(description="The input is a uint8 RGB square of this many pixels.", examples=[256])
    trim_letterbox: bool = Field(
        description="Uniform white letterbox bars are trimmed before resizing (finprint.imaging.letterbox_content)."
    )
