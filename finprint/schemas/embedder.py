"""The embedder's HTTP contract: species probabilities and the re-identification embedding.

``POST /v1/embed`` is multipart: one or more ``images`` file parts and an optional ``boxes``
form field, a JSON list with one entry per image, ``null`` or ``[x0, y0, x1, y1]`` in pixels of
the upright photo (as the detector returns them), to crop that region first. The gateway sends
the original photo once with the detector's box; nothing is re-encoded.

Embeddings are L2-normalised and comparable only with embeddings of the same ``model`` name and
version. ``POST /v1/embed/pixels`` takes the model inputs already decoded, as one ``.npy`` array
(:mod:`finprint.schemas.pixels`); ``GET /v1/model`` says their size and preprocessing.
``?embedding_encoding=base64`` returns each embedding as base64 of little-endian float32
(:func:`finprint.schemas.embeddings.decode_vector`) instead of a list of numbers.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from finprint.schemas.common import ModelInfo, SpeciesScore

EmbeddingEncoding = Literal["json", "base64"]


class EmbedResult(BaseModel):
    species: list[SpeciesScore] = Field(description="Every species of the model, highest score first.")
    embedding: list[float] | str = Field(
        description="L2-normalised: a list of floats, or base64 of little-endian float32 with "
        "``embedding_encoding=base64``.",
    )


class EmbedResponse(BaseModel):
    model: ModelInfo
    embedding_dim: int = Field(examples=[512])
    embedding_encoding: EmbeddingEncoding = "json"
    results: list[EmbedResult] = Field(description="One per image part, in the order sent.")


class EmbedderModel(BaseModel):
    """The served model and the inputs it takes: what a client preparing pixels needs."""

    model: ModelInfo
    input_size: int = Field(description="Inputs are uint8 RGB squares of this many pixels.", examples=[224])
    trim_letterbox: bool = Field(
        description="Uniform white letterbox bars are trimmed before resizing (finprint.imaging.letterbox_content)."
    )
    species: list[str] = Field(description="The species head's classes.")
    embedding_dim: int = Field(examples=[512])
    served_versions: list[str] = Field(
        [], description="Every model version this embedder serves (`?model_version=` picks one).",
        examples=[["finprint_embedder:2", "finprint_embedder:3"]])


class ExplainedPhoto(BaseModel):
    """Which regions of one photo of the pair drive the similarity."""

    heatmap: list[list[float]] = Field(
        description="[grid][grid], rows top to bottom over the photo as the model sees it (letterbox bars trimmed): "
        "the mean drop of the pair's cosine similarity when a window covering that cell is hidden.")
    overlay_png: str = Field(description="Base64 of a PNG: the photo, tinted red where the heatmap is high.")


class ExplainResponse(BaseModel):
    """Why two photos match (sliding occlusion, services/embedder/domain/explain.py)."""

    model: ModelInfo
    similarity: float = Field(description="Cosine similarity of the two photos' embeddings.")
    grid: int = Field(description="Cells per side of the lattice the heatmaps are on.")
    window: int = Field(description="Cells per side of the square hidden at a time.")
    photos: list[ExplainedPhoto] = Field(description="The query's, then the candidate's.")
