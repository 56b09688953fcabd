"""Schemas used by more than one service contract."""

from __future__ import annotations

from pydantic import BaseModel, Field


class ModelInfo(BaseModel):
    """Which model produced a result. Embeddings of different versions are never mixed."""

    name: str = Field(examples=["finprint_embedder"])
    version: str = Field(examples=["1"])


class SpeciesScore(BaseModel):
    species: str = Field(examples=["humpback_whale"])
    score: float = Field(ge=0.0, le=1.0, examples=[0.97])
