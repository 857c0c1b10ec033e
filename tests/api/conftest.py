from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from app.main import create_app
from app.settings import Settings
from tests.fakes import HashingEmbedder


def wait_until_ready(client: TestClient, seconds: float = 60.0) -> None:
    deadline = time.monotonic() + seconds
    while client.get("/ready").status_code != 200:
        assert time.monotonic() < deadline, "the service never became ready"
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
