"""Request ids and JSON logs (SEARCH_LOG_FORMAT=json)."""

from __future__ import annotations

import io
import json
import logging
import time
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from app.logs import add_context_filters, json_formatter
from app.main import create_app
from app.settings import Settings
from tests.utils.api import wait_until_ready
from tests.utils.fakes import HashingEmbedder

pytestmark = pytest.mark.api


@pytest.fixture
def json_client(settings: Settings) -> Iterator[TestClient]:
    app = create_app(settings.model_copy(update={"log_format": "json"}), HashingEmbedder)

    @app.get("/boom", include_in_schema=False)
    def boom() -> None:
        raise RuntimeError("secret internals /etc/passwd")

    with TestClient(app, raise_server_exceptions=False) as client:
        wait_until_ready(client)
        yield client


def _parsed(handler_stream: io.StringIO) -> list[dict[str, object]]:
    return [json.loads(line) for line in handler_stream.getvalue().splitlines()]


@pytest.fixture
def captured() -> Iterator[io.StringIO]:
    stream = io.StringIO()
    handler = add_context_filters(logging.StreamHandler(stream))
    handler.setFormatter(json_formatter())
    logger = logging.getLogger("app")
    level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    yield stream
    logger.removeHandler(handler)
    logger.setLevel(level)


def test_a_client_request_id_is_echoed(client: TestClient) -> None:
    response = client.get("/search", params={"q": "war"}, headers={"X-Request-ID": "abc-123.x"})
    assert response.headers["X-Request-ID"] == "abc-123.x"


def test_a_request_without_an_id_gets_one(client: TestClient) -> None:
    generated = client.get("/health").headers["X-Request-ID"]
    assert len(generated) == 32
    assert generated != client.get("/health").headers["X-Request-ID"]


@pytest.mark.parametrize(
    "bad", ["x" * 10_000, "line\nbreak", "tab\there", "bell\x07", 'quote"brace{}', "spa ce"]
)
def test_an_unsafe_request_id_is_replaced(client: TestClient, bad: str) -> None:
    response = client.get("/health", headers={"X-Request-ID": bad})
    echoed = response.headers["X-Request-ID"]
    assert echoed != bad
    assert len(echoed) == 32
    assert echoed.isalnum()


def test_json_mode_logs_one_line_per_request(
    json_client: TestClient, captured: io.StringIO
) -> None:
    started = time.perf_counter()
    response = json_client.get("/search", params={"q": "war"}, headers={"X-Request-ID": "req-1"})
    elapsed_ms = (time.perf_counter() - started) * 1000
    assert response.status_code == 200
    lines = [line for line in _parsed(captured) if line["logger"] == "app.access"]
    assert len(lines) == 1
    line = lines[0]
    assert line["method"] == "GET"
    assert line["path"] == "/search"
    assert line["status"] == 200
    assert isinstance(line["duration_ms"], float)
    assert 0 < line["duration_ms"] <= elapsed_ms
    assert line["request_id"] == "req-1"
    assert line["client"] == "testclient:50000"
    assert line["level"] == "INFO"
    assert "time" in line


def test_an_unhandled_error_is_logged_with_the_request_id_and_hidden_from_the_client(
    json_client: TestClient, captured: io.StringIO
) -> None:
    response = json_client.get("/boom", headers={"X-Request-ID": "req-boom"})
    assert response.status_code == 500
    assert response.json() == {"detail": "internal error; the server log has the details"}
    assert "Traceback" not in response.text
    assert "secret" not in response.text
    assert response.headers["X-Request-ID"] == "req-boom"
    lines = _parsed(captured)
    errors = [line for line in lines if line["level"] == "ERROR"]
    assert len(errors) == 1
    assert errors[0]["request_id"] == "req-boom"
    assert "secret internals" in str(errors[0]["exc_info"])  # the traceback stays in the log
    access = [line for line in lines if line["logger"] == "app.access"]
    assert [(a["status"], a["request_id"]) for a in access] == [(500, "req-boom")]


def test_text_mode_has_no_request_lines(client: TestClient, captured: io.StringIO) -> None:
    client.get("/health")
    assert not [line for line in _parsed(captured) if line["logger"] == "app.access"]
