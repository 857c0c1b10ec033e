"""Every route the client calls, and the requests it sends there, built once for the
synchronous and the asynchronous client alike.

``ENDPOINTS`` lists them with their request and response models and the query parameters the
client sends; the service's test suite checks each against its OpenAPI schema.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar
from urllib.parse import quote

import httpx
from pydantic import BaseModel, ValidationError

from semantic_search_client.errors import InvalidRequestError, SearchError
from semantic_search_client.models import (
    BatchSearchRequest,
    BatchSearchResponse,
    BulkDocument,
    BulkRequest,
    BulkResponse,
    DeleteByFilterResponse,
    DocumentDetail,
    DocumentIn,
    DocumentList,
    GroupBy,
    Health,
    Info,
    Metadata,
    Mode,
    Readiness,
    RequestModel,
    SearchRequest,
    SearchResponse,
    WriteResponse,
)

T = TypeVar("T")
M = TypeVar("M", bound=BaseModel)
R = TypeVar("R", bound=RequestModel)


@dataclass(frozen=True)
class Endpoint:
    """A route: ``path`` as the OpenAPI schema spells it."""

    method: str
    path: str
    request: type[RequestModel] | None = None
    response: type[BaseModel] | None = None
    query: tuple[str, ...] = ()


SEARCH = Endpoint("POST", "/search", SearchRequest, SearchResponse)
SEARCH_BATCH = Endpoint("POST", "/search/batch", BatchSearchRequest, BatchSearchResponse)
LIST_DOCUMENTS = Endpoint(
    "GET", "/documents", response=DocumentList, query=("filter", "limit", "offset")
)
GET_DOCUMENT = Endpoint("GET", "/documents/{doc_id}", response=DocumentDetail)
PUT_DOCUMENT = Endpoint("PUT", "/documents/{doc_id}", DocumentIn, WriteResponse, ("refresh",))
PUT_DOCUMENTS = Endpoint("POST", "/documents", BulkRequest, BulkResponse, ("refresh",))
DELETE_DOCUMENT = Endpoint("DELETE", "/documents/{doc_id}")
DELETE_DOCUMENTS = Endpoint(
    "DELETE", "/documents", response=DeleteByFilterResponse, query=("filter",)
)
INFO = Endpoint("GET", "/info", response=Info)
READY = Endpoint("GET", "/ready", response=Readiness)
HEALTH = Endpoint("GET", "/health", response=Health)

ENDPOINTS = (
    SEARCH,
    SEARCH_BATCH,
    LIST_DOCUMENTS,
    GET_DOCUMENT,
    PUT_DOCUMENT,
    PUT_DOCUMENTS,
    DELETE_DOCUMENT,
    DELETE_DOCUMENTS,
    INFO,
    READY,
    HEALTH,
)


@dataclass(frozen=True)
class Call(Generic[T]):
    """One request, and how to read its answer. ``answers`` are the statuses that are an
    answer rather than an error (``/ready``'s 503 says "not yet")."""

    method: str
    path: str
    parse: Callable[[httpx.Response], T]
    params: dict[str, str] = field(default_factory=dict)
    body: Any = None
    answers: frozenset[int] = frozenset()


def document_path(doc_id: str) -> str:
    """``/documents/{doc_id}`` with the id percent-encoded, but its slashes kept: the service
    routes ``{doc_id:path}``. A ``.`` or ``..`` segment is encoded too, or the URL would be
    normalised into another path."""
    if not doc_id:
        raise InvalidRequestError("doc_id must not be empty")
    segments = [quote(segment, safe="") for segment in doc_id.split("/")]
    segments = [s.replace(".", "%2E") if s in (".", "..") else s for s in segments]
    return "/documents/" + "/".join(segments)


def body_of(model: type[R], value: R | Mapping[str, Any]) -> R:
    """A request body from a model or a mapping; invalid input fails here, as the service's
    422 would (an InvalidRequestError without a status code)."""
    if isinstance(value, model):
        return value
    try:
        return model.model_validate(value)
    except ValidationError as error:
        raise InvalidRequestError(
            [dict(e) for e in error.errors(include_url=False, include_context=False)]
        ) from None


def parser(model: type[M]) -> Callable[[httpx.Response], M]:
    def parse(response: httpx.Response) -> M:
        try:
            return model.model_validate_json(response.content)
        except ValidationError as error:
            raise SearchError(
                f"unexpected {model.__name__} from {response.request.url}: {error}",
                status_code=response.status_code,
                response=response,
            ) from None

    return parse


def no_content(response: httpx.Response) -> None:
    return None


def _json_body(model: RequestModel) -> Any:
    # Only what the caller set: the service's defaults apply to the rest.
    return model.model_dump(mode="json", exclude_unset=True)


def _refresh(refresh: bool) -> dict[str, str]:
    return {"refresh": "wait_for"} if refresh else {}


def search(
    query: str,
    *,
    k: int | None = None,
    offset: int | None = None,
    mode: Mode | None = None,
    filter: Mapping[str, Any] | None = None,
    source: Iterable[str] | None = None,
    min_score: float | None = None,
    group_by: GroupBy | None = None,
) -> Call[SearchResponse]:
    options = {
        "k": k,
        "offset": offset,
        "mode": mode,
        "filter": None if filter is None else dict(filter),
        "source": None if source is None else list(source),
        "min_score": min_score,
        "group_by": group_by,
    }
    given = {name: value for name, value in options.items() if value is not None}
    request = body_of(SearchRequest, {"query": query, **given})
    return Call(SEARCH.method, SEARCH.path, parser(SearchResponse), body=_json_body(request))


def search_batch(
    searches: Iterable[SearchRequest | Mapping[str, Any] | str],
) -> Call[BatchSearchResponse]:
    items = [body_of(SearchRequest, {"query": s} if isinstance(s, str) else s) for s in searches]
    request = BatchSearchRequest(searches=items)
    return Call(
        SEARCH_BATCH.method,
        SEARCH_BATCH.path,
        parser(BatchSearchResponse),
        body=_json_body(request),
    )


def list_documents(
    *, filter: Mapping[str, Any] | None = None, limit: int | None = None, offset: int | None = None
) -> Call[DocumentList]:
    params = {}
    if filter is not None:
        params["filter"] = json.dumps(dict(filter))
    if limit is not None:
        params["limit"] = str(limit)
    if offset is not None:
        params["offset"] = str(offset)
    return Call(LIST_DOCUMENTS.method, LIST_DOCUMENTS.path, parser(DocumentList), params=params)


def get_document(doc_id: str) -> Call[DocumentDetail]:
    return Call(GET_DOCUMENT.method, document_path(doc_id), parser(DocumentDetail))


def put_document(
    doc_id: str, *, title: str, text: str, metadata: Metadata | None = None, refresh: bool = False
) -> Call[WriteResponse]:
    fields: dict[str, Any] = {"title": title, "text": text}
    if metadata is not None:
        fields["metadata"] = metadata
    document = body_of(DocumentIn, fields)
    return Call(
        PUT_DOCUMENT.method,
        document_path(doc_id),
        parser(WriteResponse),
        params=_refresh(refresh),
        body=_json_body(document),
    )


def put_documents(
    documents: Iterable[BulkDocument | Mapping[str, Any]], *, refresh: bool = False
) -> Call[BulkResponse]:
    request = BulkRequest(documents=[body_of(BulkDocument, d) for d in documents])
    return Call(
        PUT_DOCUMENTS.method,
        PUT_DOCUMENTS.path,
        parser(BulkResponse),
        params=_refresh(refresh),
        body=_json_body(request),
    )


def delete_document(doc_id: str) -> Call[None]:
    return Call(DELETE_DOCUMENT.method, document_path(doc_id), no_content)


def delete_documents(filter: Mapping[str, Any]) -> Call[DeleteByFilterResponse]:
    return Call(
        DELETE_DOCUMENTS.method,
        DELETE_DOCUMENTS.path,
        parser(DeleteByFilterResponse),
        params={"filter": json.dumps(dict(filter))},
    )


def info() -> Call[Info]:
    return Call(INFO.method, INFO.path, parser(Info))


def ready() -> Call[Readiness]:
    return Call(READY.method, READY.path, parser(Readiness), answers=frozenset({503}))


def health() -> Call[Health]:
    return Call(HEALTH.method, HEALTH.path, parser(Health))
