from __future__ import annotations

import re
from html.parser import HTMLParser
from urllib.parse import quote

import pytest
from fastapi.testclient import TestClient

from app.main import create_app
from app.routes.page import STATIC_DIR
from app.settings import Settings
from tests.utils.fakes import HashingEmbedder

# An absolute URL or a protocol-relative one (//host/...), in markup, CSS or script.
EXTERNAL_URL = re.compile(r"""https?://|(?:src|href|action)\s*=\s*["']?//|url\(\s*["']?//""")


class _Page(HTMLParser):
    """Collects what the tests look at: tags with their attributes, and label texts."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.labels: dict[str, str] = {}
        self._label_for: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))
        if tag == "label":
            self._label_for = dict(attrs).get("for")
            if self._label_for:
                self.labels[self._label_for] = ""

    def handle_endtag(self, tag: str) -> None:
        if tag == "label":
            self._label_for = None

    def handle_data(self, data: str) -> None:
        if self._label_for:
            self.labels[self._label_for] += data

    def find(self, tag: str, **attrs: str) -> dict[str, str | None]:
        for name, found in self.tags:
            if name == tag and all(found.get(k) == v for k, v in attrs.items()):
                return found
        raise AssertionError(f"no <{tag}> with {attrs}")


def parse(html: str) -> _Page:
    page = _Page()
    page.feed(html)
    return page


@pytest.fixture
def bare_client(settings: Settings) -> TestClient:
    """The app without its startup: the page and static files need neither index nor model."""
    return TestClient(create_app(settings, HashingEmbedder))


def test_the_api_answers_with_what_the_page_reads(client: TestClient) -> None:
    """The fields and error shapes search.js relies on, through the URLs it builds."""
    body = client.get(
        "/search", params={"q": "Russian military presence", "mode": "hybrid", "k": "10"}
    ).json()
    assert {"query", "mode", "took_ms", "total", "results"} <= body.keys()
    assert body["results"]
    for result in body["results"]:
        assert {"rank", "score", "title", "doc_id", "chunk_id", "start", "end"} <= result.keys()
        assert {"semantic", "keyword"} <= result["scores"].keys() & result["ranks"].keys()
        for start, end in result["highlights"]:
            assert 0 <= start < end <= len(result["text"])
        # The document view marks text[start:end] of the document fetched by its quoted id.
        document = client.get(f"/documents/{quote(result['doc_id'], safe='')}").json()
        assert document["text"][result["start"] : result["end"]] == result["text"]
        assert {"chunk_id": result["chunk_id"], "start": result["start"], "end": result["end"]} in (
            document["passages"]
        )

    grouped = client.get("/search", params={"q": "Russia", "k": "10", "group_by": "document"})
    assert all(isinstance(r["other_matches"], int) for r in grouped.json()["results"])

    invalid = client.get("/search", params={"q": "Russia", "k": "500"})
    assert invalid.status_code == 422
    assert invalid.json()["detail"][0]["loc"] == ["query", "k"]
    assert invalid.json()["detail"][0]["msg"]
    missing = client.get(f"/documents/{quote('no/such.txt', safe='')}")
    assert missing.status_code == 404
    assert isinstance(missing.json()["detail"], str)


def test_the_page_has_a_labelled_query_box_a_mode_selector_and_an_empty_api_base(
    client: TestClient,
) -> None:
    response = client.get("/")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert response.headers["cache-control"] == "no-cache"
    page = parse(response.text)

    assert page.find("html")["lang"] == "en"
    assert re.search(r"<title>[^<]+</title>", response.text)
    assert page.find("meta", name="api-base")["content"] == ""
    assert page.find("input", id="q")["name"] == "q"
    assert page.labels["q"].strip()
    assert page.find("select", id="mode")["name"] == "mode"
    assert page.labels["mode"].strip()
    options = [attrs["value"] for tag, attrs in page.tags if tag == "option"]
    assert options == ["hybrid", "semantic", "keyword"]
    assert "selected" in page.find("option", value="hybrid")
    assert page.find("input", id="group")["value"] == "document"
    assert page.find("button", type="submit")
    assert page.find("p", id="status")["aria-live"] == "polite"
    assert page.find("link", rel="stylesheet")["href"].startswith("/static/search.css?v=")
    assert page.find("script")["src"].startswith("/static/search.js?v=")
    assert "{{" not in response.text


def test_under_a_proxy_prefix_every_url_of_the_page_carries_the_prefix(settings: Settings) -> None:
    client = TestClient(create_app(settings, HashingEmbedder), root_path="/search-api")
    response = client.get("/")
    assert response.status_code == 200
    page = parse(response.text)
    assert page.find("meta", name="api-base")["content"] == "/search-api"
    assert page.find("link", rel="stylesheet")["href"].startswith("/search-api/static/search.css")
    assert page.find("script")["src"].startswith("/search-api/static/search.js")
    assert page.find("a", id="api-docs")["href"] == "/search-api/docs"
    # The ASGI path includes the root path (uvicorn prepends it; TestClient does not).
    for url in (page.find("script")["src"], page.find("link", rel="stylesheet")["href"]):
        assert url is not None
        assert client.get(url).status_code == 200


def test_the_root_path_is_html_escaped(settings: Settings) -> None:
    client = TestClient(create_app(settings, HashingEmbedder), root_path='/x"><script>')
    html = client.get("/").text
    assert "<script>" not in html.replace("<script src=", "")
    assert parse(html).find("meta", name="api-base")["content"] == '/x"><script>'


def test_the_static_files_are_served_and_the_asset_version_follows_their_content(
    bare_client: TestClient,
) -> None:
    js = bare_client.get("/static/search.js")
    assert js.status_code == 200
    assert "javascript" in js.headers["content-type"]
    assert js.text == (STATIC_DIR / "search.js").read_text(encoding="utf-8")
    css = bare_client.get("/static/search.css")
    assert css.status_code == 200
    assert css.headers["content-type"].startswith("text/css")
    assert bare_client.get("/static/nothing.js").status_code == 404

    page = parse(bare_client.get("/").text)
    script, stylesheet = page.find("script")["src"], page.find("link", rel="stylesheet")["href"]
    assert script is not None
    assert stylesheet is not None
    assert bare_client.get(script).status_code == 200
    assert bare_client.get(stylesheet).status_code == 200
    assert script.split("?v=")[1] == stylesheet.split("?v=")[1]


def test_the_offline_docs_assets_are_still_served(bare_client: TestClient) -> None:
    assert bare_client.get("/docs").status_code == 200
    assert bare_client.get("/static-offline-docs/swagger-ui.css").status_code == 200


def test_the_page_loads_nothing_from_another_host(bare_client: TestClient) -> None:
    response = bare_client.get("/")
    csp = response.headers["content-security-policy"]
    assert "default-src 'none'" in csp
    assert "script-src 'self'" in csp
    for text in (
        response.text,
        bare_client.get("/static/search.css").text,
        bare_client.get("/static/search.js").text,
    ):
        assert not EXTERNAL_URL.search(text)
    # No inline script or style: the policy above would block them.
    assert not re.search(r"<script(?![^>]*\bsrc=)", response.text)
    assert "<style" not in response.text
    assert " style=" not in response.text


def test_the_script_uses_the_api_base_and_no_html_injection() -> None:
    script = (STATIC_DIR / "search.js").read_text(encoding="utf-8")
    assert 'meta[name="api-base"]' in script
    assert "${base}/search?" in script
    assert "${base}/documents/${encodeURIComponent(" in script
    assert not re.search(r"innerHTML|outerHTML|insertAdjacentHTML|document\.write", script)


def test_the_page_is_not_in_the_api_schema(bare_client: TestClient) -> None:
    paths = bare_client.get("/openapi.json").json()["paths"]
    assert "/" not in paths
    assert not any(path.startswith("/static") for path in paths)
