"""The Python client (clients/python) against the real service: ``python -m app`` with the
real model on the seeds, one process for every test here. Its retries against a scripted
server (tests/utils/scripted.py), which answers 503s and 429s on demand. Its retrievers with
the real langchain-core and llama-index-core. And the client installed alone, into a bare venv:
without torch, FAISS or FastAPI."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from semantic_search_client import (
    AsyncSearchClient,
    AuthenticationError,
    InvalidRequestError,
    NotFoundError,
    PassageSpan,
    PermissionDeniedError,
    RateLimitedError,
    RetryPolicy,
    SearchClient,
    SearchError,
    SearchRequest,
    SearchResponse,
    SearchResult,
    ServerError,
    TransportError,
    UnavailableError,
)
from semantic_search_client.langchain import SemanticSearchRetriever as LangChainRetriever
from semantic_search_client.llama_index import SemanticSearchRetriever as LlamaIndexRetriever
from tests.utils.paths import REPO
from tests.utils.processes import free_port, running_service
from tests.utils.scripted import Answer, scripted_server
from tests.utils.seeds import OPPOSITION_DOC, RUSSIA_DOC

KEY = "client-e2e-key"
QUERY = "Russian military presence"
# The passage the README shows for QUERY: the seed index with the default settings.
TOP = (RUSSIA_DOC, 6, 2866, 3306)
# Waits of a few milliseconds, so that only a Retry-After can make one last a second.
QUICK = RetryPolicy(retries=3, backoff=0.01, max_backoff=0.05)
EMPTY_SEARCH = {"query": "q", "mode": "hybrid", "took_ms": 1.0, "total": 0, "results": []}
# A sleep lasts at least what it was asked; this only allows for the clocks' granularity.
ONE_SECOND = 0.99


@pytest.fixture(scope="session")
def service(
    real_index_dir: Path, onnx_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """The service with writes enabled, on its own copy of the seed index; its base URL."""
    log = tmp_path_factory.mktemp("client-service") / "service.log"
    with running_service(real_index_dir, onnx_dir, log, SEARCH_API_KEY=KEY) as base:
        yield base


@pytest.fixture
def client(service: str) -> Iterator[SearchClient]:
    with SearchClient(service, KEY) as client:
        yield client


def check_top_passage(client: SearchClient, response: SearchResponse) -> SearchResult:
    """The seed passage about Russian troops comes first, and its offsets index into its
    document's text."""
    top = response.results[0]
    assert isinstance(top, SearchResult)
    assert (top.doc_id, top.chunk_id, top.start, top.end) == TOP
    assert "Russian troop deployments" in top.text
    document = client.get_document(top.doc_id)
    assert document.text[top.start : top.end] == top.text
    assert PassageSpan(chunk_id=top.chunk_id, start=top.start, end=top.end) in document.passages
    return top


# --- searching ---------------------------------------------------------------------------


def test_search_returns_the_seed_passage(client: SearchClient) -> None:
    response = client.search(QUERY, k=3, mode="hybrid")
    assert (response.query, response.mode, response.total) == (QUERY, "hybrid", 3)
    assert [r.rank for r in response.results] == [1, 2, 3]
    top = check_top_passage(client, response)
    assert top.scores.semantic is not None
    assert top.scores.fused == top.score
    assert top.ranks.semantic is not None
    assert top.ranks.keyword is not None
    assert all(0 <= start < end <= len(top.text) for start, end in top.highlights)
    assert response.index_build == client.info().build_id


def test_async_search_returns_the_seed_passage(client: SearchClient, service: str) -> None:
    async def search() -> tuple[SearchResponse, list[SearchResponse]]:
        async with AsyncSearchClient(service) as asynchronous:
            single = await asynchronous.search(QUERY, k=3)
            batch = await asynchronous.search_batch([QUERY, {"query": QUERY, "mode": "keyword"}])
            return single, list(batch.responses)

    single, batch = asyncio.run(search())
    check_top_passage(client, single)
    assert [r.mode for r in batch] == ["hybrid", "keyword"]
    assert batch[0].results[0].doc_id == RUSSIA_DOC


def test_search_options_reach_the_service(client: SearchClient) -> None:
    only = client.search(QUERY, k=10, filter={"doc_id": OPPOSITION_DOC})
    assert only.results
    assert {r.doc_id for r in only.results} == {OPPOSITION_DOC}
    assert {r.doc_id for r in client.search(QUERY, k=10, source=[OPPOSITION_DOC]).results} == {
        OPPOSITION_DOC
    }
    grouped = client.search(QUERY, k=10, group_by="document")
    assert sorted(r.doc_id for r in grouped.results) == sorted({OPPOSITION_DOC, RUSSIA_DOC})
    assert all(r.other_matches is not None for r in grouped.results)
    page = client.search(QUERY, k=2, offset=1, mode="semantic")
    assert [r.rank for r in page.results] == [2, 3]
    floor = page.results[0].score
    assert all(r.score >= floor for r in client.search(QUERY, k=50, min_score=floor).results)
    batch = client.search_batch([QUERY, SearchRequest(query=QUERY, k=1, mode="keyword")])
    assert [len(r.results) for r in batch.responses] == [5, 1]


# --- documents ---------------------------------------------------------------------------

# Slashes, spaces, URL delimiters, percent signs, non-ASCII and dot segments, as one id.
ODD_ID = "client-e2e/news/2021/../a b?c#d%20é/./apples.txt"
APPLES = "Orchards along the Hardanger fjord reported a record apple harvest this autumn."
PEARS = "Growers in Lleida expect a small crop of pears after a dry spring."


def test_every_document_method(client: SearchClient) -> None:
    section = {"section": "client-e2e"}
    before = client.info().documents
    written = client.put_document(
        ODD_ID, title="Apples", text=APPLES, metadata={**section, "year": 2021}, refresh=True
    )
    assert (written.doc_id, written.result, written.passages) == (ODD_ID, "created", 1)
    document = client.get_document(ODD_ID)
    assert (document.doc_id, document.text, document.metadata) == (
        ODD_ID,
        APPLES,
        {**section, "year": 2021},
    )
    replaced = client.put_document(ODD_ID, title="Apples", text=APPLES, metadata=section)
    assert replaced.result == "replaced"
    assert replaced.seq > written.seq

    bulk = client.put_documents(
        [
            {
                "doc_id": "client-e2e-pears.txt",
                "title": "Pears",
                "text": PEARS,
                "metadata": section,
            },
            {"doc_id": "client-e2e-plums.txt", "title": "Plums", "text": "Plums.", "metadata": {}},
        ],
        refresh=True,
    )
    assert [(i.doc_id, i.status, i.result) for i in bulk.items] == [
        ("client-e2e-pears.txt", 201, "created"),
        ("client-e2e-plums.txt", 201, "created"),
    ]
    listed = client.list_documents(filter=section)
    assert listed.total == 2
    assert {d.doc_id for d in listed.documents} == {ODD_ID, "client-e2e-pears.txt"}
    assert len(client.list_documents(limit=1, offset=1).documents) == 1
    assert client.info().documents == before + 3
    assert client.search("pear growers", k=1, filter=section).results[0].doc_id == (
        "client-e2e-pears.txt"
    )

    assert client.delete_document(ODD_ID) is None
    with pytest.raises(NotFoundError):
        client.get_document(ODD_ID)
    deleted = client.delete_documents({"doc_id": ["client-e2e-pears.txt", "client-e2e-plums.txt"]})
    assert deleted.deleted == 2
    assert deleted.seq > bulk.seq
    assert client.list_documents(filter=section).total == 0
    assert client.info().documents == before


def test_every_async_method(service: str) -> None:
    async def scenario() -> None:
        async with AsyncSearchClient(service, KEY) as client:
            assert (await client.ready()).is_ready
            assert (await client.health()).status == "ok"
            assert (await client.info()).writes == "enabled"
            put = await client.put_document("client-e2e-async.txt", title="A", text=APPLES)
            assert put.result == "created"
            bulk = await client.put_documents(
                [{"doc_id": "client-e2e-async-2.txt", "title": "P", "text": PEARS}], refresh=True
            )
            assert bulk.items[0].status == 201
            assert (await client.get_document("client-e2e-async.txt")).text == APPLES
            listed = await client.list_documents(filter={"doc_id": "client-e2e-async-2.txt"})
            assert [d.title for d in listed.documents] == ["P"]
            hits = await client.search("apple harvest", k=1, mode="keyword")
            assert hits.results[0].doc_id == "client-e2e-async.txt"
            await client.delete_document("client-e2e-async.txt")
            gone = await client.delete_documents({"doc_id": "client-e2e-async-2.txt"})
            assert gone.deleted == 1
            with pytest.raises(NotFoundError):
                await client.delete_document("client-e2e-async.txt")

    asyncio.run(scenario())


def test_the_url_and_key_come_from_the_environment(
    service: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SEARCH_URL", service)
    monkeypatch.setenv("SEARCH_API_KEY", KEY)
    with SearchClient() as client:
        assert client.base_url.rstrip("/") == service
        client.put_document("client-e2e-env.txt", title="Env", text=APPLES)
        client.delete_document("client-e2e-env.txt")
    # An explicit empty key sends none, whatever the environment says.
    with SearchClient(api_key="") as client, pytest.raises(AuthenticationError):
        client.delete_document("client-e2e-env.txt")


# --- errors ------------------------------------------------------------------------------


def test_errors_are_typed_and_carry_the_detail(client: SearchClient, service: str) -> None:
    with pytest.raises(NotFoundError) as missing:
        client.get_document("no/such/document.txt")
    assert missing.value.status_code == 404
    assert missing.value.detail == "no document with id 'no/such/document.txt'"
    assert missing.value.request_id

    with SearchClient(service, api_key="") as anonymous, pytest.raises(AuthenticationError) as no:
        anonymous.put_document("x.txt", title="X", text="X")
    assert no.value.status_code == 401
    assert "API key" in str(no.value.detail)

    with SearchClient(service, "wrong") as wrong, pytest.raises(PermissionDeniedError) as denied:
        wrong.delete_document("x.txt")
    assert (denied.value.status_code, denied.value.detail) == (
        403,
        "this API key is not valid here",
    )

    with pytest.raises(InvalidRequestError) as invalid:
        client.search(QUERY, filter={"year": {"gtee": 2019}})
    assert invalid.value.status_code == 422
    assert isinstance(invalid.value.detail, list)
    assert "unknown operator 'gtee'" in invalid.value.detail[0]["msg"]
    assert "unknown operator 'gtee'" in str(invalid.value)

    with pytest.raises(InvalidRequestError) as empty:
        client.delete_documents({})
    assert empty.value.status_code == 422
    assert "at least one condition" in str(empty.value)

    with pytest.raises(InvalidRequestError) as too_many:
        client.search(QUERY, k=1000)
    assert too_many.value.status_code == 422

    # Refused before anything is sent: no status code.
    with pytest.raises(InvalidRequestError) as local:
        client.search(QUERY, mode="fuzzy")  # type: ignore[arg-type]
    assert local.value.status_code is None
    assert "mode" in str(local.value)


# --- retries -----------------------------------------------------------------------------


def unavailable(seconds: int = 1) -> Answer:
    return Answer(503, {"detail": "loading the model"}, {"Retry-After": str(seconds)})


def test_no_retries_by_default() -> None:
    with scripted_server(unavailable(), Answer(200, EMPTY_SEARCH)) as script:
        with SearchClient(script.base_url) as client, pytest.raises(UnavailableError) as error:
            client.search(QUERY)
        assert len(script.arrivals) == 1
        assert (error.value.status_code, error.value.detail) == (503, "loading the model")
        assert error.value.retry_after == 1.0
        assert isinstance(error.value, ServerError)


def test_a_503_is_retried_after_its_retry_after() -> None:
    answers = (unavailable(), unavailable(), Answer(200, EMPTY_SEARCH))
    with scripted_server(*answers) as script, SearchClient(script.base_url, retries=QUICK) as c:
        assert c.search(QUERY).total == 0
        assert script.paths == ["POST /search"] * 3
        assert len(script.gaps) == 2
        assert min(script.gaps) >= ONE_SECOND, script.gaps


def test_an_async_429_and_503_are_retried_after_their_retry_after() -> None:
    answers = (
        Answer(429, {"detail": "slow down"}, {"Retry-After": "1"}),
        unavailable(),
        Answer(200, {"status": "ok"}),
    )

    async def health(base_url: str) -> str:
        async with AsyncSearchClient(base_url, retries=QUICK) as client:
            return (await client.health()).status

    with scripted_server(*answers) as script:
        assert asyncio.run(health(script.base_url)) == "ok"
        assert len(script.arrivals) == 3
        assert min(script.gaps) >= ONE_SECOND, script.gaps


def test_retries_run_out() -> None:
    answers = (Answer(429, {"detail": "slow down"}), Answer(429, {"detail": "still"}))
    policy = RetryPolicy(retries=1, backoff=0.01)
    with scripted_server(*answers) as script, SearchClient(script.base_url, retries=policy) as c:
        with pytest.raises(RateLimitedError) as error:
            c.info()
        assert len(script.arrivals) == 2
        assert error.value.detail == "still"
        assert error.value.retry_after is None


def test_what_is_not_retried() -> None:
    answers = (Answer(500, {"detail": "boom"}), unavailable(120), Answer(404, {"detail": "no"}))
    policy = RetryPolicy(retries=3, backoff=0.01, max_retry_after=30)
    with scripted_server(*answers) as script, SearchClient(script.base_url, retries=policy) as c:
        with pytest.raises(ServerError) as failed:
            c.info()  # a 500: the request may have done harm, and may again
        assert failed.value.status_code == 500
        assert not isinstance(failed.value, UnavailableError)
        with pytest.raises(UnavailableError):
            c.info()  # a Retry-After longer than the policy waits
        with pytest.raises(NotFoundError):
            c.get_document("a.txt")
        assert len(script.arrivals) == 3


def test_a_per_call_timeout_is_not_retried() -> None:
    with scripted_server(Answer(200, EMPTY_SEARCH, hang=True)) as script:
        with SearchClient(script.base_url, retries=QUICK, timeout=30) as client:
            started = time.monotonic()
            with pytest.raises(TransportError) as error:
                client.search(QUERY, timeout=0.2)
            assert time.monotonic() - started < 10
        assert isinstance(error.value.__cause__, httpx.ReadTimeout)
        assert error.value.status_code is None
        assert len(script.arrivals) == 1


class CountingTransport(httpx.HTTPTransport):
    def __init__(self) -> None:
        super().__init__()
        self.attempts = 0

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        self.attempts += 1
        return super().handle_request(request)


class AsyncCountingTransport(httpx.AsyncHTTPTransport):
    def __init__(self) -> None:
        super().__init__()
        self.attempts = 0

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.attempts += 1
        return await super().handle_async_request(request)


@pytest.mark.parametrize(("retries", "attempts"), [(0, 1), (2, 3)])
def test_a_refused_connection_is_retried_then_raised(retries: int, attempts: int) -> None:
    closed = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    policy = RetryPolicy(retries=retries, backoff=0.01)
    transport = CountingTransport()
    with (
        SearchClient(closed, retries=policy, transport=transport) as client,
        pytest.raises(TransportError) as error,
    ):
        client.search(QUERY)
    assert isinstance(error.value, SearchError)
    assert error.value.status_code is None
    assert isinstance(error.value.__cause__, httpx.ConnectError)
    assert transport.attempts == attempts

    async def search() -> None:
        async with AsyncSearchClient(closed, retries=policy, transport=asynchronous) as client:
            await client.search(QUERY)

    asynchronous = AsyncCountingTransport()
    with pytest.raises(TransportError):
        asyncio.run(search())
    assert asynchronous.attempts == attempts


# --- retrievers --------------------------------------------------------------------------


def test_the_langchain_retriever(client: SearchClient, service: str) -> None:
    expected = client.search(QUERY, k=3).results
    retriever = LangChainRetriever(base_url=service, k=3)
    for documents in (retriever.invoke(QUERY), asyncio.run(retriever.ainvoke(QUERY))):
        assert [d.page_content for d in documents] == [r.text for r in expected]
        top = documents[0]
        assert top.id == f"{RUSSIA_DOC}#6"
        metadata = top.metadata
        assert (metadata["doc_id"], metadata["chunk_id"], metadata["start"], metadata["end"]) == TOP
        assert metadata["title"] == expected[0].title
        assert metadata["score"] == expected[0].score
        assert metadata["scores"] == expected[0].scores.model_dump()


def test_the_langchain_retriever_with_clients_of_its_own(service: str) -> None:
    async def documents(retriever: LangChainRetriever) -> list[str]:
        async with AsyncSearchClient(service) as own:
            retriever.async_client = own
            return [d.metadata["doc_id"] for d in await retriever.ainvoke(QUERY)]

    with SearchClient(service) as own:
        only = {"doc_id": OPPOSITION_DOC}
        retriever = LangChainRetriever(client=own, k=5, mode="semantic", filter=only)
        assert [d.metadata["doc_id"] for d in retriever.invoke(QUERY)] == [OPPOSITION_DOC] * 5
        assert asyncio.run(documents(retriever)) == [OPPOSITION_DOC] * 5


def test_the_llama_index_retriever(client: SearchClient, service: str) -> None:
    expected = client.search(QUERY, k=3).results
    retriever = LlamaIndexRetriever(service, k=3)
    for nodes in (retriever.retrieve(QUERY), asyncio.run(retriever.aretrieve(QUERY))):
        assert [n.node.get_content() for n in nodes] == [r.text for r in expected]
        assert [n.score for n in nodes] == [r.score for r in expected]
        top = nodes[0].node
        assert top.node_id == f"{RUSSIA_DOC}#6"
        assert (top.metadata["doc_id"], top.metadata["chunk_id"]) == (RUSSIA_DOC, 6)
        assert (top.start_char_idx, top.end_char_idx) == TOP[2:]
        assert top.source_node is not None
        assert top.source_node.node_id == RUSSIA_DOC
    semantic = LlamaIndexRetriever(service, k=2, mode="semantic", filter={"doc_id": OPPOSITION_DOC})
    assert [n.node.metadata["doc_id"] for n in semantic.retrieve(QUERY)] == [OPPOSITION_DOC] * 2


# --- installed alone ---------------------------------------------------------------------

SEARCH_SCRIPT = """
import importlib.util, json, sys
from semantic_search_client import SearchClient
absent = [m for m in ("torch", "faiss", "fastapi", "numpy") if importlib.util.find_spec(m)]
with SearchClient(sys.argv[1]) as client:
    top = client.search("Russian military presence", k=1).results[0]
print(json.dumps({"present": absent, "top": [top.doc_id, top.chunk_id, top.start, top.end]}))
"""


def test_the_client_installs_alone(service: str, tmp_path: Path) -> None:
    """``pip install ./clients/python`` into a bare venv brings httpx, pydantic and tenacity,
    and nothing of the service; that venv's python then searches the service."""
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", venv], check=True, timeout=120)
    python = venv / "bin" / "python"
    uv = Path(sys.executable).parent / "uv"  # make install-test installs it beside python
    install = [uv, "pip", "install", "--quiet", "--python", python, REPO / "clients" / "python"]
    subprocess.run(install, check=True, timeout=300, cwd=tmp_path)
    listed = subprocess.run(
        [uv, "pip", "list", "--python", python, "--format", "json"],
        check=True,
        capture_output=True,
        text=True,
        timeout=60,
    )
    installed = {package["name"] for package in json.loads(listed.stdout)}
    assert {"semantic-search-client", "httpx", "pydantic", "tenacity"} <= installed
    assert not installed & {"torch", "faiss-cpu", "fastapi", "starlette", "numpy", "uvicorn"}

    environment = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
    ran = subprocess.run(
        [python, "-c", SEARCH_SCRIPT, service],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
        env=environment,
    )
    assert ran.returncode == 0, ran.stderr
    assert json.loads(ran.stdout) == {"present": [], "top": list(TOP)}
