"""Request and response bodies; their constraints are the API's input validation."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal, Self

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    PlainValidator,
    StrictBool,
    StrictFloat,
    StrictInt,
    StrictStr,
    StringConstraints,
    WithJsonSchema,
    model_validator,
)

from indexer.backends import Backend
from indexer.filters import MAX_FIELDS, MAX_VALUES, Filter, parse_filter
from indexer.metadata import (
    KEY_PATTERN,
    MAX_KEYS,
    MAX_SAFE_INTEGER,
    MAX_STRING_CHARS,
    RESERVED_KEYS,
    validate_metadata,
)
from indexer.search import CANDIDATE_POOL, DEFAULT_MODE, Mode

EXAMPLE_QUERY = "Russian military presence"

# bool first: a JSON true must stay a boolean, not become 1.
MetadataValue = StrictBool | StrictInt | StrictFloat | StrictStr
# validate_metadata's rules, stated in full, so that what the schema allows is accepted.
METADATA_SCHEMA: dict[str, Any] = {
    "type": "object",
    "maxProperties": MAX_KEYS,
    "propertyNames": {"pattern": KEY_PATTERN, "not": {"enum": sorted(RESERVED_KEYS)}},
    "additionalProperties": {
        "anyOf": [
            {"type": "string", "maxLength": MAX_STRING_CHARS},
            {"type": "number", "minimum": -MAX_SAFE_INTEGER, "maximum": MAX_SAFE_INTEGER},
            {"type": "boolean"},
        ]
    },
}
MetadataIn = Annotated[
    dict[str, MetadataValue],
    AfterValidator(validate_metadata),
    WithJsonSchema(METADATA_SCHEMA),
    Field(
        description=f"A flat object of strings, numbers, booleans and ISO dates (as strings): "
        f"at most {MAX_KEYS} keys (letters, digits, underscores; not doc_id), strings up to "
        f"{MAX_STRING_CHARS} characters, numbers within ±2^53. Searches filter on it.",
    ),
]
MetadataOut = Annotated[
    dict[str, MetadataValue], Field(description="The document's metadata, as written.")
]

# Not only whitespace, for the schema: a character that Python's str.strip() keeps (the checks
# use strip, for a clear message). Spelled out rather than \S because JSON Schema (ECMAScript),
# Python and Rust disagree on what \s covers, and the schema must accept exactly what the
# service does (tests/unit/test_schemas.py compares the two over all of Unicode).
NOT_BLANK = r"[^\t\n\x0b\x0c\r\x1c-\x20\x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]"
_NOT_BLANK_SCHEMA = {"pattern": NOT_BLANK}


def trimmed(text: str) -> str:
    """``text`` without surrounding whitespace, which must leave something."""
    stripped = text.strip()
    if not stripped:
        raise ValueError("it is empty or only whitespace")
    return stripped


def _not_blank(text: str) -> str:
    trimmed(text)
    return text


QueryText = Annotated[
    str,
    StringConstraints(max_length=1000),
    AfterValidator(trimmed),
    Field(
        description="What to look for, in natural language (up to 1000 characters).",
        json_schema_extra=_NOT_BLANK_SCHEMA,
    ),
]


def _integral(value: object) -> object:
    # JSON Schema's "integer" includes 5.0; strict bodies would otherwise refuse it.
    return int(value) if isinstance(value, float) and value.is_integer() else value


MAX_K = 100
# The validator after the Field: before it, pydantic writes the bounds as "ge"/"le", which JSON
# Schema does not know, instead of "minimum"/"maximum".
TopK = Annotated[
    int,
    Field(ge=1, le=MAX_K, description="How many passages to return."),
    BeforeValidator(_integral),
]
# Bounded so that offset + k stays within the candidate pool: a limit the schema can state.
Offset = Annotated[
    int,
    Field(ge=0, le=CANDIDATE_POOL - MAX_K, description="Skip this many results (for paging)."),
    BeforeValidator(_integral),
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

# parse_filter's rules, stated in full (schemathesis checks that the schema and the service
# agree): keys as for metadata, numbers within ±2^53, a range's bounds all numbers or all dates,
# and doc_id compared only for equality, with strings.
_NUMBER = {"type": "number", "minimum": -MAX_SAFE_INTEGER, "maximum": MAX_SAFE_INTEGER}
_DATE = {
    "anyOf": [{"type": "string", "format": "date"}, {"type": "string", "format": "date-time"}],
    "description": "an ISO 8601 date or RFC 3339 date-time",
}
_SCALAR = {"anyOf": [{"type": "string"}, _NUMBER, {"type": "boolean"}]}


def _list_of(item: dict[str, Any]) -> dict[str, Any]:
    return {"type": "array", "items": item, "minItems": 1, "maxItems": MAX_VALUES}


def _operators(value: dict[str, Any], bound: dict[str, Any] | None) -> dict[str, Any]:
    ranges = {} if bound is None else dict.fromkeys(("gt", "gte", "lt", "lte"), bound)
    return {
        "type": "object",
        "minProperties": 1,
        "additionalProperties": False,
        "properties": {"eq": value, "in": _list_of(value), **ranges},
    }


_DOC_IDS = {"type": "string"}
FILTER_SCHEMA: dict[str, Any] = {
    "type": "object",
    "maxProperties": MAX_FIELDS,
    "description": "Only documents whose fields all match (AND). A field is `doc_id` or a "
    "metadata key; its condition is a value (equality), a list of values (any of), or "
    "operators: `eq`, `in`, `gt`, `gte`, `lt`, `lte`. Ranges take numbers or ISO dates "
    "(`2019-05-01`, `2019-05-01T12:00:00Z`). Applied before ranking, in every mode.",
    "propertyNames": {"pattern": KEY_PATTERN},
    "properties": {"doc_id": {"anyOf": [_DOC_IDS, _list_of(_DOC_IDS), _operators(_DOC_IDS, None)]}},
    "additionalProperties": {
        "anyOf": [
            _SCALAR,
            _list_of(_SCALAR),
            _operators(_SCALAR, _NUMBER),
            _operators(_SCALAR, _DATE),
        ]
    },
    "examples": [{"section": "world", "year": {"gte": 2019}}],
}


def _filter(raw: object) -> Filter | None:
    if isinstance(raw, Filter):
        return raw
    return parse_filter(raw)  # a FilterError is a ValueError: a 422 naming the problem


FilterBody = Annotated[
    Filter | None,
    PlainValidator(_filter),
    PlainSerializer(lambda f: None if f is None else f.to_json()),
    WithJsonSchema({"anyOf": [FILTER_SCHEMA, {"type": "null"}]}),
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


class DocumentSummary(BaseModel):
    doc_id: str
    title: str
    chars: int = Field(description="Length of the document text in characters.")
    passages: int = Field(description="How many passages the document was split into.")
    metadata: MetadataOut


class DocumentList(BaseModel):
    total: int = Field(
        description="Number of documents in the index (matching the filter, if one is given)."
    )
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
    metadata: MetadataOut
    passages: list[PassageSpan]


MAX_DOCUMENT_CHARS = 200_000
MAX_BULK_DOCUMENTS = 100
DOC_ID_PATTERN = r"^[^\x00-\x1f\x7f]{1,512}$"
DocId = Annotated[
    str,
    StringConstraints(min_length=1, max_length=512, pattern=DOC_ID_PATTERN),
    Field(description="1-512 characters, no control characters; may contain /."),
]


class DocumentIn(BaseModel):
    """A document to add or replace."""

    model_config = ConfigDict(
        extra="forbid",
        strict=True,
        json_schema_extra={
            "examples": [
                {
                    "title": "Venezuela talks resume",
                    "text": "Government and opposition delegates met in Oslo on Tuesday.",
                    "metadata": {"section": "world", "published": "2019-05-28", "year": 2019},
                }
            ]
        },
    )

    title: Annotated[
        str,
        StringConstraints(max_length=1000),
        AfterValidator(trimmed),
        Field(
            description="Up to 1000 characters; shown with results and embedded with passages.",
            json_schema_extra=_NOT_BLANK_SCHEMA,
        ),
    ]
    # Kept as sent, not trimmed: passage offsets index into it.
    text: Annotated[
        str,
        StringConstraints(max_length=MAX_DOCUMENT_CHARS),
        AfterValidator(_not_blank),
        Field(
            description=f"The full text, up to {MAX_DOCUMENT_CHARS} characters.",
            json_schema_extra=_NOT_BLANK_SCHEMA,
        ),
    ]
    metadata: MetadataIn = Field(default_factory=dict)


class BulkDocument(DocumentIn):
    doc_id: DocId


class BulkRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    documents: list[BulkDocument] = Field(
        min_length=1,
        max_length=MAX_BULK_DOCUMENTS,
        description=f"1 to {MAX_BULK_DOCUMENTS} documents, embedded in shared batches. A later "
        "one with the same id replaces an earlier one.",
    )


Refresh = Literal["false", "wait_for"]
RefreshParam = Annotated[
    Refresh,
    Field(
        description="`false`: return once the write is durable; it becomes searchable within "
        "SEARCH_REFRESH_INTERVAL (1 s by default). `wait_for`: return once it is searchable."
    ),
]
WriteOutcome = Literal["created", "replaced"]


class WriteResponse(BaseModel):
    doc_id: str
    result: WriteOutcome
    passages: int = Field(description="How many passages the document was split into.")
    seq: int = Field(description="The index's sequence number after this write.")


class DeleteByFilterResponse(BaseModel):
    deleted: int = Field(description="How many documents were deleted.")
    seq: int = Field(description="The index's sequence number after these deletes.")
    took_ms: float


class BulkItem(BaseModel):
    doc_id: str
    status: Literal[200, 201] = Field(description="201 created, 200 replaced.")
    result: WriteOutcome
    passages: int


class BulkResponse(BaseModel):
    seq: int = Field(description="The index's sequence number after these writes.")
    took_ms: float
    items: list[BulkItem] = Field(description="One per document, in request order.")


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


class ErrorBody(BaseModel):
    detail: str | list[dict[str, object]]
