"""Talking to the service through HTTP in tests: waiting for it, the keys, a document body."""

from __future__ import annotations

import time
from typing import Any

import httpx
from fastapi.testclient import TestClient

API_KEY = "test-write-key"
READ_KEY = "test-read-key"
WRITE_HEADERS = {"Authorization": f"Bearer {API_KEY}"}


def wait_until_ready(client: TestClient, seconds: float = 60.0) -> None:
    deadline = time.monotonic() + seconds
    while client.get("/ready").status_code != 200:
        assert time.monotonic() < deadline, "the service never became ready"
        time.sleep(0.02)


def finished_reindex(
    client: TestClient | httpx.Client,
    seconds: float = 30.0,
    headers: dict[str, str] | None = None,
) -> dict[str, Any]:
    """The status of the reindex ``client``'s service runs, once it is done or failed."""
    deadline = time.monotonic() + seconds
    while True:
        body: dict[str, Any] = client.get("/admin/reindex", headers=headers).json()
        if body["state"] in ("done", "failed"):
            return body
        assert time.monotonic() < deadline, body
        time.sleep(0.02)


def article(title: str, text: str, **metadata: object) -> dict[str, object]:
    return {"title": title, "text": text, "metadata": metadata}


def found(
    client: TestClient,
    query: str,
    mode: str = "hybrid",
    *,
    headers: dict[str, str] | None = None,
    **params: object,
) -> list[str]:
    """The doc ids a search returns, in order."""
    response = client.get(
        "/search", params={"q": query, "k": 100, "mode": mode, **params}, headers=headers
    )
    assert response.status_code == 200, response.text
    return [r["doc_id"] for r in response.json()["results"]]
