"""``/mcp`` of a real ``python -m app`` with the real model, through the official MCP client."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.utils.mcp_client import (
    READ_TOOLS,
    WRITE_TOOLS,
    key_headers,
    mcp_session,
    refusal,
    run,
    structured,
    tool_names,
)
from tests.utils.processes import running_service
from tests.utils.seeds import RUSSIA_DOC

WRITE_KEY = "e2e-mcp-write-key"
READ_KEY = "e2e-mcp-read-key"
QUERY = "Russian military presence"
ARTICLE = {
    "doc_id": "apples.txt",
    "title": "Norwegian apple harvest",
    "text": "Orchards along the Hardanger fjord reported a record apple harvest this autumn, "
    "and cider makers in Bergen bought most of it.",
    "metadata": {"section": "business", "published": "2021-10-04"},
}


@pytest.fixture(scope="module")
def service(
    real_index_dir: Path, onnx_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """The service with a write key and a read key (reads need one of them)."""
    log = tmp_path_factory.mktemp("mcp-e2e") / "service.log"
    with running_service(
        real_index_dir, onnx_dir, log, SEARCH_API_KEY=WRITE_KEY, SEARCH_READ_API_KEY=READ_KEY
    ) as base:
        yield base


def spans(results: list[dict[str, Any]]) -> list[tuple[str, int, int]]:
    return [(r["doc_id"], r["start"], r["end"]) for r in results]


def test_search_through_mcp_finds_what_get_search_finds(service: str) -> None:
    headers = key_headers(READ_KEY)

    async def scenario() -> tuple[set[str], dict[str, dict[str, Any]]]:
        async with mcp_session(service, headers) as session:
            names = await tool_names(session)
            answers = {
                mode: await structured(session, "search", query=QUERY, k=10, mode=mode)
                for mode in ("hybrid", "semantic", "keyword")
            }
            return names, answers

    names, answers = run(scenario)
    assert names == READ_TOOLS
    for mode, answer in answers.items():
        expected = httpx.get(
            f"{service}/search", params={"q": QUERY, "k": 10, "mode": mode}, headers=headers
        ).json()
        assert spans(answer["results"]) == spans(expected["results"]), mode
        assert [r["score"] for r in answer["results"]] == pytest.approx(
            [r["score"] for r in expected["results"]]
        ), mode
    assert answers["hybrid"]["results"][0]["doc_id"] == RUSSIA_DOC
    assert len(answers["hybrid"]["results"]) == 10


def test_a_write_key_writes_and_deletes_and_a_read_key_is_refused(service: str) -> None:
    async def scenario() -> dict[str, Any]:
        seen: dict[str, Any] = {}
        async with mcp_session(service, key_headers(READ_KEY, "X-API-Key")) as reader:
            seen["read names"] = await tool_names(reader)
            seen["read put"] = await refusal(reader, "put_document", **ARTICLE)
            seen["read delete"] = await refusal(reader, "delete_document", doc_id=RUSSIA_DOC)
        async with mcp_session(service, key_headers(WRITE_KEY)) as writer:
            seen["write names"] = await tool_names(writer)
            seen["put"] = await structured(writer, "put_document", **ARTICLE)
            seen["found"] = await structured(writer, "search", query="apple harvest in Norway")
            seen["described"] = await structured(writer, "describe")
            seen["delete"] = await structured(writer, "delete_document", doc_id="apples.txt")
            seen["gone"] = await refusal(writer, "get_document", doc_id="apples.txt")
        return seen

    seen = run(scenario)
    assert seen["read names"] == READ_TOOLS
    assert seen["read put"] == seen["read delete"] == "this API key cannot write"
    assert seen["write names"] == READ_TOOLS | WRITE_TOOLS
    assert seen["put"]["result"] == "created"
    assert seen["found"]["results"][0]["doc_id"] == "apples.txt"
    fields = {field["name"]: field for field in seen["described"]["metadata_fields"]}
    assert fields["published"]["types"] == ["date"]
    assert seen["delete"] == {"doc_id": "apples.txt", "result": "deleted"}
    assert seen["gone"] == "no document with id 'apples.txt'"
    headers = key_headers(READ_KEY)
    assert httpx.get(f"{service}/documents/apples.txt", headers=headers).status_code == 404
    assert httpx.get(f"{service}/documents/{RUSSIA_DOC}", headers=headers).status_code == 200
