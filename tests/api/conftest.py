"""The app in-process (``create_app``) with the fake model, through httpx."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr

from app.main import create_app
from app.settings import Settings
from tests.utils.api import API_KEY, WRITE_HEADERS, wait_until_ready
from tests.utils.fakes import HashingEmbedder


@pytest.fixture
def settings(seed_index_dir: Path) -> Settings:
    return Settings(index_dir=seed_index_dir, model=HashingEmbedder.model_name, max_body_bytes=4096)


@pytest.fixture
def client(settings: Settings) -> Iterator[TestClient]:
    """The app as created for production, with the fake model, after startup finished."""
    with TestClient(create_app(settings, HashingEmbedder), raise_server_exceptions=False) as client:
        wait_until_ready(client)
        yield client


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
