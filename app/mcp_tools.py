"""The MCP tools (``/mcp``, see ``app/mcp.py``): what each does, its arguments and result as
JSON Schema, and how it runs.

Each tool runs the HTTP API's own code: the route functions of ``app/routes/`` (plain functions:
their dependencies are resolved here, in the order FastAPI resolves them, the key first), with
the same request and response models. So a tool answers, and refuses, exactly as its route
does, a key's scope included; ``app/mcp.py`` turns what a route would have answered with an
error status into a tool error with the same message. Blocking work runs in the thread pool
FastAPI runs sync routes in.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Annotated, Any, Generic, Literal, Self, TypeVar

from anyio import to_thread
from fastapi import HTTPException, Request, Response
from mcp_types import ToolAnnotations
from pydantic import BaseModel, ConfigDict, Field, model_validator

from app.deps import get_deleter, get_reader, get_search_latency, get_searcher, get_writer
from app.keys import Caller
from app.routes import documents, health, search
from app.routes.documents import MAX_LIST_OFFSET
from app.schemas.common import FILTER_SCHEMA, FilterBody, MetadataValue
from app.schemas.documents import (
    BulkDocument,
    DocId,
    DocumentDetail,
    DocumentList,
    RefreshParam,
    WriteResponse,
)
from app.schemas.health import Info
from app.schemas.search import SearchRequest, SearchResponse
from app.security import presented_keys, require_writer
from app.service import SearchService
from indexer.filters import Filter
from indexer.metadata import MAX_KEYS, parse_date
from indexer.stores import Reader

A = TypeVar("A", bound=BaseModel)
R = TypeVar("R", bound=BaseModel)
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Call:
    """A tool call: the service, who called (the key's caller, resolved from the HTTP request
    as the routes resolve it) and the HTTP request that carried it."""

    service: SearchService
    caller: Caller
    request: Request


@dataclass(frozen=True, slots=True)
class Tool(Generic[A, R]):
    name: str
    title: str
    description: str
    arguments: type[A]
    result: type[R]
    run: Callable[[Call, A], Awaitable[R]]
    writes: bool = False
    """Offered only to a key that may write (and refused, as the routes refuse, to others)."""
    annotations: ToolAnnotations = field(default_factory=ToolAnnotations)


async def _in_thread(function: Callable[[], T]) -> T:
    return await to_thread.run_sync(function)


# -- search ------------------------------------------------------------------------------------


async def _search(call: Call, arguments: SearchRequest) -> SearchResponse:
    searcher = await get_searcher(call.service)
    latency = await get_search_latency(call.request)
    return await _in_thread(partial(search.search_post, searcher, latency, call.caller, arguments))


# -- get_document ------------------------------------------------------------------------------

MAX_WINDOW = 20_000


class GetDocumentArguments(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    doc_id: Annotated[DocId, Field(description="The document's id (a search result's doc_id).")]
    start: int | None = Field(
        None,
        ge=0,
        description="With `end`: a passage's offsets (a search result's start and end). Only "
        "the text around them is returned, `window` characters on each side. Leave both out "
        "for the whole text.",
    )
    end: int | None = Field(None, ge=0, description="See `start`.")
    window: int = Field(
        1000,
        ge=0,
        le=MAX_WINDOW,
        description="Characters of context to return before `start` and after `end`.",
    )

    @model_validator(mode="after")
    def _span(self) -> Self:
        if (self.start is None) != (self.end is None):
            raise ValueError("give both start and end (a passage's offsets), or neither")
        if self.start is not None and self.end is not None and self.start > self.end:
            raise ValueError(f"start ({self.start}) is after end ({self.end})")
        return self


class DocumentText(DocumentDetail):
    text: str = Field(
        description="The document's text, or with start/end the part of it from text_start to "
        "text_end: always document.text[text_start:text_end]."
    )
    chars: int = Field(description="The length of the whole document's text.")
    text_start: int = Field(description="Offset in the document of `text`'s first character.")
    text_end: int = Field(description="Offset in the document one past `text`'s last character.")


async def _get_document(call: Call, arguments: GetDocumentArguments) -> DocumentText:
    detail = await _in_thread(
        partial(documents.get_document, arguments.doc_id, call.service, call.caller)
    )
    first, last = 0, detail.chars
    if arguments.start is not None and arguments.end is not None:
        if arguments.end > detail.chars:
            raise HTTPException(
                422,
                f"start and end must be within the document's {detail.chars} characters "
                f"(0 <= start <= end <= {detail.chars}), not {arguments.start} and "
                f"{arguments.end}",
            )
        first = max(0, arguments.start - arguments.window)
        last = min(detail.chars, arguments.end + arguments.window)
    return DocumentText(
        **{**detail.model_dump(), "text": detail.text[first:last]},
        text_start=first,
        text_end=last,
    )


# -- list_documents ----------------------------------------------------------------------------


class ListDocumentsArguments(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    filter: FilterBody = None
    limit: int = Field(100, ge=1, le=1000, description="Documents per page.")
    offset: int = Field(0, ge=0, le=MAX_LIST_OFFSET, description="Documents to skip.")


async def _list_documents(call: Call, arguments: ListDocumentsArguments) -> DocumentList:
    reader = await get_reader(call.service)
    return await _in_thread(
        partial(
            documents.list_documents,
            reader,
            call.caller,
            arguments.limit,
            arguments.offset,
            arguments.filter,
        )
    )


# -- describe ----------------------------------------------------------------------------------

MAX_SAMPLE = 1000
EXAMPLES = 5
_PAGE = 100

FieldType = Literal["string", "date", "integer", "number", "boolean"]


class DescribeArguments(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    sample: int = Field(
        200,
        ge=1,
        le=MAX_SAMPLE,
        description="How many documents to read for the metadata fields: the most recently "
        "written ones.",
    )


class MetadataField(BaseModel):
    name: str = Field(description="The field's name, as filters use it.")
    types: list[FieldType] = Field(
        description="The JSON types of its values: `date` is a string holding an ISO 8601 "
        "date or date-time, which range filters compare as a date."
    )
    documents: int = Field(description="How many of the documents scanned have this field.")
    examples: list[MetadataValue] = Field(
        description=f"Up to {EXAMPLES} of its values, the most frequent first."
    )
    minimum: MetadataValue | None = Field(
        None, description="The smallest number or earliest date seen (numbers and dates)."
    )
    maximum: MetadataValue | None = Field(
        None, description="The largest number or latest date seen (numbers and dates)."
    )


class Description(BaseModel):
    info: Info = Field(description="What GET /info says (counts within your key's scope).")
    documents_total: int = Field(description="Documents you can see.")
    documents_scanned: int = Field(
        description="How many of them (the most recently written) the fields were read from."
    )
    metadata_fields: list[MetadataField] = Field(
        description="The metadata fields of the scanned documents, the most common first."
    )
    filters: str = Field(description="How to write a filter from these fields.")


FILTER_HELP = (
    str(FILTER_SCHEMA["description"])
    + " `doc_id` filters on document ids. Example: "
    + json.dumps(FILTER_SCHEMA["examples"][0])
    + "."
)


def _field_type(value: MetadataValue) -> FieldType:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    return "date" if parse_date(value) is not None else "string"


@dataclass
class _Seen:
    documents: int = 0
    types: Counter[FieldType] = field(default_factory=Counter)
    values: Counter[tuple[str, MetadataValue]] = field(default_factory=Counter)
    low: tuple[float, MetadataValue] | None = None
    high: tuple[float, MetadataValue] | None = None

    def add(self, value: MetadataValue) -> None:
        kind = _field_type(value)
        self.types[kind] += 1
        self.values[(kind, value)] += 1  # the kind keeps 1 and True apart
        order = parse_date(value) if isinstance(value, str) else value
        if isinstance(value, bool) or order is None:
            return
        key = (float(order), value)
        if self.low is None or key[0] < self.low[0]:
            self.low = key
        if self.high is None or key[0] > self.high[0]:
            self.high = key

    def described(self, name: str) -> MetadataField:
        return MetadataField(
            name=name,
            types=[kind for kind, _ in self.types.most_common()],
            documents=self.documents,
            examples=[value for (_, value), _ in self.values.most_common(EXAMPLES)],
            minimum=None if self.low is None else self.low[1],
            maximum=None if self.high is None else self.high[1],
        )


def metadata_fields(
    reader: Reader, scope: Filter | None, sample: int
) -> tuple[int, int, list[MetadataField]]:
    """The metadata fields of the ``sample`` most recently written documents within ``scope``:
    how many documents there are, how many were scanned, and the fields."""
    total = reader.count_documents(scope)
    first = max(0, total - sample)
    seen: dict[str, _Seen] = {}
    scanned = 0
    for offset in range(first, total, _PAGE):
        for stored in reader.documents(offset, min(_PAGE, total - offset), scope):
            scanned += 1
            for name, value in stored.document.metadata.items():
                found = seen.setdefault(name, _Seen())
                found.documents += 1
                found.add(value)
    fields = sorted(seen.items(), key=lambda item: (-item[1].documents, item[0]))
    return total, scanned, [found.described(name) for name, found in fields]


async def _describe(call: Call, arguments: DescribeArguments) -> Description:
    reader = await get_reader(call.service)

    def describe() -> Description:
        info = health.info(reader, call.service, call.caller)
        total, scanned, fields = metadata_fields(reader, call.caller.scope, arguments.sample)
        return Description(
            info=info,
            documents_total=total,
            documents_scanned=scanned,
            metadata_fields=fields,
            filters=FILTER_HELP,
        )

    return await _in_thread(describe)


# -- writes ------------------------------------------------------------------------------------


class PutDocumentArguments(BulkDocument):
    refresh: RefreshParam = Field(
        "wait_for",
        description="`wait_for` (the default here): return once the document is searchable. "
        "`false`: return once it is durable; it becomes searchable within about a second.",
    )


async def _writer(call: Call) -> Caller:
    """The caller, if its key may write: the routes' own check, on the keys the request sent
    (a read key: 403 "this API key cannot write"; none, with open reads: 401)."""
    return await require_writer(call.service, await presented_keys(call.request))


async def _put_document(call: Call, arguments: PutDocumentArguments) -> WriteResponse:
    caller = await _writer(call)
    writer = await get_writer(call.service)
    return await _in_thread(
        partial(
            documents.put_document,
            arguments.doc_id,
            arguments,
            writer,
            caller,
            Response(),  # the route sets 200 or 201 on it; the result says which
            arguments.refresh,
        )
    )


class DeleteDocumentArguments(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    doc_id: Annotated[DocId, Field(description="The id of the document to delete.")]


class Deleted(BaseModel):
    doc_id: str
    result: Literal["deleted"] = "deleted"


async def _delete_document(call: Call, arguments: DeleteDocumentArguments) -> Deleted:
    caller = await _writer(call)
    deleter = await get_deleter(call.service)
    await _in_thread(partial(documents.delete_document, arguments.doc_id, deleter, caller))
    return Deleted(doc_id=arguments.doc_id)


# -- the tools ---------------------------------------------------------------------------------

_READS = ToolAnnotations(read_only_hint=True, open_world_hint=False)

TOOLS: Sequence[Tool[Any, Any]] = (
    Tool(
        name="search",
        title="Search the articles",
        description=(
            "Search the indexed articles with a question or keywords in natural language. "
            "Returns the best-matching passages, best first; each result has the passage "
            "`text` (exactly document.text[start:end]), its `doc_id`, `title`, character "
            "offsets `start`/`end`, `score` and the document's `metadata`. `mode`: `hybrid` "
            "(default, usually best), `semantic` (meaning) or `keyword` (BM25 over words). "
            "`filter` keeps only documents whose metadata match (call `describe` for the "
            'fields), e.g. {"section": "world", "published": {"gte": "2019-01-01"}}. '
            '`group_by: "document"` returns one passage per document. Page with `offset`. '
            "To read around a passage, call `get_document` with its doc_id, start and end."
        ),
        arguments=SearchRequest,
        result=SearchResponse,
        run=_search,
        annotations=_READS,
    ),
    Tool(
        name="get_document",
        title="Read a document",
        description=(
            "One document by id: title, metadata, the spans of its passages and its text. "
            "With `start` and `end` (a search result's offsets) only the text around that "
            "passage is returned, `window` characters on each side (1000 by default), and "
            "`text_start`/`text_end` say where that slice lies in the document; without them, "
            "the whole text (up to 200 000 characters)."
        ),
        arguments=GetDocumentArguments,
        result=DocumentText,
        run=_get_document,
        annotations=_READS,
    ),
    Tool(
        name="list_documents",
        title="List documents",
        description=(
            "The documents, in the order they were written (a replaced one moves to the end): "
            "id, title, size in characters, passage count and metadata, without their text. "
            "`filter` (as in `search`) keeps only the matching ones, and `total` counts all "
            "of those. Page with `limit` and `offset`."
        ),
        arguments=ListDocumentsArguments,
        result=DocumentList,
        run=_list_documents,
        annotations=_READS,
    ),
    Tool(
        name="describe",
        title="Describe the index and its metadata fields",
        description=(
            "What is served (model, documents and passages, chunking, whether writes are "
            "enabled: what GET /info says), and the metadata fields of the documents you can "
            f"see, read from the most recently written ones (up to {MAX_SAMPLE}; "
            "`documents_scanned` says how many): each field's types, how many documents have "
            "it, example values and the range of its numbers or dates. Call it before writing "
            "a `filter`."
        ),
        arguments=DescribeArguments,
        result=Description,
        run=_describe,
        annotations=_READS,
    ),
    Tool(
        name="put_document",
        title="Add or replace a document",
        description=(
            "Add a document, or replace the one with this id: `title`, `text` (kept exactly "
            "as sent; search offsets index into it) and `metadata` (a flat object: strings, "
            f"numbers, booleans, dates as ISO strings; up to {MAX_KEYS} keys). It is split into "
            "passages and embedded; by default the call returns once it is searchable. The "
            "result says `created` or `replaced` and how many passages it has."
        ),
        arguments=PutDocumentArguments,
        result=WriteResponse,
        run=_put_document,
        writes=True,
        annotations=ToolAnnotations(
            read_only_hint=False, destructive_hint=True, idempotent_hint=True, open_world_hint=False
        ),
    ),
    Tool(
        name="delete_document",
        title="Delete a document",
        description=(
            "Delete the document with this id: it is gone from searches and listings when the "
            "call returns. An id with no document is an error."
        ),
        arguments=DeleteDocumentArguments,
        result=Deleted,
        run=_delete_document,
        writes=True,
        annotations=ToolAnnotations(
            read_only_hint=False, destructive_hint=True, idempotent_hint=True, open_world_hint=False
        ),
    ),
)
