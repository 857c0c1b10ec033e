"""The bodies of ``app/routes/admin.py``: reindex requests and their status."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from indexer.backends import Backend


class ReindexRequest(BaseModel):
    """What to change; a field left out keeps the index's current setting. An empty body
    rebuilds with the same settings."""

    model_config = ConfigDict(
        extra="forbid",
        protected_namespaces=(),
        json_schema_extra={"examples": [{"chunk_size": 64, "chunk_overlap": 0.1}]},
    )

    model: str | None = Field(
        None,
        min_length=1,
        max_length=200,
        description="Embedding model to switch to; only models installed here (listed in "
        "this schema's enum) are accepted: nothing is downloaded.",
    )
    backend: Backend | None = Field(
        None, description="How the model runs (only backends usable here, see the enum)."
    )
    chunk_size: int | None = Field(
        None, ge=8, le=512, description="Passage size limit in model tokens."
    )
    chunk_overlap: float | None = Field(
        None, ge=0, lt=0.5, description="Share of a window repeated in the next."
    )
    title_prefix: bool | None = Field(
        None, description="Embed and keyword-index passages with their title first."
    )
    bm25_k1: float | None = Field(None, ge=0, le=10, description="BM25 term saturation.")
    bm25_b: float | None = Field(None, ge=0, le=1, description="BM25 length normalisation.")


class ReindexStatusBody(BaseModel):
    state: Literal["idle", "running", "done", "failed"]
    phase: str | None = Field(
        None,
        description="While running: `loading the model`, `rebuilding`, `catching up` (writes "
        "made meanwhile) or `switching` (writes held for a moment).",
    )
    done: int = Field(description="Items done in this phase (documents, then writes).")
    total: int = Field(description="Items in this phase.")
    started_at: datetime | None = None
    finished_at: datetime | None = None
    error: str | None = Field(None, description="Why it failed; the old index serves on.")
    from_build: str | None = Field(None, description="The build id it started from.")
    to_build: str | None = Field(None, description="The build id it switched to, once done.")
    seq: int | None = Field(None, description="The last write the new version covers.")
