"""``SearchClient`` and ``AsyncSearchClient``: the whole API, typed, over httpx.

Both take the same arguments and have the same methods (awaitable on the async one); the
requests themselves are built once, in ``endpoints``.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from types import TracebackType
from typing import Any, Self, TypeVar

import httpx

from semantic_search_client import endpoints
from semantic_search_client.endpoints import Call
from semantic_search_client.errors import TransportError, error_for
from semantic_search_client.models import (
    BatchSearchResponse,
    BulkDocument,
    BulkResponse,
    DeleteByFilterResponse,
    DocumentDetail,
    DocumentList,
    GroupBy,
    Health,
    Info,
    Metadata,
    Mode,
    Readiness,
    SearchRequest,
    SearchResponse,
    WriteResponse,
)
from semantic_search_client.retrying import RetryPolicy
from semantic_search_client.version import __version__

T = TypeVar("T")

DEFAULT_URL = "http://127.0.0.1:8000"
# Seconds per attempt. Generous: a bulk write embeds up to 100 documents before it answers.
DEFAULT_TIMEOUT = 30.0
URL_VARIABLE = "SEARCH_URL"
KEY_VARIABLE = "SEARCH_API_KEY"


class ClientConfig:
    """What both clients resolve from their arguments and the environment."""

    def __init__(
        self,
        base_url: str | None,
        api_key: str | None,
        timeout: float | httpx.Timeout,
        retries: int | RetryPolicy,
    ) -> None:
        self.base_url = base_url or os.environ.get(URL_VARIABLE) or DEFAULT_URL
        key = api_key if api_key is not None else os.environ.get(KEY_VARIABLE)
        # An empty key is no key, as for the service's SEARCH_API_KEY.
        self.api_key = key or None
        self.timeout = timeout if isinstance(timeout, httpx.Timeout) else httpx.Timeout(timeout)
        self.policy = retries if isinstance(retries, RetryPolicy) else RetryPolicy(retries)

    def headers(self, extra: Mapping[str, str] | None) -> dict[str, str]:
        headers = {
            "Accept": "application/json",
            "User-Agent": f"semantic-search-client/{__version__}",
        }
        if self.api_key is not None:
            headers["Authorization"] = f"Bearer {self.api_key}"
        return {**headers, **(extra or {})}

    def per_call(self, timeout: float | None) -> httpx.Timeout:
        return self.timeout if timeout is None else httpx.Timeout(timeout)


def answered(call: Call[Any], response: httpx.Response) -> httpx.Response:
    """The response if it is an answer; its typed error otherwise."""
    if response.is_success or response.status_code in call.answers:
        return response
    raise error_for(response)


def no_answer(call: Call[Any], base: httpx.URL, error: httpx.TransportError) -> TransportError:
    url = str(base).rstrip("/") + call.path
    return TransportError(f"{call.method} {url}: {type(error).__name__}: {error}")


class SearchClient:
    """A client of the Semantic Search service.

    ``base_url`` defaults to ``$SEARCH_URL``, then ``http://127.0.0.1:8000``; ``api_key`` to
    ``$SEARCH_API_KEY`` (sent as ``Authorization: Bearer``; writes need it, and reads when the
    service has a read key). ``timeout`` is in seconds per attempt (each method also takes
    ``timeout=``). ``retries`` more attempts are made on connection failures, 429 and 503,
    with exponential backoff and jitter and never sooner than Retry-After (default 0: none;
    a ``RetryPolicy`` tunes the waits). ``transport`` replaces httpx's (for tests, proxies).

    Use it as a context manager, or call ``close()``. Errors are ``SearchError`` subclasses.
    """

    def __init__(
        self,
        base_url: str | None = None,
        api_key: str | None = None,
        *,
        timeout: float | httpx.Timeout = DEFAULT_TIMEOUT,
        retries: int | RetryPolicy = 0,
        headers: Mapping[str, str] | None = None,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self._config = ClientConfig(base_url, api_key, timeout, retries)
        self._http = httpx.Client(
            base_url=self._config.base_url,
            headers=self._config.headers(headers),
            timeout=self._config.timeout,
            transport=transport,
        )

    @property
    def base_url(self) -> str:
        return str(self._http.base_url)

    def __repr__(self) -> str:
        return f"SearchClient(base_url={self.base_url!r})"

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    # Searching

    def search(
        self,
        query: str,
        *,
        k: int | None = None,
        offset: int | None = None,
        mode: Mode | None = None,
        filter: Mapping[str, Any] | None = None,
        source: Iterable[str] | None = None,
        min_score: float | None = None,
        group_by: GroupBy | None = None,
        timeout: float | None = None,
    ) -> SearchResponse:
        """Ranked passages for ``query`` (``POST /search``; the same as ``GET /search``).
        Options left as None are not sent: the service's defaults apply (k=5, hybrid)."""
        call = endpoints.search(
            query,
            k=k,
            offset=offset,
            mode=mode,
            filter=filter,
            source=source,
            min_score=min_score,
            group_by=group_by,
        )
        return self._send(call, timeout)

    def search_batch(
        self,
        searches: Iterable[SearchRequest | Mapping[str, Any] | str],
        *,
        timeout: float | None = None,
    ) -> BatchSearchResponse:
        """1 to 32 searches answered together (``POST /search/batch``): each a query, a
        ``SearchRequest`` or its fields as a mapping."""
        return self._send(endpoints.search_batch(searches), timeout)

    # Documents

    def get_document(self, doc_id: str, *, timeout: float | None = None) -> DocumentDetail:
        """A document's full text, title, metadata and passage spans (``NotFoundError``)."""
        return self._send(endpoints.get_document(doc_id), timeout)

    def list_documents(
        self,
        *,
        filter: Mapping[str, Any] | None = None,
        limit: int | None = None,
        offset: int | None = None,
        timeout: float | None = None,
    ) -> DocumentList:
        """Searchable documents in the order they were written, a page at a time."""
        call = endpoints.list_documents(filter=filter, limit=limit, offset=offset)
        return self._send(call, timeout)

    def put_document(
        self,
        doc_id: str,
        *,
        title: str,
        text: str,
        metadata: Metadata | None = None,
        refresh: bool = False,
        timeout: float | None = None,
    ) -> WriteResponse:
        """Add or replace a document. ``refresh=True`` returns once it is searchable (by
        default: once it is durable, searchable within a second)."""
        call = endpoints.put_document(
            doc_id, title=title, text=text, metadata=metadata, refresh=refresh
        )
        return self._send(call, timeout)

    def put_documents(
        self,
        documents: Iterable[BulkDocument | Mapping[str, Any]],
        *,
        refresh: bool = False,
        timeout: float | None = None,
    ) -> BulkResponse:
        """Add or replace up to 100 documents at once (``doc_id``, ``title``, ``text``,
        ``metadata``): all are validated first, and one invalid document writes none."""
        return self._send(endpoints.put_documents(documents, refresh=refresh), timeout)

    def delete_document(self, doc_id: str, *, timeout: float | None = None) -> None:
        """Delete a document (``NotFoundError`` if there is none)."""
        self._send(endpoints.delete_document(doc_id), timeout)

    def delete_documents(
        self, filter: Mapping[str, Any], *, timeout: float | None = None
    ) -> DeleteByFilterResponse:
        """Delete every document matching ``filter`` (required, not empty)."""
        return self._send(endpoints.delete_documents(filter), timeout)

    # The service

    def info(self, *, timeout: float | None = None) -> Info:
        """What is served: model, documents, passages, sequence number, build, settings."""
        return self._send(endpoints.info(), timeout)

    def ready(self, *, timeout: float | None = None) -> Readiness:
        """Whether searches can be answered (``.is_ready``); while not, ``.detail`` says why.
        A 503 here is an answer, not an error."""
        return self._send(endpoints.ready(), timeout)

    def health(self, *, timeout: float | None = None) -> Health:
        return self._send(endpoints.health(), timeout)

    def _send(self, call: Call[T], timeout: float | None) -> T:
        response = self._config.policy.retrying()(self._attempt, call, timeout)
        return call.parse(response)

    def _attempt(self, call: Call[Any], timeout: float | None) -> httpx.Response:
        try:
            response = self._http.request(
                call.method,
                call.path,
                params=call.params,
                json=call.body,
                timeout=self._config.per_call(timeout),
            )
        except httpx.TransportError as error:
            raise no_answer(call, self._http.base_url, error) from error
        return answered(call, response)


class AsyncSearchClient:
    """``SearchClient`` with awaitable methods: the same arguments, methods and errors.

    Use it as an async context manager, or ``await client.aclose()``. Like any httpx
    AsyncClient, use one instance within one event loop.
    """

    def __init__(
        self,
        base_url: str | None = None,
        api_key: str | None = None,
        *,
        timeout: float | httpx.Timeout = DEFAULT_TIMEOUT,
        retries: int | RetryPolicy = 0,
        headers: Mapping[str, str] | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self._config = ClientConfig(base_url, api_key, timeout, retries)
        self._http = httpx.AsyncClient(
            base_url=self._config.base_url,
            headers=self._config.headers(headers),
            timeout=self._config.timeout,
            transport=transport,
        )

    @property
    def base_url(self) -> str:
        return str(self._http.base_url)

    def __repr__(self) -> str:
        return f"AsyncSearchClient(base_url={self.base_url!r})"

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    async def search(
        self,
        query: str,
        *,
        k: int | None = None,
        offset: int | None = None,
        mode: Mode | None = None,
        filter: Mapping[str, Any] | None = None,
        source: Iterable[str] | None = None,
        min_score: float | None = None,
        group_by: GroupBy | None = None,
        timeout: float | None = None,
    ) -> SearchResponse:
        """See ``SearchClient.search``."""
        call = endpoints.search(
            query,
            k=k,
            offset=offset,
            mode=mode,
            filter=filter,
            source=source,
            min_score=min_score,
            group_by=group_by,
        )
        return await self._send(call, timeout)

    async def search_batch(
        self,
        searches: Iterable[SearchRequest | Mapping[str, Any] | str],
        *,
        timeout: float | None = None,
    ) -> BatchSearchResponse:
        return await self._send(endpoints.search_batch(searches), timeout)

    async def get_document(self, doc_id: str, *, timeout: float | None = None) -> DocumentDetail:
        return await self._send(endpoints.get_document(doc_id), timeout)

    async def list_documents(
        self,
        *,
        filter: Mapping[str, Any] | None = None,
        limit: int | None = None,
        offset: int | None = None,
        timeout: float | None = None,
    ) -> DocumentList:
        call = endpoints.list_documents(filter=filter, limit=limit, offset=offset)
        return await self._send(call, timeout)

    async def put_document(
        self,
        doc_id: str,
        *,
        title: str,
        text: str,
        metadata: Metadata | None = None,
        refresh: bool = False,
        timeout: float | None = None,
    ) -> WriteResponse:
        call = endpoints.put_document(
            doc_id, title=title, text=text, metadata=metadata, refresh=refresh
        )
        return await self._send(call, timeout)

    async def put_documents(
        self,
        documents: Iterable[BulkDocument | Mapping[str, Any]],
        *,
        refresh: bool = False,
        timeout: float | None = None,
    ) -> BulkResponse:
        return await self._send(endpoints.put_documents(documents, refresh=refresh), timeout)

    async def delete_document(self, doc_id: str, *, timeout: float | None = None) -> None:
        await self._send(endpoints.delete_document(doc_id), timeout)

    async def delete_documents(
        self, filter: Mapping[str, Any], *, timeout: float | None = None
    ) -> DeleteByFilterResponse:
        return await self._send(endpoints.delete_documents(filter), timeout)

    async def info(self, *, timeout: float | None = None) -> Info:
        return await self._send(endpoints.info(), timeout)

    async def ready(self, *, timeout: float | None = None) -> Readiness:
        return await self._send(endpoints.ready(), timeout)

    async def health(self, *, timeout: float | None = None) -> Health:
        return await self._send(endpoints.health(), timeout)

    async def _send(self, call: Call[T], timeout: float | None) -> T:
        retrying = self._config.policy.async_retrying()
        response: httpx.Response = await retrying(self._attempt, call, timeout)
        return call.parse(response)

    async def _attempt(self, call: Call[Any], timeout: float | None) -> httpx.Response:
        try:
            response = await self._http.request(
                call.method,
                call.path,
                params=call.params,
                json=call.body,
                timeout=self._config.per_call(timeout),
            )
        except httpx.TransportError as error:
            raise no_answer(call, self._http.base_url, error) from error
        return answered(call, response)
