"""API keys: writes need the write key, reads the read key when one is set; probes stay open."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr

from app.main import create_app
from app.service import WRITES_DISABLED
from app.settings import Settings
from tests.utils.api import API_KEY, READ_KEY, article, wait_until_ready
from tests.utils.fakes import HashingEmbedder
from tests.utils.seeds import RUSSIA_DOC

DOCUMENT = article("Keys", "A document about keys.")
WRITES = [
    ("PUT", "/documents/k.txt", DOCUMENT),
    ("POST", "/documents", {"documents": [{"doc_id": "k.txt", **DOCUMENT}]}),
    ("DELETE", f"/documents/{RUSSIA_DOC}", None),
]
READS = [
    ("GET", "/search?q=troops", None),
    ("POST", "/search", {"query": "troops"}),
    ("POST", "/search/batch", {"searches": [{"query": "troops"}]}),
    ("GET", "/documents", None),
    ("GET", f"/documents/{RUSSIA_DOC}", None),
    ("GET", "/info", None),
]
OPEN = ["/health", "/ready", "/metrics", "/docs", "/openapi.json", "/"]


def client_with(settings: Settings, **keys: str) -> TestClient:
    update = {name: SecretStr(value) for name, value in keys.items()}
    return TestClient(create_app(settings.model_copy(update=update), HashingEmbedder))


@pytest.fixture
def keyed(settings: Settings) -> Iterator[TestClient]:
    with client_with(settings, api_key=API_KEY) as client:
        wait_until_ready(client)
        yield client


@pytest.fixture
def read_keyed(settings: Settings) -> Iterator[TestClient]:
    with client_with(settings, api_key=API_KEY, read_api_key=READ_KEY) as client:
        wait_until_ready(client)
        yield client


def send(
    client: TestClient, method: str, url: str, body: object, headers: dict[str, str] | None = None
) -> int:
    return client.request(method, url, json=body, headers=headers or {}).status_code


def written(client: TestClient, method: str) -> bool:
    """Whether the write ``method`` of WRITES took effect: k.txt is there (PUT, POST), the
    Russia article gone (DELETE). Read back with the write key, which also reads."""
    headers = {"X-API-Key": API_KEY}
    if method == "DELETE":
        return client.get(f"/documents/{RUSSIA_DOC}", headers=headers).status_code == 404
    found = client.get("/documents/k.txt", headers=headers)
    return found.status_code == 200 and found.json()["title"] == DOCUMENT["title"]


@pytest.mark.parametrize(("method", "url", "body"), WRITES)
def test_without_a_configured_key_writes_are_disabled_and_say_how_to_enable_them(
    client: TestClient, method: str, url: str, body: object
) -> None:
    response = client.request(method, url, json=body, headers={"X-API-Key": "anything"})
    assert response.status_code == 403
    assert response.json() == {"detail": "writes are disabled: " + WRITES_DISABLED}
    assert client.get(f"/documents/{RUSSIA_DOC}").status_code == 200  # nothing was deleted
    assert client.get("/documents/k.txt").status_code == 404  # nor written


@pytest.mark.parametrize(("method", "url", "body"), WRITES)
def test_writes_need_the_key_in_either_header(
    keyed: TestClient, method: str, url: str, body: object
) -> None:
    missing = keyed.request(method, url, json=body)
    assert missing.status_code == 401
    assert missing.headers["www-authenticate"] == "Bearer"
    assert "need an API key" in missing.json()["detail"]
    assert send(keyed, method, url, body, {"Authorization": "Bearer wrong"}) == 403
    assert send(keyed, method, url, body, {"X-API-Key": "wrong"}) == 403
    # Not the Bearer scheme: a wrong key, not a missing one.
    assert send(keyed, method, url, body, {"Authorization": f"Basic {API_KEY}"}) == 403
    # Credentials that disagree are refused, even when one of them is right.
    both = {"Authorization": "Bearer wrong", "X-API-Key": API_KEY}
    assert send(keyed, method, url, body, both) == 403
    assert not written(keyed, method)  # every refused attempt left the index as it was
    assert send(keyed, method, url, body, {"Authorization": f"Bearer {API_KEY}"}) in (200, 201, 204)
    assert written(keyed, method)


def test_the_x_api_key_header_works_for_writes(keyed: TestClient) -> None:
    response = keyed.put("/documents/k.txt", json=DOCUMENT, headers={"X-API-Key": API_KEY})
    assert response.status_code == 201
    assert written(keyed, "PUT")


@pytest.mark.parametrize(("method", "url", "body"), READS)
def test_reads_are_open_without_a_read_key(
    keyed: TestClient, method: str, url: str, body: object
) -> None:
    assert send(keyed, method, url, body) == 200


@pytest.mark.parametrize(("method", "url", "body"), READS)
def test_a_read_key_guards_searches_and_documents(
    read_keyed: TestClient, method: str, url: str, body: object
) -> None:
    assert send(read_keyed, method, url, body) == 401
    assert send(read_keyed, method, url, body, {"X-API-Key": "wrong"}) == 403
    assert send(read_keyed, method, url, body, {"X-API-Key": READ_KEY}) == 200
    assert send(read_keyed, method, url, body, {"Authorization": f"Bearer {READ_KEY}"}) == 200
    assert send(read_keyed, method, url, body, {"Authorization": f"Bearer {API_KEY}"}) == 200


def test_the_read_key_cannot_write(read_keyed: TestClient) -> None:
    assert send(read_keyed, "PUT", "/documents/k.txt", DOCUMENT, {"X-API-Key": READ_KEY}) == 403
    assert not written(read_keyed, "PUT")


@pytest.mark.parametrize("path", OPEN)
def test_probes_metrics_docs_and_the_page_stay_open(read_keyed: TestClient, path: str) -> None:
    assert read_keyed.get(path).status_code == 200


def test_openapi_declares_both_schemes_so_swagger_can_authorize(read_keyed: TestClient) -> None:
    spec = read_keyed.get("/openapi.json").json()
    assert spec["components"]["securitySchemes"] == {
        "bearer": {
            "type": "http",
            "scheme": "bearer",
            "description": "`Authorization: Bearer <key>`: SEARCH_API_KEY, SEARCH_READ_API_KEY "
            "for reads, or a key of SEARCH_API_KEYS_FILE.",
        },
        "apiKey": {
            "type": "apiKey",
            "in": "header",
            "name": "X-API-Key",
            "description": "`X-API-Key: <key>`, the same keys as the bearer scheme.",
        },
    }
    either = [{"bearer": []}, {"apiKey": []}]
    assert spec["paths"]["/documents/{doc_id}"]["put"]["security"] == either
    assert spec["paths"]["/search"]["get"]["security"] == either
    assert "security" not in spec["paths"]["/health"]["get"]
    assert set(spec["paths"]["/documents/{doc_id}"]["put"]["responses"]) >= {
        "200",
        "201",
        "401",
        "403",
        "422",
        "503",
        "507",
    }
