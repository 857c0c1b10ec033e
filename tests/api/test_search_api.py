from __future__ import annotations

import time
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.utils.seeds import OPPOSITION_DOC, RUSSIA_DOC

QUERY = "Russian troops in Caracas"
RESULT_FIELDS = {
    *("rank", "score", "text", "title", "doc_id", "metadata", "chunk_id", "start", "end"),
    *("scores", "ranks", "highlights", "other_matches"),
}


def test_get_search_returns_ranked_traceable_passages(client: TestClient) -> None:
    started = time.perf_counter()
    response = client.get("/search", params={"q": QUERY, "k": 3})
    elapsed_ms = (time.perf_counter() - started) * 1000
    assert response.status_code == 200
    body = response.json()
    assert body["query"] == QUERY
    assert body["total"] == len(body["results"]) == 3
    assert 0 < body["took_ms"] <= elapsed_ms  # milliseconds, of the search within the request
    assert [r["rank"] for r in body["results"]] == [1, 2, 3]
    for result in body["results"]:
        assert set(result) == RESULT_FIELDS
        document = client.get(f"/documents/{result['doc_id']}").json()
        assert document["text"][result["start"] : result["end"]] == result["text"]
        assert document["title"] == result["title"]


def test_post_search_answers_exactly_like_get(client: TestClient) -> None:
    got = client.get("/search", params={"q": f"  {QUERY} ", "k": 4, "offset": 1}).json()
    posted = client.post("/search", json={"query": QUERY, "k": 4, "offset": 1}).json()
    for body in (got, posted):
        body.pop("took_ms")
    assert got == posted
    assert got["query"] == QUERY
    assert got["results"][0]["rank"] == 2


def test_source_filter_is_repeatable_in_get_and_a_list_in_post(client: TestClient) -> None:
    got = client.get("/search", params=[("q", QUERY), ("k", 50), ("source", OPPOSITION_DOC)]).json()
    assert got["results"]
    assert {r["doc_id"] for r in got["results"]} == {OPPOSITION_DOC}
    params = [("q", QUERY), ("k", 50), ("source", OPPOSITION_DOC), ("source", RUSSIA_DOC)]
    assert {r["doc_id"] for r in client.get("/search", params=params).json()["results"]} == {
        OPPOSITION_DOC,
        RUSSIA_DOC,
    }
    posted = client.post("/search", json={"query": QUERY, "k": 50, "source": [RUSSIA_DOC]}).json()
    assert {r["doc_id"] for r in posted["results"]} == {RUSSIA_DOC}


def test_min_score_filters(client: TestClient) -> None:
    everything = client.get("/search", params={"q": QUERY, "k": 100}).json()["results"]
    floor = everything[1]["score"]
    kept = client.get("/search", params={"q": QUERY, "k": 100, "min_score": floor}).json()[
        "results"
    ]
    assert 2 <= len(kept) < len(everything)
    assert all(r["score"] >= floor for r in kept)


def test_an_unknown_source_matches_nothing(client: TestClient) -> None:
    # The corpus is live: a document listed a moment ago may be gone. Not an error.
    response = client.get("/search", params={"q": QUERY, "source": "nope.txt"})
    assert response.status_code == 200
    assert response.json()["results"] == []


def _error_locations(body: dict[str, Any]) -> list[str]:
    return [str(error["loc"][-1]) for error in body["detail"]]


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({}, "q"),
        ({"q": ""}, "q"),
        ({"q": "   \n "}, "q"),
        ({"q": "x" * 1001}, "q"),
        ({"q": "ok", "k": 0}, "k"),
        ({"q": "ok", "k": 101}, "k"),
        ({"q": "ok", "k": "five"}, "k"),
        ({"q": "ok", "k": "2.5"}, "k"),
        ({"q": "ok", "offset": -1}, "offset"),
        ({"q": "ok", "min_score": "high"}, "min_score"),
        ({"q": "ok", "mode": "fuzzy"}, "mode"),
        ({"q": "ok", "group_by": "title"}, "group_by"),
    ],
)
def test_bad_get_parameters_are_422_naming_the_field(
    client: TestClient, params: dict[str, Any], field: str
) -> None:
    response = client.get("/search", params=params)
    assert response.status_code == 422
    assert _error_locations(response.json()) == [field]


def test_a_query_of_exactly_1000_characters_is_accepted_and_trimmed(client: TestClient) -> None:
    response = client.get("/search", params={"q": " " + "x" * 998 + " "})
    assert response.status_code == 200
    assert response.json()["query"] == "x" * 998
    # The limit counts what was sent, as the schema's maxLength does.
    assert client.get("/search", params={"q": "x" * 1000 + " "}).status_code == 422


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "query"),
        ({"query": " "}, "query"),
        ({"query": "ok", "k": 1000}, "k"),
        ({"query": "ok", "k": "many"}, "k"),
        ({"query": "ok", "source": "not-a-list"}, "source"),
        ({"query": "ok", "colour": "blue"}, "colour"),
        ({"query": 42}, "query"),
    ],
)
def test_bad_post_bodies_are_422_naming_the_field(
    client: TestClient, body: dict[str, Any], field: str
) -> None:
    response = client.post("/search", json=body)
    assert response.status_code == 422
    assert field in _error_locations(response.json())


def test_malformed_json_is_422_saying_so(client: TestClient) -> None:
    response = client.post(
        "/search", content=b'{"query": ', headers={"content-type": "application/json"}
    )
    assert response.status_code == 422
    assert response.json()["detail"][0]["msg"] == "JSON decode error"


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded", None])
def test_a_body_that_is_not_json_is_415(client: TestClient, content_type: str | None) -> None:
    headers = {"content-type": content_type} if content_type else {}
    response = client.post("/search", content=b"query=hello", headers=headers)
    assert response.status_code == 415
    assert "application/json" in response.json()["detail"]


def test_an_oversized_body_is_413(client: TestClient) -> None:
    response = client.post("/search", json={"query": "x" * 5000})
    assert response.status_code == 413
    assert "larger than 4096 bytes" in response.json()["detail"]


def test_an_oversized_chunked_body_is_413(client: TestClient) -> None:
    def chunks() -> Any:
        yield b'{"query": "'
        for _ in range(10):
            yield b"x" * 1000
        yield b'"}'

    response = client.post(
        "/search", content=chunks(), headers={"content-type": "application/json"}
    )
    assert response.status_code == 413


def test_unknown_routes_and_methods_are_json(client: TestClient) -> None:
    missing = client.get("/nope")
    assert missing.status_code == 404
    assert missing.json() == {"detail": "Not Found"}
    # Allow names every method of the path (Starlette's names only the first route's).
    wrong_method = client.delete("/search")
    assert wrong_method.status_code == 405
    assert wrong_method.headers["allow"] == "GET, POST"
    assert wrong_method.json() == {"detail": "DELETE is not allowed here; use GET, POST"}
    on_a_document = client.patch("/documents/a/b.txt")
    assert on_a_document.headers["allow"] == "DELETE, GET, PUT"


def test_an_unexpected_failure_is_a_json_500_without_internals(client: TestClient) -> None:
    searcher = client.app.state.service.searcher  # type: ignore[attr-defined]
    searcher.embedder.encode = lambda *a, **k: (_ for _ in ()).throw(
        RuntimeError("secret internals")
    )
    response = client.get("/search", params={"q": QUERY})
    assert response.status_code == 500
    assert response.json() == {"detail": "internal error; the server log has the details"}
    assert "secret" not in response.text
    assert "Traceback" not in response.text


def test_default_mode_is_hybrid_with_the_scores_and_ranks_that_explain_it(
    client: TestClient,
) -> None:
    body = client.get("/search", params={"q": QUERY, "k": 3}).json()
    assert body["mode"] == "hybrid"
    for result in body["results"]:
        scores, ranks = result["scores"], result["ranks"]
        assert result["score"] == scores["fused"]
        assert 0 <= scores["fused"] <= 1  # equal-weight sum of min-max normalised scores
        assert (scores["semantic"] is None) == (ranks["semantic"] is None)
        assert (scores["keyword"] is None) == (ranks["keyword"] is None)


@pytest.mark.parametrize(
    ("mode", "score_field"), [("semantic", "semantic"), ("keyword", "keyword")]
)
def test_each_mode_ranks_by_its_own_score(client: TestClient, mode: str, score_field: str) -> None:
    body = client.post("/search", json={"query": QUERY, "k": 4, "mode": mode}).json()
    assert body["mode"] == mode
    assert [r["score"] for r in body["results"]] == [
        r["scores"][score_field] for r in body["results"]
    ]
    assert [r["ranks"][score_field] for r in body["results"]] == [1, 2, 3, 4]


def test_highlights_are_spans_of_query_words_inside_the_text(client: TestClient) -> None:
    result = client.get("/search", params={"q": "Russian troops", "k": 1, "mode": "keyword"}).json()
    [hit] = result["results"]
    marked = {hit["text"][start:end].lower() for start, end in hit["highlights"]}
    assert marked
    assert marked <= {"russian", "troop", "troops"}


def test_group_by_document_returns_one_passage_per_document(client: TestClient) -> None:
    body = client.get("/search", params={"q": QUERY, "k": 10, "group_by": "document"}).json()
    doc_ids = [r["doc_id"] for r in body["results"]]
    assert sorted(doc_ids) == sorted({OPPOSITION_DOC, RUSSIA_DOC})
    assert all(r["other_matches"] >= 1 for r in body["results"])
    ungrouped = client.get("/search", params={"q": QUERY, "k": 3}).json()["results"]
    assert all(r["other_matches"] is None for r in ungrouped)


@pytest.mark.parametrize("method", ["get", "post"])
def test_offset_plus_k_beyond_the_candidate_pool_is_422(client: TestClient, method: str) -> None:
    # offset <= 900 and k <= 100: each bound is in the schema, and together they keep
    # offset + k within the 1000 candidates.
    if method == "get":
        response = client.get("/search", params={"q": QUERY, "k": 100, "offset": 901})
        deepest = client.get("/search", params={"q": QUERY, "k": 100, "offset": 900})
    else:
        response = client.post("/search", json={"query": QUERY, "k": 100, "offset": 901})
        deepest = client.post("/search", json={"query": QUERY, "k": 100, "offset": 900})
    assert response.status_code == 422
    assert "less than or equal to 900" in response.text
    assert deepest.status_code == 200


def test_batch_answers_each_search_like_a_single_one(client: TestClient) -> None:
    searches = [
        {"query": QUERY, "k": 2},
        {"query": "Lima Group", "k": 3, "mode": "keyword"},
        {"query": "sanctions", "k": 1, "source": [OPPOSITION_DOC]},
    ]
    started = time.perf_counter()
    response = client.post("/search/batch", json={"searches": searches})
    elapsed_ms = (time.perf_counter() - started) * 1000
    assert response.status_code == 200
    body = response.json()
    assert 0 < body["took_ms"] <= elapsed_ms
    assert len(body["responses"]) == 3
    for search, answer in zip(searches, body["responses"], strict=True):
        single = client.post("/search", json=search).json()
        assert answer["results"] == single["results"]
        assert answer["query"] == search["query"]


@pytest.mark.parametrize(
    "body",
    [{"searches": []}, {"searches": [{"query": "x"}] * 33}, {"searches": [{"query": " "}]}, {}],
)
def test_bad_batches_are_422(client: TestClient, body: dict[str, Any]) -> None:
    assert client.post("/search/batch", json=body).status_code == 422


def test_a_batch_with_an_unknown_source_answers_it_with_nothing(client: TestClient) -> None:
    body = {"searches": [{"query": "Caracas"}, {"query": "Caracas", "source": ["ghost.txt"]}]}
    response = client.post("/search/batch", json=body)
    assert response.status_code == 200
    first, second = response.json()["responses"]
    assert first["results"]
    assert second["results"] == []
