"""The service in-process with the real model (see the session fixtures in tests/conftest.py)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from app.main import create_app
from app.settings import Settings
from indexer.embedding import DEFAULT_MODEL, SentenceTransformerEmbedder
from tests.utils.api import wait_until_ready


@pytest.fixture(scope="session")
def real_client(
    real_index_dir: Path, real_embedder: SentenceTransformerEmbedder
) -> Iterator[TestClient]:
    settings = Settings(index_dir=real_index_dir, model=DEFAULT_MODEL)
    with TestClient(create_app(settings, lambda name: real_embedder)) as client:
        wait_until_ready(client)
        yield client
