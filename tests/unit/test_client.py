"""The client's own logic, without a service (httpx's MockTransport answers): document ids in
URLs, which error each status becomes, Retry-After, and what the models accept."""

from __future__ import annotations

import email.utils
import json
import time

import httpx
import pytest

from semantic_search_client import (
    AuthenticationError,
    ConflictError,
    InvalidRequestError,
    NotFoundError,
    PermissionDeniedError,
    RateLimitedError,
    SearchClient,
    SearchError,
    SearchRequest,
    SearchResult,
    ServerError,
    UnavailableError,
)
from semantic_search_client.errors import parse_retry_after

RESULT = {
    "rank": 1,
    "score": 0.5,
    "text": "passage",
    "doc_id": "a.txt",
    "title": "A",
    "metadata": {"year": 2019, "world": True},
    "chunk_id": 0,
    "start": 0,
    "end": 7,
    "scores": {"semantic": 0.5, "keyword": None, "fused": None},
    "ranks": {"semantic": 1, "keyword": None},
    "highlights": [[0, 7]],
}


def answering(status: int, content: bytes = b"", **headers: str) -> tuple[SearchClient, list[str]]:
    """A client whose every request gets this answer; the raw paths it sent."""
    sent: list[str] = []

    def handle(request: httpx.Request) -> httpx.Response:
        sent.append(request.url.raw_path.decode())
        return httpx.Response(status, content=content, headers=headers)

    return SearchClient("http://service.test/prefix", transport=httpx.MockTransport(handle)), sent


@pytest.mark.parametrize(
    ("doc_id", "path"),
    [
        ("a.txt", "/prefix/documents/a.txt"),
        ("news/2021/a b.txt", "/prefix/documents/news/2021/a%20b.txt"),
        ("q?x#y%z", "/prefix/documents/q%3Fx%23y%25z"),
        ("é/ü", "/prefix/documents/%C3%A9/%C3%BC"),
        ("a/../b/./c", "/prefix/documents/a/%2E%2E/b/%2E/c"),
        ("..", "/prefix/documents/%2E%2E"),
        ("a//b/", "/prefix/documents/a//b/"),
    ],
)
def test_document_ids_keep_their_slashes_and_nothing_else(doc_id: str, path: str) -> None:
    client, sent = answering(204)
    client.delete_document(doc_id)
    assert sent == [path]


def test_an_empty_document_id_is_refused_before_sending() -> None:
    client, sent = answering(204)
    with pytest.raises(InvalidRequestError):
        client.get_document("")
    assert sent == []


@pytest.mark.parametrize(
    ("status", "kind"),
    [
        (400, InvalidRequestError),
        (401, AuthenticationError),
        (403, PermissionDeniedError),
        (404, NotFoundError),
        (409, ConflictError),
        (413, InvalidRequestError),
        (415, InvalidRequestError),
        (422, InvalidRequestError),
        (429, RateLimitedError),
        (500, ServerError),
        (503, UnavailableError),
        (507, ServerError),
        (405, SearchError),
    ],
)
def test_each_status_is_its_error(status: int, kind: type[SearchError]) -> None:
    client, _ = answering(status, b'{"detail": "why"}', **{"X-Request-ID": "abc"})
    with pytest.raises(kind) as raised:
        client.info()
    assert type(raised.value) is kind
    assert (raised.value.status_code, raised.value.detail, raised.value.request_id) == (
        status,
        "why",
        "abc",
    )


def test_a_body_that_is_not_the_services_json_is_the_detail() -> None:
    client, _ = answering(502, b"<html>Bad Gateway</html>")
    with pytest.raises(ServerError) as raised:
        client.info()
    assert raised.value.detail == "<html>Bad Gateway</html>"


def test_validation_errors_are_listed_in_the_message() -> None:
    body = b'{"detail": [{"loc": ["body", "k"], "msg": "too big", "type": "less_than_equal"}]}'
    client, _ = answering(422, body)
    with pytest.raises(InvalidRequestError) as raised:
        client.search("q", k=1000)
    assert str(raised.value) == "422: body.k: too big"
    assert isinstance(raised.value.detail, list)


def test_retry_after_in_seconds_or_as_a_date() -> None:
    assert parse_retry_after("3") == 3.0
    assert parse_retry_after(None) is None
    assert parse_retry_after("soon") is None
    later = email.utils.formatdate(time.time() + 30, usegmt=True)
    assert 25 < (parse_retry_after(later) or 0) <= 30
    assert parse_retry_after(email.utils.formatdate(time.time() - 30, usegmt=True)) == 0.0


def test_responses_ignore_fields_they_do_not_know() -> None:
    result = SearchResult.model_validate({**RESULT, "explain": {"new": "field"}})
    assert result.metadata == {"year": 2019, "world": True}
    assert isinstance(result.metadata["world"], bool)
    assert result.highlights == [(0, 7)]


def test_requests_refuse_fields_they_do_not_know() -> None:
    with pytest.raises(ValueError, match="extra"):
        SearchRequest.model_validate({"query": "q", "top_k": 3})
    client, sent = answering(200)
    with pytest.raises(InvalidRequestError):
        client.search_batch([{"query": "q", "top_k": 3}])
    assert sent == []


def test_only_the_options_given_are_sent() -> None:
    bodies: list[object] = []

    def handle(request: httpx.Request) -> httpx.Response:
        bodies.append(json.loads(request.content))
        return httpx.Response(200, json={"took_ms": 1.0, "responses": []})

    client = SearchClient("http://service.test", transport=httpx.MockTransport(handle))
    client.search_batch(["q", SearchRequest(query="r", mode="keyword")])
    assert bodies == [{"searches": [{"query": "q"}, {"query": "r", "mode": "keyword"}]}]
