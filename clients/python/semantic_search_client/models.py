"""The service's request and response bodies, as typed models.

They mirror the server's schemas field for field (the service's test suite compares them with
its OpenAPI schema). Responses ignore fields they do not know, so a newer server still parses;
their enumerations are plain strings for the same reason. Requests refuse unknown fields, so a
misspelt option fails here rather than being sent.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

Mode = Literal["hybrid", "semantic", "keyword"]
GroupBy = Literal["document"]
# bool first: a JSON true stays a boolean.
MetadataValue = bool | int | float | str
Metadata = dict[str, MetadataValue]
Filter = dict[str, Any]


class ResponseModel(BaseModel):
    """A body the service sends: unknown fields are ignored (forward compatible)."""

    model_config = ConfigDict(extra="ignore", frozen=True)


class RequestModel(BaseModel):
    """A body the client sends: unknown fields are refused before anything is sent."""

    model_config = ConfigDict(extra="forbid")


# Requests


class SearchRequest(RequestModel):
    """One search; fields left unset are not sent, so the service's defaults apply."""

    query: str
    k: int = 5
    offset: int = 0
    mode: Mode = "hybrid"
    filter: Filter | None = None
    source: list[str] | None = None
    min_score: float | None = None
    group_by: GroupBy | None = None


class BatchSearchRequest(RequestModel):
    searches: list[SearchRequest]


class DocumentIn(RequestModel):
    title: str
    text: str
    metadata: Metadata = Field(default_factory=dict)


class BulkDocument(DocumentIn):
    doc_id: str


class BulkRequest(RequestModel):
    documents: list[BulkDocument]


# Searches


class Scores(ResponseModel):
    semantic: float | None
    keyword: float | None
    fused: float | None


class Ranks(ResponseModel):
    semantic: int | None
    keyword: int | None


class SearchResult(ResponseModel):
    """A passage: ``text`` is exactly ``document.text[start:end]``."""

    rank: int
    score: float
    text: str
    doc_id: str
    title: str
    metadata: Metadata
    chunk_id: int
    start: int
    end: int
    scores: Scores
    ranks: Ranks
    highlights: list[tuple[int, int]]
    other_matches: int | None = None


class SearchResponse(ResponseModel):
    query: str
    mode: str
    took_ms: float
    total: int
    results: list[SearchResult]
    index_build: str = ""


class BatchSearchResponse(ResponseModel):
    took_ms: float
    responses: list[SearchResponse]


# Documents


class DocumentSummary(ResponseModel):
    doc_id: str
    title: str
    chars: int
    passages: int
    metadata: Metadata


class DocumentList(ResponseModel):
    total: int
    documents: list[DocumentSummary]


class PassageSpan(ResponseModel):
    chunk_id: int
    start: int
    end: int


class DocumentDetail(ResponseModel):
    doc_id: str
    title: str
    text: str
    chars: int
    metadata: Metadata
    passages: list[PassageSpan]


class WriteResponse(ResponseModel):
    doc_id: str
    result: str
    passages: int
    seq: int


class BulkItem(ResponseModel):
    doc_id: str
    status: int
    result: str
    passages: int


class BulkResponse(ResponseModel):
    seq: int
    took_ms: float
    items: list[BulkItem]


class DeleteByFilterResponse(ResponseModel):
    deleted: int
    seq: int
    took_ms: float


# The service


class Health(ResponseModel):
    status: str


class Readiness(ResponseModel):
    status: str
    detail: str | None = None

    @property
    def is_ready(self) -> bool:
        return self.status == "ready"


class Info(ResponseModel):
    model_config = ConfigDict(protected_namespaces=())

    version: str
    model: str
    backend: str
    dimension: int
    documents: int
    passages: int
    seq: int
    writes: str
    built_at: datetime
    build_id: str
    index_format_version: int
    chunking: dict[str, float | int | str]
    keyword: dict[str, float | int | str]
    title_prefix: bool
    store: str
    default_mode: str
    fusion: dict[str, float | int | str]
