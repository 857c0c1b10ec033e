"""Filters on /search (GET and POST) and /search/batch: applied before ranking, 422 when bad."""

from __future__ import annotations

import json

import pytest
from fastapi.testclient import TestClient
from httpx import Response

from indexer.filters import Filter
from indexer.stores.faiss.columns import MetadataColumns
from tests.utils.api import article, found
from tests.utils.seeds import OPPOSITION_DOC, RUSSIA_DOC

MODES = ("semantic", "keyword", "hybrid")
NEWS = {
    "oslo.txt": article(
        "Talks in Oslo",
        "Government and opposition delegates met in Oslo to discuss elections.",
        section="world",
        year=2019,
        published="2019-05-28",
        breaking=True,
    ),
    "oil.txt": article(
        "Oil output falls",
        "Venezuela's oil output fell again as sanctions hit the state oil company.",
        section="business",
        year=2019,
        published="2019-07-02T08:30:00Z",
        breaking=False,
    ),
    "vote.txt": article(
        "A vote is called",
        "The opposition called a vote on new elections for the autumn.",
        section="world",
        year=2021,
        published="2021-01-15",
        breaking=False,
    ),
}
QUERY = "opposition elections oil"


@pytest.fixture
def news(live_client: TestClient) -> TestClient:
    documents = [{"doc_id": doc_id, **body} for doc_id, body in NEWS.items()]
    response = live_client.post("/documents?refresh=wait_for", json={"documents": documents})
    assert response.status_code == 200, response.text
    return live_client


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize(
    ("condition", "expected"),
    [
        ({"section": "world"}, {"oslo.txt", "vote.txt"}),
        ({"section": ["business", "sport"]}, {"oil.txt"}),
        ({"year": {"gte": 2020}}, {"vote.txt"}),
        ({"year": 2019, "breaking": False}, {"oil.txt"}),
        ({"published": {"gte": "2019-06-01", "lt": "2020-01-01"}}, {"oil.txt"}),
        ({"published": {"gt": "2019-05-28T00:00:00+02:00"}}, {"oslo.txt", "oil.txt", "vote.txt"}),
        ({"doc_id": ["oslo.txt", OPPOSITION_DOC]}, {"oslo.txt", OPPOSITION_DOC}),
        ({"section": "world", "doc_id": "oil.txt"}, set()),
        ({"year": "2019"}, set()),  # a string never equals a number
    ],
)
def test_get_and_post_filter_before_ranking_in_every_mode(
    news: TestClient, mode: str, condition: dict[str, object], expected: set[str]
) -> None:
    got = set(found(news, QUERY, mode, filter=json.dumps(condition)))
    assert got <= expected
    if mode != "keyword":  # every allowed document has a passage in a semantic ranking
        assert got == expected
    posted = news.post(
        "/search", json={"query": QUERY, "k": 100, "mode": mode, "filter": condition}
    ).json()
    assert {r["doc_id"] for r in posted["results"]} == got


def test_results_carry_their_documents_metadata(news: TestClient) -> None:
    results = news.get("/search", params={"q": "oil output", "k": 1}).json()["results"]
    assert results[0]["doc_id"] == "oil.txt"
    assert results[0]["metadata"] == NEWS["oil.txt"]["metadata"]
    seed = news.get("/search", params={"q": "Russian troops Caracas", "k": 1}).json()["results"]
    assert seed[0]["metadata"] == {}


def test_a_filter_and_source_combine(news: TestClient) -> None:
    body = {"query": QUERY, "k": 100, "filter": {"section": "world"}, "source": ["vote.txt"]}
    results = news.post("/search", json=body).json()["results"]
    assert {r["doc_id"] for r in results} == {"vote.txt"}


def test_a_batch_filters_each_search_on_its_own(news: TestClient) -> None:
    searches = [
        {"query": QUERY, "k": 100, "filter": {"section": "business"}},
        {"query": QUERY, "k": 100, "filter": {"year": {"lt": 2000}}},
        {"query": QUERY, "k": 100},
    ]
    responses = news.post("/search/batch", json={"searches": searches}).json()["responses"]
    assert {r["doc_id"] for r in responses[0]["results"]} == {"oil.txt"}
    assert responses[1]["results"] == []
    assert {r["doc_id"] for r in responses[2]["results"]} >= {RUSSIA_DOC, "oil.txt"}


def test_grouping_and_paging_work_within_a_filter(news: TestClient) -> None:
    condition = json.dumps({"doc_id": [RUSSIA_DOC, OPPOSITION_DOC]})
    grouped = news.get(
        "/search", params={"q": QUERY, "group_by": "document", "filter": condition}
    ).json()["results"]
    assert sorted(r["doc_id"] for r in grouped) == sorted([RUSSIA_DOC, OPPOSITION_DOC])
    page = news.get("/search", params={"q": QUERY, "k": 2, "offset": 2, "filter": condition})
    assert {r["doc_id"] for r in page.json()["results"]} <= {RUSSIA_DOC, OPPOSITION_DOC}


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ('{"year": {"gtee": 2019}}', "unknown operator 'gtee'"),
        ('{"year": {"gte": true}}', "range bounds must be numbers or ISO dates"),
        ('{"doc_id": 5}', "doc_id"),
        ('{"section": null}', "null"),
        ('{"section": []}', "1 to 1000 values"),
        ('["section"]', "must be a JSON object"),
        ('{"bad key": 1}', "bad key"),
        ("{not json", "JSON"),
    ],
)
def test_a_malformed_filter_is_a_422_that_names_the_problem(
    news: TestClient, raw: str, message: str
) -> None:
    got = news.get("/search", params={"q": QUERY, "filter": raw})
    assert got.status_code == 422, got.text
    [problem] = got.json()["detail"]
    assert problem["loc"] == ["query", "filter"]
    assert message in problem["msg"]
    if raw.startswith(("{", "[")) and raw != "{not json":
        posted = news.post("/search", json={"query": QUERY, "filter": json.loads(raw)})
        assert posted.status_code == 422, posted.text
        assert any(
            p["loc"][:2] == ["body", "filter"] and message in p["msg"]
            for p in posted.json()["detail"]
        ), posted.json()


def test_the_filter_schema_is_documented_for_swagger(client: TestClient) -> None:
    spec = client.get("/openapi.json").json()
    params = {p["name"]: p for p in spec["paths"]["/search"]["get"]["parameters"]}
    # GET takes the JSON of POST's filter: declared as JSON content with the same schema.
    declared = params["filter"]["content"]["application/json"]["schema"]
    body = spec["components"]["schemas"]["SearchRequest"]["properties"]["filter"]
    # The same schema; GET's first example is {} (no filter), which Swagger UI fills in.
    assert body["anyOf"] == [{**declared, "examples": declared["examples"][1:]}, {"type": "null"}]
    assert declared["examples"][0] == {}
    assert declared["type"] == "object"
    assert declared["propertyNames"] == {"pattern": "^[A-Za-z_][A-Za-z0-9_]{0,63}$"}
    assert "gte" in json.dumps(declared)


def test_a_filter_too_large_once_source_is_added_is_a_422_too(client: TestClient) -> None:
    full = {f"key{i}": i for i in range(32)}  # the most fields a filter may have
    response = client.post("/search", json={"query": QUERY, "filter": full, "source": ["a"]})
    assert response.status_code == 422
    assert "32" in response.text


# -- listing and deleting by filter -----------------------------------------------------------


def listed(client: TestClient, **params: object) -> tuple[int, list[str]]:
    response = client.get("/documents", params={"limit": 1000, **params})
    assert response.status_code == 200, response.text
    body = response.json()
    return body["total"], [d["doc_id"] for d in body["documents"]]


def test_the_listing_takes_a_filter(news: TestClient) -> None:
    assert listed(news, filter='{"section": "world"}') == (2, ["oslo.txt", "vote.txt"])
    assert listed(news, filter='{"section": "world"}', offset=1, limit=1) == (2, ["vote.txt"])
    assert listed(news, filter='{"published": {"gte": "2019-06-01"}}') == (
        2,
        ["oil.txt", "vote.txt"],
    )
    assert listed(news, filter='{"year": 1999}') == (0, [])
    total, everything = listed(news, filter="{}")  # an empty filter is no filter
    assert total == len(everything) == 5  # the two seed articles too
    bad = news.get("/documents", params={"filter": '{"year": {"gtee": 1}}'})
    assert bad.status_code == 422
    assert bad.json()["detail"][0]["loc"] == ["query", "filter"]
    assert "unknown operator 'gtee'" in bad.json()["detail"][0]["msg"]


def test_a_filtered_listing_evaluates_its_filter_once(
    news: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Its total and its page come from one pass of the filter over the metadata columns."""
    evaluated: list[Filter] = []
    mask = MetadataColumns.mask

    def counted(columns: MetadataColumns, filter: Filter, n: int) -> object:
        evaluated.append(filter)
        return mask(columns, filter, n)

    monkeypatch.setattr(MetadataColumns, "mask", counted)
    assert listed(news, filter='{"section": "world"}', offset=1, limit=1) == (2, ["vote.txt"])
    assert len(evaluated) == 1


def delete_where(client: TestClient, condition: dict[str, object]) -> Response:
    return client.delete("/documents", params={"filter": json.dumps(condition)})


def test_deleting_by_filter_removes_exactly_the_matching_documents(news: TestClient) -> None:
    seq = news.get("/info").json()["seq"]
    old = delete_where(news, {"published": {"lt": "2020-01-01"}})
    assert old.status_code == 200, old.text
    assert old.json()["deleted"] == 2
    assert old.json()["seq"] == seq + 2  # one write per document, as DELETE /documents/{id}
    for mode in MODES:
        assert set(found(news, QUERY, mode)) & set(NEWS) == {"vote.txt"}, mode
    assert news.get("/documents/oslo.txt").status_code == 404
    assert listed(news, filter='{"year": {"gte": 2000}}') == (1, ["vote.txt"])
    none = delete_where(news, {"section": "sport"})
    assert (none.json()["deleted"], none.json()["seq"]) == (0, seq + 2)
    # Seed articles (no metadata) are selected by id.
    assert delete_where(news, {"doc_id": [RUSSIA_DOC]}).json()["deleted"] == 1
    assert RUSSIA_DOC not in found(news, "Russian military presence")


def test_a_write_acknowledged_before_a_delete_by_filter_is_deleted_by_it(
    live_client: TestClient,
) -> None:
    """The delete looks at every acknowledged write, not only at what searches see yet."""
    written = live_client.put("/documents/fresh.txt", json=article("Fresh", "Brand new.", desk="x"))
    assert written.status_code == 201
    assert delete_where(live_client, {"desk": "x"}).json()["deleted"] == 1
    assert live_client.get("/documents/fresh.txt").status_code == 404


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"filter": "{}"}, "an empty one would delete every document"),
        ({"filter": "null"}, "an empty one would delete every document"),
        ({}, "an empty one would delete every document"),
        ({"filter": '{"year": {"gtee": 1}}'}, "unknown operator 'gtee'"),
        ({"filter": "{not json"}, "not valid JSON"),
    ],
)
def test_a_delete_by_filter_needs_a_valid_non_empty_filter(
    news: TestClient, params: dict[str, str], message: str
) -> None:
    response = news.delete("/documents", params=params)
    assert response.status_code == 422, response.text
    [problem] = response.json()["detail"]
    assert problem["loc"] == ["query", "filter"]
    assert message in problem["msg"]
    assert listed(news)[0] == 5  # nothing was deleted


def test_deleting_by_filter_needs_the_write_key(news: TestClient) -> None:
    bare = TestClient(news.app, raise_server_exceptions=False)
    params = {"filter": '{"section": "world"}'}
    assert bare.delete("/documents", params=params).status_code == 401
    wrong = bare.delete("/documents", params=params, headers={"X-API-Key": "wrong"})
    assert wrong.status_code == 403
    assert listed(news, filter='{"section": "world"}')[0] == 2


def test_the_delete_filter_is_documented_as_required_and_not_empty(client: TestClient) -> None:
    spec = client.get("/openapi.json").json()
    [declared] = spec["paths"]["/documents"]["delete"]["parameters"]
    assert declared["name"] == "filter"
    assert declared["required"] is True
    assert declared["content"]["application/json"]["schema"]["minProperties"] == 1
    listing = {p["name"]: p for p in spec["paths"]["/documents"]["get"]["parameters"]}
    assert listing["filter"]["required"] is False
