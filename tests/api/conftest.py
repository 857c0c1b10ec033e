from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr

from app.main import create_app
from app.settings import Settings
from tests.utils.fakes import HashingEmbedder


def wait_until_ready(client: TestClient, seconds: float = 60.0) -> None:
    deadline = time.monotonic() + seconds
    while client.get("/ready").status_code != 200:
        assert time.monotonic() < deadline, "the service never became ready"
        time.sleep(0.02)


def finished_reindex(client: TestClient, seconds: float = 30.0) -> dict[str, Any]:
    """The status of the reindex ``client``'s service runs, once it is done or failed."""
    deadline = time.monotonic() + seconds
    while True:
        body: dict[str, Any] = client.get("/admin/reindex").json()
        if body["state"] in ("done", "failed"):
            return body
        assert time.monotonic() < deadline, body
        time.sleep(0.02)


@pytest.fixture
def settings(seed_index_dir: Path) -> Settings:
    return Settings(index_dir=seed_index_dir, model=HashingEmbedder.model_name, max_body_bytes=4096)


@pytest.fixture
def client(settings: Settings) -> Iterator[TestClient]:
    """The app as created for production, with the fake model, after startup finished."""
    with TestClient(create_app(settings, HashingEmbedder), raise_server_exceptions=False) as client:
        wait_until_ready(client)
        yield client


API_KEY = "test-write-key"
READ_KEY = "test-read-key"
WRITE_HEADERS = {"Authorization": f"Bearer {API_KEY}"}


@pytest.fixture
def live_settings(settings: Settings) -> Settings:
    """Writes enabled (a key), and a short refresh so that visibility tests run quickly."""
    return settings.model_copy(
        update={"api_key": SecretStr(API_KEY), "refresh_interval": 0.2, "max_body_bytes": 65_536}
    )


@pytest.fixture
def live_client(live_settings: Settings) -> Iterator[TestClient]:
    app = create_app(live_settings, HashingEmbedder)
    with TestClient(app, raise_server_exceptions=False, headers=WRITE_HEADERS) as client:
        wait_until_ready(client)
        yield client


def article(title: str, text: str, **metadata: object) -> dict[str, object]:
    return {"title": title, "text": text, "metadata": metadata}


def found(client: TestClient, query: str, mode: str = "hybrid", **params: object) -> list[str]:
    """The doc ids a search returns, in order."""
    response = client.get("/search", params={"q": query, "k": 100, "mode": mode, **params})
    assert response.status_code == 200, response.text
    return [r["doc_id"] for r in response.json()["results"]]
