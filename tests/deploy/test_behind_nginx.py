"""The service under /search-api/ behind nginx (deploy/nginx.conf), used from Chromium."""

from __future__ import annotations

import asyncio
import http.client
import json
import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass
from email.message import Message
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from selenium import webdriver
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support import expected_conditions as ec
from selenium.webdriver.support.ui import Select, WebDriverWait

from harness.service import free_port
from tests.utils.deploy import require, screenshot
from tests.utils.mcp_client import (
    READ_TOOLS,
    WRITE_TOOLS,
    mcp_session,
    refusal,
    run,
    structured,
    tool_names,
)
from tests.utils.processes import running_nginx, running_service
from tests.utils.seeds import RUSSIA_DOC

# One worker starts this module's service and nginx once.
pytestmark = pytest.mark.xdist_group("nginx")

PREFIX = "/search-api"
QUERY = "Russian military presence"
KEY = "deploy-write-key"
READ_KEY = "deploy-read-key"


# deploy/nginx.conf's rate limit: 20 requests/s, and a burst of 40 more answered at once.
RATE = 20
BURST = 40


@pytest.fixture(scope="module")
def service(
    real_index_dir: Path, onnx_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """The service as it runs behind the proxy (root path, a write key); yields its base URL."""
    require("nginx")
    workdir = tmp_path_factory.mktemp("behind-nginx")
    with running_service(
        real_index_dir,
        onnx_dir,
        workdir / "service.log",
        SEARCH_ROOT_PATH=PREFIX,
        SEARCH_API_KEY=KEY,
    ) as app:
        yield app


def port_of(url: str) -> int:
    return int(url.rsplit(":", 1)[1])


@pytest.fixture(scope="module")
def proxied(service: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """nginx at a free port serving the service under /search-api/; yields nginx's base URL."""
    with running_nginx(tmp_path_factory.mktemp("nginx"), port_of(service)) as proxy:
        yield proxy


@dataclass
class Answer:
    status: int
    headers: Message
    body: bytes


def raw_request(base: str, request: bytes) -> Answer:
    """Send ``request`` byte for byte (HTTP clients normalise or refuse what these tests send)."""
    with socket.create_connection(("127.0.0.1", port_of(base)), timeout=10) as sock:
        sock.sendall(request)
        response = http.client.HTTPResponse(sock)
        response.begin()
        return Answer(response.status, response.headers, response.read())


def get(target: str, *headers: str) -> bytes:
    lines = [f"GET {target} HTTP/1.1", "Host: localhost", "Connection: close", *headers]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def json_detail(answer: Answer | httpx.Response) -> str:
    """The detail of an error answered like the service's errors: JSON, only a detail."""
    assert answer.headers["content-type"] == "application/json"
    body = json.loads(answer.body if isinstance(answer, Answer) else answer.content)
    assert list(body) == ["detail"]
    return str(body["detail"])


def test_search_and_openapi_work_through_the_prefix(proxied: str) -> None:
    response = httpx.get(f"{proxied}{PREFIX}/search", params={"q": QUERY, "k": 3})
    assert response.status_code == 200
    assert response.json()["results"][0]["doc_id"] == RUSSIA_DOC
    spec = httpx.get(f"{proxied}{PREFIX}/openapi.json").json()
    assert spec["servers"] == [{"url": PREFIX}]
    redirect = httpx.get(f"{proxied}{PREFIX}")
    assert redirect.status_code == 301
    assert redirect.headers["location"] == f"{PREFIX}/"


def test_proxy_errors_are_json_too(proxied: str) -> None:
    too_big = httpx.post(
        f"{proxied}{PREFIX}/search",
        content=b"x" * 6_000_000,  # over nginx's 5 MiB
        headers={"content-type": "application/json"},
    )
    assert too_big.status_code == 413
    assert too_big.json() == {"detail": "request body too large"}
    # Between the service's 4 MiB and nginx's 5 MiB: the service's own answer.
    service_too_big = httpx.post(f"{proxied}{PREFIX}/search", json={"query": "x" * 4_300_000})
    assert service_too_big.status_code == 413, service_too_big.text
    assert "larger than 4194304 bytes" in service_too_big.json()["detail"]


def test_the_services_own_errors_pass_through_untouched(proxied: str) -> None:
    # FastAPI's 404, not nginx's: error_page applies only to what nginx answers itself.
    answer = httpx.get(f"{proxied}{PREFIX}/no-such-route")
    assert answer.status_code == 404
    assert json_detail(answer) == "Not Found"


@pytest.mark.parametrize(
    ("request_bytes", "status", "detail"),
    [
        # What `curl --path-as-is` sends: nginx refuses a path that climbs above the root.
        pytest.param(get(f"{PREFIX}/../../etc/passwd"), 400, "bad request", id="climbing-path"),
        pytest.param(b"GARBAGE\r\n\r\n", 400, "bad request", id="bad-request-line"),
        pytest.param(get("/etc/passwd"), 404, "not found", id="outside-the-prefix"),
        pytest.param(get("/"), 404, "not found", id="root"),
        pytest.param(get("/_search_api_error"), 404, "not found", id="the-error-location"),
        pytest.param(
            get(f"{PREFIX}/search?q={'x' * 9000}"), 414, "request URI too long", id="long-uri"
        ),
        # nginx's 494 for a header line over 8 KiB, answered as 400.
        pytest.param(
            get(f"{PREFIX}/health", f"X-Padding: {'x' * 9000}"),
            400,
            "request headers too large",
            id="large-header",
        ),
        pytest.param(
            get(f"{PREFIX}/health", *(f"X-Padding-{n}: {'x' * 7000}" for n in range(6))),
            400,
            "request headers too large",
            id="many-headers",
        ),
        pytest.param(
            get(f"{PREFIX}/health").replace(b"GET", b"TRACE", 1),
            405,
            "method not allowed",
            id="trace",
        ),
        pytest.param(
            get(f"{PREFIX}/health").replace(b"HTTP/1.1", b"HTTP/2.0", 1),
            505,
            "HTTP version not supported",
            id="http-2.0-request-line",
        ),
    ],
)
def test_errors_nginx_answers_itself_are_json(
    proxied: str, request_bytes: bytes, status: int, detail: str
) -> None:
    answer = raw_request(proxied, request_bytes)
    assert answer.status == status, answer.body
    assert json_detail(answer) == detail
    assert "retry-after" not in answer.headers


def test_a_service_that_is_down_gets_a_json_502_with_retry_after(tmp_path: Path) -> None:
    require("nginx")
    with running_nginx(tmp_path / "nginx", free_port()) as proxy:
        answer = httpx.get(f"{proxy}{PREFIX}/search", params={"q": QUERY})
    assert answer.status_code == 502
    assert json_detail(answer) == "the search service is not reachable; retry shortly"
    assert answer.headers["retry-after"] == "5"


async def fire(urls: list[str]) -> list[httpx.Response]:
    """All of ``urls`` at once, each on its own connection."""
    limits = httpx.Limits(max_connections=len(urls))
    async with httpx.AsyncClient(limits=limits, timeout=30) as client:
        return await asyncio.gather(*(client.get(url) for url in urls))


def test_a_client_over_the_rate_limit_gets_a_json_429_with_retry_after(
    service: str, tmp_path: Path
) -> None:
    """On an nginx of its own: the burst would leave the other tests' client over its limit."""
    with running_nginx(tmp_path / "nginx", port_of(service)) as proxy:
        # The probes in the same burst: while the client is over its limit (some of its
        # requests refused), its probes still pass. (A second burst after this one is over the
        # limit only if it comes within 2 s: a busy machine took longer.)
        probes = [f"{proxy}{PREFIX}/health", f"{proxy}{PREFIX}/ready"] * BURST
        started = time.monotonic()
        answers = asyncio.run(fire([f"{proxy}{PREFIX}/info"] * 3 * BURST + probes))
        elapsed = time.monotonic() - started
    burst, probed = answers[: 3 * BURST], answers[3 * BURST :]
    served = [answer for answer in burst if answer.status_code == 200]
    refused = [answer for answer in burst if answer.status_code == 429]
    assert len(served) + len(refused) == len(burst), {a.status_code for a in burst}
    # The first request and the burst pass at once, then 20 a second (+1 for rounding).
    assert BURST + 1 <= len(served) <= BURST + 2 + RATE * elapsed
    assert refused
    for answer in served:
        assert answer.json()["version"]
    for answer in refused:
        assert json_detail(answer) == "too many requests; retry after the seconds in Retry-After"
        assert answer.headers["retry-after"] == "1"
    assert [answer.status_code for answer in probed] == [200] * len(probes)


def test_writes_with_the_key_pass_through_the_proxy(proxied: str) -> None:
    article = {"title": "Harbour storm", "text": "A storm closed the harbour at Bergen."}
    url = f"{proxied}{PREFIX}/documents/harbour.txt"
    assert httpx.put(url, json=article).status_code == 401
    written = httpx.put(
        f"{url}?refresh=wait_for", json=article, headers={"Authorization": f"Bearer {KEY}"}
    )
    assert written.status_code == 201, written.text
    found = httpx.get(f"{proxied}{PREFIX}/search", params={"q": "Bergen harbour storm", "k": 1})
    assert found.json()["results"][0]["doc_id"] == "harbour.txt"
    assert httpx.delete(url, headers={"X-API-Key": KEY}).status_code == 204


def test_mcp_works_through_the_prefix_under_a_public_host_name(proxied: str) -> None:
    """/search-api/mcp with the official client, the Host a public name (as nginx forwards
    it): the SDK's default DNS-rebinding check would answer 421 (app/mcp.py)."""
    url = f"{proxied}{PREFIX}/mcp"
    public = {"Host": "search.example.org"}
    article = {"title": "Harbour storm", "text": "A storm closed the harbour at Stavanger."}

    async def scenario() -> dict[str, Any]:
        seen: dict[str, Any] = {}
        async with mcp_session(proxied, public, url=url) as anonymous:
            seen["anonymous"] = await tool_names(anonymous)
            seen["search"] = await structured(anonymous, "search", query=QUERY, k=3)
            seen["refused"] = await refusal(
                anonymous, "put_document", doc_id="mcp-harbour.txt", **article
            )
        keyed = {**public, "Authorization": f"Bearer {KEY}"}
        async with mcp_session(proxied, keyed, url=url) as writer:
            seen["writer"] = await tool_names(writer)
            seen["put"] = await structured(
                writer, "put_document", doc_id="mcp-harbour.txt", **article
            )
            seen["found"] = await structured(writer, "search", query="Stavanger harbour storm", k=1)
            seen["deleted"] = await structured(writer, "delete_document", doc_id="mcp-harbour.txt")
        return seen

    seen = run(scenario)
    assert seen["anonymous"] == READ_TOOLS
    assert seen["writer"] == READ_TOOLS | WRITE_TOOLS
    expected = httpx.get(f"{proxied}{PREFIX}/search", params={"q": QUERY, "k": 3}).json()
    assert [(r["doc_id"], r["start"], r["end"]) for r in seen["search"]["results"]] == [
        (r["doc_id"], r["start"], r["end"]) for r in expected["results"]
    ]
    assert seen["search"]["results"][0]["doc_id"] == RUSSIA_DOC
    assert seen["refused"].startswith("writes need an API key")
    assert (seen["put"]["result"], seen["put"]["passages"]) == ("created", 1)
    assert seen["found"]["results"][0]["doc_id"] == "mcp-harbour.txt"
    assert seen["deleted"] == {"doc_id": "mcp-harbour.txt", "result": "deleted"}


def test_swagger_try_it_out_runs_a_search_through_the_prefix(
    proxied: str, browser: webdriver.Chrome
) -> None:
    browser.get(f"{proxied}{PREFIX}/docs")
    wait = WebDriverWait(browser, 30)
    operation = "#operations-search-search_get_search_get"
    wait.until(
        ec.element_to_be_clickable((By.CSS_SELECTOR, f"{operation} .opblock-summary"))
    ).click()
    wait.until(ec.element_to_be_clickable((By.CSS_SELECTOR, f"{operation} .try-out__btn"))).click()
    box = wait.until(
        ec.presence_of_element_located((By.CSS_SELECTOR, f"{operation} input[placeholder='q']"))
    )
    box.clear()
    box.send_keys(QUERY)
    # An enum parameter gets a dropdown (group_by was a free text box while it allowed null).
    group_by = browser.find_element(By.CSS_SELECTOR, f"{operation} tr[data-param-name='group_by']")
    Select(group_by.find_element(By.TAG_NAME, "select")).select_by_visible_text("document")
    browser.find_element(By.CSS_SELECTOR, f"{operation} .execute").click()
    status = wait.until(
        ec.presence_of_element_located(
            (By.CSS_SELECTOR, f"{operation} .live-responses-table tbody .response-col_status")
        )
    )
    request_url = browser.find_element(By.CSS_SELECTOR, f"{operation} .request-url pre").text
    body = browser.find_element(
        By.CSS_SELECTOR, f"{operation} .live-responses-table .response-col_description pre"
    ).text
    browser.execute_script("arguments[0].scrollIntoView({block: 'center'})", status)
    screenshot(browser, "swagger-try-it-out.png")
    assert status.text.strip() == "200", (request_url, body)
    assert request_url.startswith(f"{proxied}{PREFIX}/search?q=Russian%20military%20presence")
    sent = parse_qs(urlsplit(request_url).query)
    assert sent["group_by"] == ["document"]
    # The filter box starts at its first example, {}: no filter, every article answers.
    assert json.loads(sent.get("filter", ["{}"])[0]) == {}
    assert RUSSIA_DOC in body
    assert body.count('"doc_id"') == 2  # one passage per seed article, not k=5 passages


def test_swagger_authorize_then_try_it_out_writes_a_document(
    proxied: str, browser: webdriver.Chrome
) -> None:
    """The "Authorize" button takes the key (the OpenAPI security schemes), and "Try it out"
    sends it with a PUT."""
    browser.get(f"{proxied}{PREFIX}/docs")
    wait = WebDriverWait(browser, 30)
    wait.until(ec.element_to_be_clickable((By.CSS_SELECTOR, "button.authorize"))).click()
    dialog = wait.until(ec.visibility_of_element_located((By.CSS_SELECTOR, ".modal-ux")))
    # The dialog has one block per scheme; the X-API-Key one has a value box.
    container = next(
        block
        for block in dialog.find_elements(By.CSS_SELECTOR, ".auth-container")
        if "X-API-Key" in block.text
    )
    container.find_element(By.CSS_SELECTOR, "input").send_keys(KEY)
    container.find_element(By.CSS_SELECTOR, "button.authorize").click()
    dialog.find_element(By.CSS_SELECTOR, "button.btn-done").click()
    operation = "#operations-documents-put_document_documents__doc_id__put"
    wait.until(
        ec.element_to_be_clickable((By.CSS_SELECTOR, f"{operation} .opblock-summary"))
    ).click()
    wait.until(ec.element_to_be_clickable((By.CSS_SELECTOR, f"{operation} .try-out__btn"))).click()
    doc_id = wait.until(
        ec.presence_of_element_located(
            (By.CSS_SELECTOR, f"{operation} tr[data-param-name='doc_id'] input")
        )
    )
    doc_id.send_keys("swagger.txt")
    browser.find_element(By.CSS_SELECTOR, f"{operation} .execute").click()
    status = wait.until(
        ec.presence_of_element_located(
            (By.CSS_SELECTOR, f"{operation} .live-responses-table tbody .response-col_status")
        )
    )
    curl = browser.find_element(By.CSS_SELECTOR, f"{operation} .curl-command").text
    browser.execute_script("arguments[0].scrollIntoView({block: 'center'})", status)
    screenshot(browser, "swagger-authorize-put.png")
    assert status.text.strip() == "201", curl
    assert f"X-API-Key: {KEY}" in curl
    stored = httpx.get(f"{proxied}{PREFIX}/documents/swagger.txt").json()
    assert stored["title"] == "Venezuela talks resume"  # the example body
    assert (
        httpx.delete(
            f"{proxied}{PREFIX}/documents/swagger.txt", headers={"X-API-Key": KEY}
        ).status_code
        == 204
    )


def test_the_search_page_asks_for_a_read_key_when_the_service_needs_one(
    real_index_dir: Path, onnx_dir: Path, tmp_path: Path, browser: webdriver.Chrome
) -> None:
    with running_service(
        real_index_dir, onnx_dir, tmp_path / "service.log", SEARCH_READ_API_KEY=READ_KEY
    ) as app:
        browser.get(f"{app}/?q=Russian+military+presence")
        wait = WebDriverWait(browser, 30)
        key_box = wait.until(ec.visibility_of_element_located((By.ID, "api-key")))
        assert "needs an API key" in browser.find_element(By.ID, "key-label").text
        key_box.send_keys("wrong", Keys.ENTER)
        wait.until(ec.text_to_be_present_in_element((By.ID, "key-label"), "was not accepted"))
        box = browser.find_element(By.ID, "api-key")
        box.send_keys(READ_KEY, Keys.ENTER)
        wait.until(ec.presence_of_element_located((By.CSS_SELECTOR, "#results li.result")))
        screenshot(browser, "search-page-read-key.png")
        first = browser.find_element(By.CSS_SELECTOR, "#results li.result .source")
        assert first.text == RUSSIA_DOC
        assert not browser.find_element(By.ID, "key-form").is_displayed()


def test_redoc_renders_under_the_prefix(proxied: str, browser: webdriver.Chrome) -> None:
    browser.get(f"{proxied}{PREFIX}/redoc")
    WebDriverWait(browser, 30).until(
        ec.presence_of_element_located((By.XPATH, "//h1[contains(., 'Semantic Search')]"))
    )
    assert browser.find_elements(By.XPATH, "//*[contains(text(), 'Search (query string)')]")
    screenshot(browser, "redoc.png")


def test_the_search_page_finds_passages_and_shows_them_in_their_document(
    proxied: str, browser: webdriver.Chrome
) -> None:
    browser.get(f"{proxied}{PREFIX}/")
    wait = WebDriverWait(browser, 30)
    box = wait.until(ec.element_to_be_clickable((By.ID, "q")))
    box.send_keys(QUERY, Keys.ENTER)
    wait.until(ec.presence_of_element_located((By.CSS_SELECTOR, "#results li.result")))
    results = browser.find_elements(By.CSS_SELECTOR, "#results li.result")
    screenshot(browser, "search-page-results.png")
    assert len(results) == 10
    first = results[0]
    assert first.find_element(By.CSS_SELECTOR, ".rank").text == "#1"
    assert first.find_element(By.CSS_SELECTOR, ".source").text == RUSSIA_DOC
    marked = {m.text.lower() for m in first.find_elements(By.CSS_SELECTOR, ".passage mark")}
    assert marked <= {"russian", "military"}
    assert marked
    assert "search-api/?q=Russian+military+presence" in browser.current_url

    passage = first.find_element(By.CSS_SELECTOR, ".passage").text
    first.find_element(By.CSS_SELECTOR, "a.result-link").click()
    mark = wait.until(ec.visibility_of_element_located((By.CSS_SELECTOR, "mark.passage-mark")))
    screenshot(browser, "search-page-document.png")
    assert " ".join(mark.text.split()) == " ".join(passage.split())
    assert browser.find_element(By.ID, "document-title").text.startswith("Mike Pompeo")

    browser.find_element(By.ID, "back").click()
    wait.until(ec.visibility_of_element_located((By.ID, "results-view")))


def test_the_search_page_fits_a_phone_screen(proxied: str, browser: webdriver.Chrome) -> None:
    browser.set_window_size(375, 812)
    browser.get(f"{proxied}{PREFIX}/?q=sanctions%20and%20medicine&mode=keyword")
    WebDriverWait(browser, 30).until(
        ec.presence_of_element_located((By.CSS_SELECTOR, "#results li.result"))
    )
    screenshot(browser, "search-page-phone.png")
    overflow = browser.execute_script(
        "return document.documentElement.scrollWidth - document.documentElement.clientWidth"
    )
    assert overflow <= 0
    assert browser.find_element(By.ID, "mode").get_attribute("value") == "keyword"
