"""``/mcp`` in-process with the official MCP client: every tool against the HTTP route it shares
its code with, errors as tool errors with the HTTP API's messages, and keys (read, write, a
tenant's scope) exactly as the HTTP API applies them."""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import threading
from pathlib import Path
from typing import Any

import httpx2
import pytest
from mcp import ClientSession
from mcp.client.streamable_http import streamable_http_client
from pydantic import SecretStr

from app.main import DESCRIPTION
from app.mcp_tools import DocumentText
from app.routes import documents
from app.schemas.search import SearchRequest, SearchResponse
from app.settings import Settings
from tests.utils.api import API_KEY, READ_KEY, article
from tests.utils.fakes import HashingEmbedder
from tests.utils.mcp_client import (
    READ_TOOLS,
    WRITE_TOOLS,
    http_client,
    key_headers,
    mcp_session,
    refusal,
    run,
    serving,
    structured,
    text_of,
    tool_names,
)
from tests.utils.seeds import OPPOSITION_DOC, RUSSIA_DOC

QUERY = "Russian military presence"
WRITE = key_headers(API_KEY)
INITIALIZE = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "initialize",
    "params": {
        "protocolVersion": "2025-11-25",
        "capabilities": {},
        "clientInfo": {"name": "test", "version": "0"},
    },
}
JSON_RPC = {"Accept": "application/json, text/event-stream"}


@pytest.fixture
def live(settings: Settings) -> Settings:
    """Writes enabled (an admin key), a short refresh, and room for a document's body."""
    return settings.model_copy(
        update={"api_key": SecretStr(API_KEY), "refresh_interval": 0.1, "max_body_bytes": 65_536}
    )


def without_timing(body: dict[str, Any]) -> dict[str, Any]:
    return {name: value for name, value in body.items() if name != "took_ms"}


# -- the tools and their schemas ---------------------------------------------------------------


def test_a_write_key_is_offered_every_tool_with_its_schemas(live: Settings) -> None:
    async def scenario() -> None:
        async with serving(live, HashingEmbedder) as app, mcp_session(app, WRITE) as session:
            assert session.initialize_result is not None
            assert session.initialize_result.server_info.name == "semantic-search"
            assert "get_document" in (session.initialize_result.instructions or "")
            listed = {tool.name: tool for tool in (await session.list_tools()).tools}
        assert set(listed) == READ_TOOLS | WRITE_TOOLS
        search = listed["search"]
        assert search.input_schema == SearchRequest.model_json_schema()
        assert search.output_schema == SearchResponse.model_json_schema(mode="serialization")
        assert listed["get_document"].output_schema == DocumentText.model_json_schema(
            mode="serialization"
        )
        for tool in listed.values():
            assert len(tool.description or "") > 80, tool.name
            assert tool.title
            assert tool.input_schema["type"] == "object"
            assert tool.output_schema is not None
            assert tool.output_schema["type"] == "object"
            assert tool.annotations is not None
            assert tool.annotations.read_only_hint is (tool.name in READ_TOOLS), tool.name
        assert listed["search"].input_schema["required"] == ["query"]
        filter_schema = listed["list_documents"].input_schema["properties"]["filter"]
        assert "gte" in json.dumps(filter_schema)

    run(scenario)


def test_search_answers_as_post_search_does(live: Settings) -> None:
    body = {"query": QUERY, "k": 4, "mode": "hybrid", "filter": {"doc_id": RUSSIA_DOC}}

    async def scenario() -> None:
        async with (
            serving(live, HashingEmbedder) as app,
            mcp_session(app, WRITE) as session,
            http_client(app) as http,
        ):
            answered = await structured(session, "search", **body)
            expected = (await http.post("/search", json=body)).json()
            grouped = await structured(session, "search", query=QUERY, group_by="document")
            keyword = await structured(session, "search", query=QUERY, mode="keyword", k=2)
            expected_keyword = (
                await http.get("/search", params={"q": QUERY, "mode": "keyword", "k": 2})
            ).json()
        assert without_timing(answered) == without_timing(expected)
        assert [r["doc_id"] for r in answered["results"]] == [RUSSIA_DOC] * 4
        first = answered["results"][0]
        assert set(first) >= {"doc_id", "title", "text", "start", "end", "score", "metadata"}
        assert sorted(r["doc_id"] for r in grouped["results"]) == sorted(
            [OPPOSITION_DOC, RUSSIA_DOC]
        )
        assert without_timing(keyword) == without_timing(expected_keyword)

    run(scenario)


def test_get_document_returns_the_whole_text_or_a_window_around_a_passage(live: Settings) -> None:
    async def scenario() -> None:
        async with (
            serving(live, HashingEmbedder) as app,
            mcp_session(app) as session,
            http_client(app) as http,
        ):
            whole = await structured(session, "get_document", doc_id=RUSSIA_DOC)
            expected = (await http.get(f"/documents/{RUSSIA_DOC}")).json()
            passage = expected["passages"][3]
            start, end = passage["start"], passage["end"]
            window = await structured(
                session, "get_document", doc_id=RUSSIA_DOC, start=start, end=end, window=50
            )
            first = await structured(
                session, "get_document", doc_id=RUSSIA_DOC, start=0, end=10, window=30
            )
            span = (expected["chars"] - 5, expected["chars"])
            last = await structured(
                session, "get_document", doc_id=RUSSIA_DOC, start=span[0], end=span[1], window=7
            )
            beyond = await refusal(
                session, "get_document", doc_id=RUSSIA_DOC, start=0, end=expected["chars"] + 1
            )
            half = await refusal(session, "get_document", doc_id=RUSSIA_DOC, start=5)
            backwards = await refusal(session, "get_document", doc_id=RUSSIA_DOC, start=9, end=3)
        full = expected["text"]
        assert whole == {**expected, "text_start": 0, "text_end": len(full)}
        assert window["text"] == full[start - 50 : end + 50]
        assert (window["text_start"], window["text_end"]) == (start - 50, end + 50)
        assert {k: v for k, v in window.items() if not k.startswith("text")} == {
            k: v for k, v in expected.items() if k != "text"
        }
        assert first["text"] == full[:40]
        assert (first["text_start"], first["text_end"]) == (0, 40)
        assert last["text"] == full[span[0] - 7 :]
        assert last["text_end"] == len(full)
        assert beyond == (
            f"start and end must be within the document's {len(full)} characters "
            f"(0 <= start <= end <= {len(full)}), not 0 and {len(full) + 1}"
        )
        assert (
            half == "invalid arguments: give both start and end (a passage's offsets), or neither"
        )
        assert backwards == "invalid arguments: start (9) is after end (3)"

    run(scenario)


def test_list_documents_pages_and_filters_as_get_documents_does(live: Settings) -> None:
    async def scenario() -> None:
        async with (
            serving(live, HashingEmbedder) as app,
            mcp_session(app) as session,
            http_client(app) as http,
        ):
            everything = await structured(session, "list_documents")
            page = await structured(session, "list_documents", limit=1, offset=1)
            only = await structured(session, "list_documents", filter={"doc_id": RUSSIA_DOC})
            expected = [
                (await http.get("/documents")).json(),
                (await http.get("/documents", params={"limit": 1, "offset": 1})).json(),
                (
                    await http.get(
                        "/documents", params={"filter": json.dumps({"doc_id": RUSSIA_DOC})}
                    )
                ).json(),
            ]
        assert [everything, page, only] == expected
        assert everything["total"] == 2
        assert [d["doc_id"] for d in only["documents"]] == [RUSSIA_DOC]

    run(scenario)


def test_describe_says_what_info_says_and_which_metadata_fields_filters_can_use(
    live: Settings,
) -> None:
    articles = {
        "a.txt": article(
            "A", "Storm in Bergen.", section="world", year=2019, published="2019-05-28"
        ),
        "b.txt": article("B", "Apples in Hardanger.", section="business", year=2021, draft=True),
        "c.txt": article("C", "Pears in Lleida.", section="world", year=2020, score=0.5),
    }

    async def scenario() -> None:
        async with (
            serving(live, HashingEmbedder) as app,
            mcp_session(app) as session,
            http_client(app, WRITE) as http,
        ):
            for doc_id, body in articles.items():
                put = await http.put(f"/documents/{doc_id}?refresh=wait_for", json=body)
                assert put.status_code == 201, put.text
            described = await structured(session, "describe")
            info = (await http.get("/info")).json()
            latest = await structured(session, "describe", sample=1)
        assert described["info"] == info
        assert described["documents_total"] == 5
        assert described["documents_scanned"] == 5
        fields = {field["name"]: field for field in described["metadata_fields"]}
        assert [f["name"] for f in described["metadata_fields"][:2]] == ["section", "year"]
        assert fields["section"] == {
            "name": "section",
            "types": ["string"],
            "documents": 3,
            "examples": ["world", "business"],
            "minimum": None,
            "maximum": None,
        }
        assert fields["year"]["types"] == ["integer"]
        assert (fields["year"]["minimum"], fields["year"]["maximum"]) == (2019, 2021)
        assert fields["published"]["types"] == ["date"]
        assert fields["published"]["maximum"] == "2019-05-28"
        assert fields["draft"]["types"] == ["boolean"]
        assert fields["score"]["types"] == ["number"]
        assert "gte" in described["filters"]
        # The sample is the most recently written documents.
        assert latest["documents_scanned"] == 1
        assert {f["name"] for f in latest["metadata_fields"]} == {"section", "year", "score"}

    run(scenario)


# -- errors ------------------------------------------------------------------------------------


def test_bad_arguments_are_tool_errors_with_the_http_apis_messages(live: Settings) -> None:
    bad_filter = {"year": {"gtee": 2019}}

    async def scenario() -> None:
        async with (
            serving(live, HashingEmbedder) as app,
            mcp_session(app, WRITE) as session,
            http_client(app) as http,
        ):
            filtered = await refusal(session, "search", query="x", filter=bad_filter)
            http_filtered = await http.get(
                "/search", params={"q": "x", "filter": json.dumps(bad_filter)}
            )
            listed = await refusal(session, "list_documents", filter=bad_filter)
            missing = await refusal(session, "get_document", doc_id="nowhere.txt")
            http_missing = await http.get("/documents/nowhere.txt")
            too_many = await refusal(session, "search", query="x", k=101)
            blank = await refusal(session, "search", query="   ")
            extra = await refusal(session, "search", query="x", page=2)
            unknown = await refusal(session, "drop_everything")
            not_deleted = await refusal(session, "delete_document", doc_id="nowhere.txt")
            bad_document = await refusal(
                session, "put_document", doc_id="x.txt", title="X", text="x", metadata={"doc_id": 1}
            )
        assert http_filtered.status_code == 422
        message = http_filtered.json()["detail"][0]["msg"]
        assert (
            message == "filter field 'year': unknown operator 'gtee' (use eq, in, gt, gte, lt, lte)"
        )
        assert filtered == f"invalid arguments: filter: {message}"
        assert listed == filtered
        assert missing == http_missing.json()["detail"] == "no document with id 'nowhere.txt'"
        assert not_deleted == missing
        assert too_many == "invalid arguments: k: Input should be less than or equal to 100"
        assert blank == "invalid arguments: query: it is empty or only whitespace"
        assert extra == "invalid arguments: page: Extra inputs are not permitted"
        assert unknown == (
            "unknown tool 'drop_everything'; the tools are search, get_document, "
            "list_documents, describe, put_document, delete_document"
        )
        assert bad_document == (
            "invalid arguments: metadata: metadata key 'doc_id': reserved for the document's own id"
        )

    run(scenario)


def test_while_the_model_loads_search_is_a_tool_error_saying_so(live: Settings) -> None:
    release = threading.Event()

    def slow_model(name: str) -> HashingEmbedder:
        release.wait(30)
        return HashingEmbedder(name)

    async def scenario() -> None:
        async with serving(live, slow_model, ready=False) as app:
            try:
                async with mcp_session(app, WRITE) as session, http_client(app) as http:
                    loading = await refusal(session, "search", query=QUERY)
                    http_loading = await http.get("/search", params={"q": QUERY})
                    writing = await refusal(
                        session, "put_document", doc_id="x.txt", title="X", text="x"
                    )
                    listed = await structured(session, "list_documents")  # the index is open
            finally:
                release.set()
        assert http_loading.status_code == 503
        assert loading == http_loading.json()["detail"]
        assert loading == "the model is still loading; retry in a few seconds"
        assert writing == loading
        assert listed["total"] == 2

    run(scenario)


def test_an_unexpected_error_is_a_tool_error_without_internals_and_is_logged(
    live: Settings, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def broken(*args: object) -> None:
        raise RuntimeError("secret internals")

    monkeypatch.setattr(documents, "list_documents", broken)

    async def scenario() -> str:
        async with serving(live, HashingEmbedder) as app, mcp_session(app) as session:
            message = await refusal(session, "list_documents")
            # The endpoint goes on serving.
            assert (await structured(session, "search", query=QUERY))["total"] == 5
            return message

    with caplog.at_level(logging.ERROR, logger="app"):
        message = run(scenario)
    assert message == "internal error; the server log has the details"
    logged = [r for r in caplog.records if r.exc_info and "secret internals" in str(r.exc_info[1])]
    assert len(logged) == 1, caplog.records


# -- keys --------------------------------------------------------------------------------------


@pytest.mark.parametrize("header", ["Authorization", "X-API-Key"])
def test_write_tools_write_replace_and_delete_with_a_write_key(live: Settings, header: str) -> None:
    async def scenario() -> None:
        async with (
            serving(live, HashingEmbedder) as app,
            mcp_session(app, key_headers(API_KEY, header)) as session,
            http_client(app) as http,
        ):
            created = await structured(
                session,
                "put_document",
                doc_id="lighthouse.txt",
                title="Lighthouse keepers",
                text="The last keeper left the island lighthouse in 1998.",
                metadata={"section": "history"},
            )
            # Searchable at once: the tool waits for it by default.
            found = await structured(session, "search", query="island lighthouse keeper", k=1)
            stored = (await http.get("/documents/lighthouse.txt")).json()
            replaced = await structured(
                session, "put_document", doc_id="lighthouse.txt", title="L", text="Gone.",
                refresh="false",
            )  # fmt: skip
            deleted = await structured(session, "delete_document", doc_id="lighthouse.txt")
            gone = await http.get("/documents/lighthouse.txt")
            again = await refusal(session, "delete_document", doc_id="lighthouse.txt")
        assert created == {"doc_id": "lighthouse.txt", "result": "created", "passages": 1, "seq": 1}
        assert [r["doc_id"] for r in found["results"]] == ["lighthouse.txt"]
        assert stored["metadata"] == {"section": "history"}
        assert (replaced["result"], replaced["seq"]) == ("replaced", 2)
        assert deleted == {"doc_id": "lighthouse.txt", "result": "deleted"}
        assert gone.status_code == 404
        assert again == "no document with id 'lighthouse.txt'"

    run(scenario)


def test_a_read_key_is_not_offered_the_write_tools_and_cannot_call_them(live: Settings) -> None:
    keyed = live.model_copy(update={"read_api_key": SecretStr(READ_KEY)})

    async def scenario() -> None:
        async with (
            serving(keyed, HashingEmbedder) as app,
            mcp_session(app, key_headers(READ_KEY, "X-API-Key")) as session,
            http_client(app) as http,
        ):
            names = await tool_names(session)
            put = await refusal(session, "put_document", doc_id="x.txt", title="X", text="x")
            http_put = await http.put(
                "/documents/x.txt", json=article("X", "x"), headers={"X-API-Key": READ_KEY}
            )
            deleted = await refusal(session, "delete_document", doc_id=RUSSIA_DOC)
            stored = await http.get("/documents/x.txt", headers=WRITE)
            kept = await http.get(f"/documents/{RUSSIA_DOC}", headers=WRITE)
            searched = await structured(session, "search", query=QUERY)
        assert names == READ_TOOLS
        assert http_put.status_code == 403
        assert put == deleted == http_put.json()["detail"] == "this API key cannot write"
        assert stored.status_code == 404
        assert kept.status_code == 200
        assert searched["total"] == 5

    run(scenario)


def test_with_open_reads_no_key_reads_and_writes_say_a_key_is_needed(live: Settings) -> None:
    async def scenario() -> None:
        async with (
            serving(live, HashingEmbedder) as app,
            mcp_session(app) as session,
            http_client(app) as http,
        ):
            names = await tool_names(session)
            put = await refusal(session, "put_document", doc_id="x.txt", title="X", text="x")
            http_put = await http.put("/documents/x.txt", json=article("X", "x"))
        assert names == READ_TOOLS
        assert http_put.status_code == 401
        assert put == http_put.json()["detail"]
        assert put.startswith("writes need an API key")

    run(scenario)


def test_without_a_write_key_configured_writes_are_disabled(settings: Settings) -> None:
    async def scenario() -> None:
        async with (
            serving(settings, HashingEmbedder) as app,
            mcp_session(app, key_headers("anything")) as session,
            http_client(app) as http,
        ):
            names = await tool_names(session)
            put = await refusal(session, "put_document", doc_id="x.txt", title="X", text="x")
            http_put = await http.put(
                "/documents/x.txt", json=article("X", "x"), headers=key_headers("anything")
            )
        assert names == READ_TOOLS
        assert put == http_put.json()["detail"]
        assert put.startswith("writes are disabled: ")

    run(scenario)


def test_the_endpoint_refuses_a_missing_or_wrong_key_as_the_http_api_does(live: Settings) -> None:
    keyed = live.model_copy(update={"read_api_key": SecretStr(READ_KEY)})

    async def scenario() -> None:
        async with serving(keyed, HashingEmbedder) as app, http_client(app) as http:
            answers = {}
            for name, headers in {
                "none": {},
                "wrong": key_headers("wrong"),
                "two callers": {**key_headers(READ_KEY), "X-API-Key": API_KEY},
                "read": key_headers(READ_KEY, "X-API-Key"),
                "write": key_headers(API_KEY),
            }.items():
                mcp = await http.post("/mcp", json=INITIALIZE, headers={**JSON_RPC, **headers})
                search = await http.get("/search", params={"q": "x"}, headers=headers)
                answers[name] = (mcp, search)
        for name in ("none", "wrong", "two callers"):
            mcp, search = answers[name]
            assert mcp.status_code == search.status_code, name
            assert mcp.json() == search.json(), name
            assert mcp.headers.get("www-authenticate") == search.headers.get("www-authenticate")
        assert answers["none"][0].status_code == 401
        assert answers["none"][0].headers["www-authenticate"] == "Bearer"
        assert answers["wrong"][0].status_code == 403
        for name in ("read", "write"):
            mcp = answers[name][0]
            assert mcp.status_code == 200, (name, mcp.text)
            assert mcp.headers["content-type"] == "application/json"
            assert mcp.json()["result"]["serverInfo"]["name"] == "semantic-search"

    run(scenario)


def write_keys_file(path: Path, keys: list[dict[str, object]]) -> Path:
    path.write_text(json.dumps({"keys": keys}))
    return path


def sha256(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


TENANT_A, TENANT_B = "tenant-a-key", "tenant-b-read-key"
HARBOURS = {
    "a-harbour.txt": article(
        "Harbour closed", "A storm closed the harbour at Bergen.", tenant="a", year=2019
    ),
    "b-harbour.txt": article(
        "Harbour shut", "The storm shut the harbour in Bergen.", tenant="b", b_only=True
    ),
}


@pytest.fixture
def tenants(live: Settings, tmp_path: Path) -> Settings:
    """An admin key (SEARCH_API_KEY), tenant a's write key and tenant b's read key."""
    keys = write_keys_file(
        tmp_path / "keys.json",
        [
            {
                "name": "tenant-a",
                "sha256": sha256(TENANT_A),
                "role": "write",
                "filter": {"tenant": "a"},
            },
            {
                "name": "tenant-b",
                "sha256": sha256(TENANT_B),
                "role": "read",
                "filter": {"tenant": "b"},
            },
        ],
    )
    return live.model_copy(update={"api_keys_file": keys})


def test_a_scoped_key_sees_and_writes_only_within_its_scope_in_every_tool(
    tenants: Settings,
) -> None:
    tenant_a = key_headers(TENANT_A)

    async def scenario() -> dict[str, Any]:
        async with (
            serving(tenants, HashingEmbedder) as app,
            http_client(app, WRITE) as admin,
            mcp_session(app, tenant_a) as session,
        ):
            for doc_id, body in HARBOURS.items():
                put = await admin.put(f"/documents/{doc_id}?refresh=wait_for", json=body)
                assert put.status_code == 201, put.text
            seen: dict[str, Any] = {"names": await tool_names(session)}
            seen["search"] = await structured(session, "search", query="storm harbour Bergen", k=10)
            seen["search b"] = await structured(
                session, "search", query="storm harbour Bergen", filter={"tenant": "b"}
            )
            seen["list"] = await structured(session, "list_documents")
            seen["get b"] = await refusal(session, "get_document", doc_id="b-harbour.txt")
            seen["get seed"] = await refusal(session, "get_document", doc_id=RUSSIA_DOC)
            seen["describe"] = await structured(session, "describe")
            seen["info"] = (await admin.get("/info", headers=tenant_a)).json()
            seen["put"] = await structured(
                session, "put_document", doc_id="a-new.txt", title="New", text="Calm seas."
            )
            seen["stamped"] = (await admin.get("/documents/a-new.txt")).json()["metadata"]
            refused = {
                "put other tenant": ("a-bad.txt", article("Bad", "x", tenant="b")),
                "put taken id": ("b-harbour.txt", article("Mine", "x")),
            }
            for name, (doc_id, body) in refused.items():
                seen[name] = await refusal(session, "put_document", doc_id=doc_id, **body)
                http_put = await admin.put(f"/documents/{doc_id}", json=body, headers=tenant_a)
                seen[f"http {name}"] = (http_put.status_code, http_put.json()["detail"])
            seen["delete b"] = await refusal(session, "delete_document", doc_id="b-harbour.txt")
            seen["b kept"] = (await admin.get("/documents/b-harbour.txt")).status_code
            seen["bad not written"] = (await admin.get("/documents/a-bad.txt")).status_code
            async with mcp_session(app, key_headers(TENANT_B)) as reader:
                seen["b names"] = await tool_names(reader)
                seen["b search"] = await structured(reader, "search", query="storm harbour")
                seen["b put"] = await refusal(
                    reader, "put_document", doc_id="b2.txt", title="B", text="b"
                )
            return seen

    seen = run(scenario)
    assert seen["names"] == READ_TOOLS | WRITE_TOOLS
    assert {r["doc_id"] for r in seen["search"]["results"]} == {"a-harbour.txt"}
    assert seen["search b"]["results"] == []
    assert seen["list"]["total"] == 1
    assert [d["doc_id"] for d in seen["list"]["documents"]] == ["a-harbour.txt"]
    assert seen["get b"] == "no document with id 'b-harbour.txt'"
    assert seen["get seed"] == f"no document with id '{RUSSIA_DOC}'"
    described = seen["describe"]
    assert described["info"] == seen["info"]
    assert (described["info"]["documents"], described["documents_total"]) == (1, 1)
    fields = {field["name"]: field for field in described["metadata_fields"]}
    assert set(fields) == {"tenant", "year"}  # nothing of tenant b's (b_only)
    assert fields["tenant"]["examples"] == ["a"]
    assert seen["put"]["result"] == "created"
    assert seen["stamped"] == {"tenant": "a"}  # the key's scope, set on what it writes
    assert seen["http put other tenant"][0] == 403
    assert seen["put other tenant"] == seen["http put other tenant"][1]
    assert "outside this key's scope" in seen["put other tenant"]
    assert seen["http put taken id"][0] == 409
    assert seen["put taken id"] == seen["http put taken id"][1]
    assert seen["delete b"] == "no document with id 'b-harbour.txt'"
    assert seen["b kept"] == 200
    assert seen["bad not written"] == 404
    assert seen["b names"] == READ_TOOLS
    assert {r["doc_id"] for r in seen["b search"]["results"]} == {"b-harbour.txt"}
    assert seen["b put"] == "this API key cannot write"


def test_concurrent_callers_each_get_their_own_scope(tenants: Settings) -> None:
    """Callers travel with their requests: interleaved calls from two keys never mix."""

    async def scenario() -> list[tuple[str, set[str]]]:
        async with serving(tenants, HashingEmbedder) as app, http_client(app, WRITE) as admin:
            for doc_id, body in HARBOURS.items():
                assert (
                    await admin.put(f"/documents/{doc_id}?refresh=wait_for", json=body)
                ).is_success
            async with (
                mcp_session(app, key_headers(TENANT_A)) as tenant,
                mcp_session(app, WRITE) as everyone,
            ):

                async def seen(name: str, session: ClientSession) -> tuple[str, set[str]]:
                    found = await structured(session, "search", query="storm harbour", k=20)
                    return name, {r["doc_id"] for r in found["results"]}

                calls = [
                    seen(name, session)
                    for _ in range(10)
                    for name, session in (("tenant", tenant), ("everyone", everyone))
                ]
                return list(await asyncio.gather(*calls))

    answers = run(scenario)
    assert len(answers) == 20
    for name, doc_ids in answers:
        if name == "tenant":
            assert doc_ids == {"a-harbour.txt"}
        else:
            assert doc_ids >= {"a-harbour.txt", "b-harbour.txt", RUSSIA_DOC}


# -- the route ---------------------------------------------------------------------------------


def test_mcp_is_an_exact_route_outside_the_openapi_schema(live: Settings) -> None:
    async def scenario() -> None:
        async with serving(live, HashingEmbedder) as app, http_client(app) as http:
            spec = (await http.get("/openapi.json")).json()
            slash = await http.post("/mcp/", json=INITIALIZE, headers=JSON_RPC)
            direct = await http.post("/mcp", json=INITIALIZE, headers=JSON_RPC)
        assert not [path for path in spec["paths"] if "mcp" in path]
        assert "`/mcp`" in spec["info"]["description"]
        assert "/mcp" in DESCRIPTION
        assert direct.status_code == 200
        assert slash.status_code == 307
        assert slash.headers["location"].endswith("/mcp")

    run(scenario)


@pytest.mark.parametrize("method", ["GET", "DELETE", "PUT"])
def test_only_post_is_served_and_get_opens_no_stream(live: Settings, method: str) -> None:
    """Stateless: a GET would be an idle stream held open for nothing; 405, as the spec allows,
    at once (the scenario's deadline fails a GET left hanging)."""

    async def scenario() -> None:
        async with serving(live, HashingEmbedder) as app, http_client(app) as http:
            answer = await http.request(
                method, "/mcp", headers={"Accept": "text/event-stream, application/json"}
            )
        assert answer.status_code == 405
        assert answer.headers["allow"] == "POST"
        assert answer.json() == {"detail": f"{method} is not allowed here; use POST"}

    run(scenario)


def test_a_public_host_and_a_browser_origin_are_served(live: Settings) -> None:
    """DNS-rebinding protection is off (app/mcp.py says why): behind a proxy the service sees
    the public Host, which the SDK's default check would answer with 421."""

    async def scenario() -> set[str]:
        async with serving(live, HashingEmbedder) as app:
            client = httpx2.AsyncClient(
                transport=httpx2.ASGITransport(app=app),
                base_url="https://search.example.org",
                headers={"Origin": "https://agents.example.com", **WRITE},
            )
            async with (
                client,
                streamable_http_client("https://search.example.org/mcp", http_client=client) as (
                    read,
                    write,
                ),
                ClientSession(read, write) as session,
            ):
                await session.initialize()
                return await tool_names(session)

    assert run(scenario) == READ_TOOLS | WRITE_TOOLS


def test_tool_results_carry_their_json_as_text_too(live: Settings) -> None:
    async def scenario() -> None:
        async with serving(live, HashingEmbedder) as app, mcp_session(app) as session:
            result = await session.call_tool("list_documents", {"limit": 1})
        assert not result.is_error
        assert json.loads(text_of(result)) == result.structured_content

    run(scenario)
