"""The real model on the real seeds: loaded once per test session (a few seconds)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from app.main import create_app
from app.settings import Settings
from indexer.embedding import DEFAULT_MODEL, SentenceTransformerEmbedder
from indexer.index import BuildParams, build_index
from indexer.loading import load_corpus
from tests.api.conftest import wait_until_ready
from tests.conftest import SEEDS


@pytest.fixture(scope="session")
def real_embedder() -> SentenceTransformerEmbedder:
    return SentenceTransformerEmbedder(DEFAULT_MODEL)


@pytest.fixture(scope="session")
def real_index_dir(
    tmp_path_factory: pytest.TempPathFactory, real_embedder: SentenceTransformerEmbedder
) -> Path:
    out = tmp_path_factory.mktemp("real") / "index"
    build_index(load_corpus(SEEDS), out, real_embedder, BuildParams(), source_label=str(SEEDS))
    return out


@pytest.fixture(scope="session")
def real_client(
    real_index_dir: Path, real_embedder: SentenceTransformerEmbedder
) -> Iterator[TestClient]:
    settings = Settings(index_dir=real_index_dir, model=DEFAULT_MODEL)
    with TestClient(create_app(settings, lambda name: real_embedder)) as client:
        wait_until_ready(client)
        yield client
