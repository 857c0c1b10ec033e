"""Request and response bodies; their constraints are the API's input validation."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal, Self

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    WithJsonSchema,
    model_validator,
)

from indexer.backends import Backend
from indexer.search import CANDIDATE_POOL, DEFAULT_MODE, Mode

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
    Field(
        description="Drop results scoring below this. The score is the mode's own: cosine "
        "similarity (-1..1) in semantic mode, BM25 (0 and up) in keyword mode, the fused score "
        "in hybrid mode (0..1 with convex fusion; at most 2/(rrf_k+1) with RRF)."
    ),
]
SearchMode = Annotated[
    Mode,
    Field(
        description="semantic: embedding similarity; keyword: BM25 over stemmed words; "
        "hybrid: both rankings fused."
    ),
]
GroupBy = Annotated[
    Literal["document"] | None,
    Field(description="`document`: at most one passage per document, its best."),
]
Sources = Annotated[
    list[str] | None,
    Field(max_length=100, description="Only search these documents (ids from GET /documents)."),
]

# The same as query parameters, where leaving one out is how to say "none": documented without
# the JSON body's `null`, Swagger UI offers a dropdown, a list editor and a number box for them
# (for `X | null` it can only offer a free text box).
GroupByParam = Annotated[GroupBy, WithJsonSchema({"type": "string", "enum": ["document"]})]
SourcesParam = Annotated[
    Sources, WithJsonSchema({"type": "array", "items": {"type": "string"}, "maxItems": 100})
]
MinScoreParam = Annotated[MinScore, WithJsonSchema({"type": "number"})]


class SearchRequest(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"query": EXAMPLE_QUERY, "k": 5}]},
    )

    query: QueryText
    k: TopK = 5
    offset: Offset = 0
    mode: SearchMode = DEFAULT_MODE
    source: Sources = None
    min_score: MinScore = None
    group_by: GroupBy = None

    @model_validator(mode="after")
    def _within_the_candidate_pool(self) -> Self:
        if self.offset + self.k > CANDIDATE_POOL:
            raise ValueError(f"offset + k must be at most {CANDIDATE_POOL}")
        return self


class BatchSearchRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    searches: list[SearchRequest] = Field(
        min_length=1, max_length=32, description="1 to 32 searches, answered together."
    )


class Scores(BaseModel):
    semantic: float | None = Field(description="Cosine similarity; null if not retrieved.")
    keyword: float | None = Field(description="BM25 score; null if no query word matched.")
    fused: float | None = Field(description="Hybrid mode's fused score; null in other modes.")


class Ranks(BaseModel):
    semantic: int | None = Field(description="Rank in the semantic list; null if not in it.")
    keyword: int | None = Field(description="Rank in the keyword list; null if not in it.")


class SearchResult(BaseModel):
    rank: int = Field(description="1-based position in the whole ranking (paging included).")
    score: float = Field(description="The score this mode ranks by (see `scores`).")
    text: str = Field(description="The passage: exactly document.text[start:end].")
    doc_id: str = Field(description="The document the passage comes from.")
    title: str
    chunk_id: int = Field(description="Position of the passage within its document, from 0.")
    start: int = Field(description="Character offset of the passage in the document text.")
    end: int = Field(description="Character offset one past the passage's last character.")
    scores: Scores
    ranks: Ranks
    highlights: list[tuple[int, int]] = Field(
        description="[start, end) character spans inside `text` of words matching query terms."
    )
    other_matches: int | None = Field(
        None,
        description="With group_by=document: how many more passages of this document matched.",
    )


class SearchResponse(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "query": EXAMPLE_QUERY,
                    "mode": "hybrid",
                    "took_ms": 12.3,
                    "total": 1,
                    "results": [
                        {
                            "rank": 1,
                            "score": 0.0325,
                            "text": "He acknowledged previous reports of Russian troop …",
                            "title": "Mike Pompeo Calls Russia an 'Undesired Foreign Presence' …",
                            "doc_id": "004_6fdace10fca785c4.txt",
                            "chunk_id": 6,
                            "start": 2866,
                            "end": 3306,
                            "scores": {"semantic": 0.5433, "keyword": 3.61, "fused": 0.0325},
                            "ranks": {"semantic": 2, "keyword": 1},
                            "highlights": [[35, 42], [225, 233]],
                            "other_matches": None,
                        }
                    ],
                }
            ]
        }
    )

    query: str
    mode: Mode
    took_ms: float = Field(description="Time spent searching, in milliseconds.")
    total: int = Field(description="Number of results in this response.")
    results: list[SearchResult]


class BatchSearchResponse(BaseModel):
    took_ms: float = Field(description="Time spent on the whole batch, in milliseconds.")
    responses: list[SearchResponse]


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
    backend: Backend = Field(description="How the model runs for queries (SEARCH_BACKEND).")
    dimension: int
    documents: int
    passages: int
    built_at: datetime
    index_format_version: int
    chunking: dict[str, float | int | str]
    keyword: dict[str, float | int | str]
    title_prefix: bool
    store: str
    default_mode: Mode
    fusion: dict[str, float | int | str]


class ErrorBody(BaseModel):
    detail: str | list[dict[str, object]]
