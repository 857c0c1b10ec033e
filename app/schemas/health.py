"""The bodies of ``app/routes/health.py``: probes and ``/info``."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from indexer.backends import Backend
from indexer.search import Mode


class Health(BaseModel):
    status: str


class Readiness(BaseModel):
    status: str
    detail: str | None = None


class Info(BaseModel):
    model_config = ConfigDict(protected_namespaces=())

    version: str = Field(description="Version of this service.")
    model: str
    backend: Backend = Field(description="How the model runs for queries (SEARCH_BACKEND).")
    dimension: int
    documents: int = Field(description="Documents searches see now.")
    passages: int
    seq: int = Field(description="The last write searches see (0: none since the build).")
    writes: str = Field(description="`enabled`, or why writes are refused.")
    built_at: datetime = Field(description="When the served index version was written.")
    build_id: str = Field(
        description="The build of the served index; changes when a reindex switches."
    )
    index_format_version: int
    chunking: dict[str, float | int | str]
    keyword: dict[str, float | int | str]
    title_prefix: bool
    store: str
    default_mode: Mode
    fusion: dict[str, float | int | str]
