"""The embedder's HTTP contract: species probabilities and the re-identification embedding.

``POST /v1/embed`` is multipart: one or more ``images`` file parts and an optional ``boxes``
form field, a JSON list with one entry per image, ``null`` or ``[x0, y0, x1, y1]`` in pixels of
the upright photo (as the detector returns them), to crop that region first. The gateway sends
the original photo once with the detector's box; nothing is re-encoded.

Embeddings are L2-normalised and comparable only with embeddings of the same ``model`` name and
version. ``?embedding_encoding=base64`` returns each embedding as base64 of little-endian float32
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
