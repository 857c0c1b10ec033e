"""Milvus for store-level tests: the two a test runs on (Milvus Lite, and the session's real
server) and a small store made on one of them and dropped after."""

from __future__ import annotations

import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import pytest

from indexer.build import BuildParams, new_manifest
from indexer.stores.milvus.client import MilvusTarget
from indexer.stores.milvus.store import MilvusStore
from indexer.types import IndexedDocument

LITE_AND_SERVER = (
    pytest.param("lite", marks=pytest.mark.lite),
    pytest.param("server", marks=pytest.mark.milvus),
)
"""Parameters of a fixture or test that runs on both: ``milvus_uri`` turns one into a URI."""


def milvus_uri(where: str, request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """``"server"``: the session's server (``milvus_server``); ``"lite"``: a Lite file in
    ``tmp_path``."""
    if where == "server":
        return str(request.getfixturevalue("milvus_server").uri)
    return str(tmp_path / "milvus.db")


@contextmanager
def small_store(
    uri: str, name: str, dimension: int, documents: Sequence[IndexedDocument]
) -> Iterator[MilvusTarget]:
    """A store of ``documents`` in a fresh collection ``name<random>`` at ``uri``, built as
    by ``test/<name>`` of ``dimension``; dropped on leaving."""
    target = MilvusTarget(uri=uri, collection=f"{name}{uuid.uuid4().hex[:12]}")
    params = BuildParams(store="milvus", index_factory="FLAT")  # exact: a handful of rows
    manifest = new_manifest(f"test/{name}", dimension, params, name)
    MilvusStore.create(target, manifest, documents).close()
    try:
        yield target
    finally:
        MilvusStore.drop(target)
