"""The bodies of ``app/routes/search.py``: searches, their results, batches."""

from __future__ import annotations

from typing import Annotated, Literal, Self

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    WithJsonSchema,
    model_validator,
)

from app.schemas.common import (
    FilterBody,
    MetadataOut,
    ShortText,
    integral,
)
from indexer.filters import Filter
from indexer.search import CANDIDATE_POOL, DEFAULT_MODE, Mode

EXAMPLE_QUERY = "Russian military presence"

QueryText = Annotated[
    ShortText,
    Field(description="What to look for, in natural language (up to 1000 characters)."),
]


MAX_K = 100
# The validator after the Field: before it, pydantic writes the bounds as "ge"/"le", which JSON
# Schema does not know, instead of "minimum"/"maximum".
TopK = Annotated[
    int,
    Field(ge=1, le=MAX_K, description="How many passages to return."),
    BeforeValidator(integral),
]
# Bounded so that offset + k stays within the candidate pool: a limit the schema can state.
Offset = Annotated[
    int,
    Field(ge=0, le=CANDIDATE_POOL - MAX_K, description="Skip this many results (for paging)."),
    BeforeValidator(integral),
]
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


# Request bodies are strict: JSON `true` is not the number 1, nor "5" the integer 5, just as the
# schema says.
class SearchRequest(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        strict=True,
        json_schema_extra={"examples": [{"query": EXAMPLE_QUERY, "k": 5}]},
    )

    query: QueryText
    k: TopK = 5
    offset: Offset = 0
    mode: SearchMode = DEFAULT_MODE
    filter: FilterBody = None
    source: Sources = None
    min_score: MinScore = None
    group_by: GroupBy = None

    @property
    def effective_filter(self) -> Filter | None:
        """``filter`` and the older ``source`` (document ids) together."""
        if not self.source:
            return self.filter
        if self.filter is None:
            return Filter.of_doc_ids(self.source)
        return self.filter.with_doc_ids(self.source)

    @model_validator(mode="after")
    def _one_filter(self) -> Self:
        self.effective_filter  # noqa: B018 (source and filter together must make one filter)
        return self


class BatchSearchRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

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
    metadata: MetadataOut
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
                    "index_build": "3f2c9a0e5b7d4c1e9a8b6d5c4e3f2a1b",
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
    index_build: str = Field(
        "",
        description="The build of the index that answered (the manifest's build id): it "
        "changes when a reindex switches, never otherwise.",
    )


class BatchSearchResponse(BaseModel):
    took_ms: float = Field(description="Time spent on the whole batch, in milliseconds.")
    responses: list[SearchResponse]
