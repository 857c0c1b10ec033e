"""Request and response bodies; their constraints are the API's input validation."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

EXAMPLE_QUERY = "Russian military presence"

QueryText = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=1000),
    Field(description="What to look for, in natural language (1-1000 characters after trimming)."),
]
TopK = Annotated[int, Field(ge=1, le=100, description="How many passages to return.")]
Offset = Annotated[int, Field(ge=0, le=1000, description="Skip this many results (for paging).")]
MinScore = Annotated[
    float | None,
    Field(ge=-1.0, le=1.0, description="Drop passages whose cosine similarity is below this."),
]
Sources = Annotated[
    list[str] | None,
    Field(max_length=100, description="Only search these documents (ids from GET /documents)."),
]


class SearchRequest(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"query": EXAMPLE_QUERY, "k": 5}]},
    )

    query: QueryText
    k: TopK = 5
    offset: Offset = 0
    source: Sources = None
    min_score: MinScore = None


class SearchResult(BaseModel):
    rank: int = Field(description="1-based position in the whole ranking (paging included).")
    score: float = Field(description="Cosine similarity of query and passage, -1 to 1.")
    text: str = Field(description="The passage: exactly document.text[start:end].")
    source: str = Field(description="The document the passage comes from (its id).")
    title: str
    doc_id: str
    chunk_id: int = Field(description="Position of the passage within its document, from 0.")
    start: int = Field(description="Character offset of the passage in the document text.")
    end: int = Field(description="Character offset one past the passage's last character.")


class SearchResponse(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "query": EXAMPLE_QUERY,
                    "took_ms": 12.3,
                    "total": 1,
                    "results": [
                        {
                            "rank": 1,
                            "score": 0.5526,
                            "text": "He acknowledged previous reports of Russian troop …",
                            "source": "004_6fdace10fca785c4.txt",
                            "title": "Mike Pompeo Calls Russia an 'Undesired Foreign Presence' …",
                            "doc_id": "004_6fdace10fca785c4.txt",
                            "chunk_id": 6,
                            "start": 2866,
                            "end": 3306,
                        }
                    ],
                }
            ]
        }
    )

    query: str
    took_ms: float = Field(description="Time spent searching, in milliseconds.")
    total: int = Field(description="Number of results in this response.")
    results: list[SearchResult]


class DocumentSummary(BaseModel):
    doc_id: str
    title: str
    chars: int = Field(description="Length of the document text in characters.")
    passages: int = Field(description="How many passages the document was split into.")


class DocumentList(BaseModel):
    total: int = Field(description="Number of documents in the index.")
    documents: list[DocumentSummary]


class PassageSpan(BaseModel):
    chunk_id: int
    start: int
    end: int


class DocumentDetail(BaseModel):
    doc_id: str
    title: str
    text: str
    chars: int
    passages: list[PassageSpan]


class Health(BaseModel):
    status: str


class Readiness(BaseModel):
    status: str
    detail: str | None = None


class Info(BaseModel):
    model_config = ConfigDict(protected_namespaces=())

    version: str = Field(description="Version of this service.")
    model: str
    dimension: int
    documents: int
    passages: int
    built_at: datetime
    index_format_version: int
    chunking: dict[str, float | int | str]
    store: str


class ErrorBody(BaseModel):
    detail: str | list[dict[str, object]]
