"""A big Milvus build imports its rows from files (``indexer/stores/milvus/bulk.py``) where the
server can read them, and inserts them where it cannot (Milvus Lite; a server on another
machine): either way the store is the one an inserted build makes."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from pymilvus import MilvusClient
from pymilvus.client.grpc_handler import GrpcHandler

import indexer.stores.milvus.bulk as milvus_bulk
from harness.milvus import MilvusServer
from indexer.build import BuildParams, new_manifest
from indexer.manifest import Manifest
from indexer.stores.base import StoreUnavailableError
from indexer.stores.milvus.client import MilvusTarget, collection_names
from indexer.stores.milvus.store import MilvusStore
from indexer.types import IndexedDocument
from tests.utils.corpus import DIM, corpus

DOCUMENTS = corpus(60)  # 119 passages
PASSAGES = sum(len(item.passages) for item in DOCUMENTS)
FIELDS = ["doc_id", "chunk_id", "start", "end", "seq", "title", "text", "metadata", "fields"]


def manifest() -> Manifest:
    return new_manifest("test/bulk", DIM, BuildParams(store="milvus", index_factory="FLAT"), "b")


@pytest.fixture
def small_files(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """Every build imports, in several files a collection; the files go under the returned
    directory (to see that none is left)."""
    monkeypatch.setattr(milvus_bulk, "BULK_ROWS", 1)
    monkeypatch.setattr(milvus_bulk, "FILE_ROWS", 40)
    monkeypatch.setattr(milvus_bulk, "GROUP_ROWS", 16)
    files = tmp_path / "files"
    files.mkdir()
    monkeypatch.setattr(milvus_bulk.tempfile, "tempdir", str(files))
    return files


@pytest.fixture
def targets(milvus_server: MilvusServer) -> Iterator[Callable[[], MilvusTarget]]:
    made: list[MilvusTarget] = []

    def new() -> MilvusTarget:
        made.append(MilvusTarget(uri=milvus_server.uri, collection=f"b{uuid.uuid4().hex[:12]}"))
        return made[-1]

    yield new
    for target in made:
        MilvusStore.drop(target)


def imports(monkeypatch: pytest.MonkeyPatch, rewrite: Callable[[int, str], str]) -> list[str]:
    """Record (and with ``rewrite``, change) each file the server is asked to import."""
    asked: list[str] = []
    original = GrpcHandler.do_bulk_insert

    def do_bulk_insert(
        self: GrpcHandler, collection: str, partition: str, files: list[str], **kwargs: Any
    ) -> int:
        asked.append(files[0])
        return original(self, collection, partition, [rewrite(len(asked), files[0])], **kwargs)

    monkeypatch.setattr(GrpcHandler, "do_bulk_insert", do_bulk_insert)
    return asked


def rows(target: MilvusTarget) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Every passage row (with its vector) and every document row, without Milvus's keys."""
    passages, documents, _ = collection_names(target)
    client = MilvusClient(uri=target.uri)
    try:
        found = []
        for name, fields, key in (
            (passages, [*FIELDS, "vector"], ("doc_id", "chunk_id")),
            (
                documents,
                ["doc_id", "seq", "part", "parts", "title", "text", "metadata"],
                ("doc_id", "part"),
            ),
        ):
            got = client.query(
                name,
                filter="seq >= 0",
                output_fields=fields,
                consistency_level="Strong",
                limit=16_384,
            )
            for row in got:
                row.pop("pk")
                if "vector" in row:
                    row["vector"] = [float(x) for x in row["vector"]]
            found.append(sorted(got, key=lambda row: tuple(row[k] for k in key)))
        return found[0], found[1]
    finally:
        client.close()


def top10(store: MilvusStore) -> list[list[tuple[str, int, int, int, float]]]:
    """Ten queries' top 10: passage, offsets and score."""
    reader = store.reader()
    queries = np.random.default_rng(7).normal(size=(10, DIM)).astype(np.float32)
    found = []
    for query in queries:
        scores, ids = reader.vector_search(query / np.linalg.norm(query), 10)
        hits = [reader.passage(int(i)) for i in ids]
        found.append(
            [
                (p.doc_id, p.chunk_id, p.start, p.end, round(float(s), 5))
                for p, s in zip(hits, scores, strict=True)
            ]
        )
    return found


def build(target: MilvusTarget, documents: list[IndexedDocument] = DOCUMENTS) -> MilvusStore:
    return MilvusStore.create(target, manifest(), documents)


@pytest.mark.milvus
def test_an_imported_build_is_the_inserted_one(
    targets: Callable[[], MilvusTarget], small_files: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    inserted_target = targets()
    with monkeypatch.context() as inserting:
        inserting.setattr(milvus_bulk, "BULK_ROWS", PASSAGES + 1)
        inserted = build(inserted_target)
    asked = imports(monkeypatch, lambda _, path: path)
    imported_target = targets()
    imported = build(imported_target)
    try:
        # 119 passages in files of 40-odd rows (3), 60 document rows in 2.
        assert len(asked) == 5, asked
        assert all(Path(path).parent.parent == small_files for path in asked)
        assert list(small_files.iterdir()) == []  # every file deleted
        assert imported.manifest.counts == inserted.manifest.counts
        assert imported.manifest.counts is not None
        assert imported.manifest.counts.passages == PASSAGES
        assert rows(imported_target) == rows(inserted_target)
        assert len(rows(imported_target)[0]) == PASSAGES
        for item in DOCUMENTS[:5]:
            stored = imported.get(item.document.doc_id)
            assert stored is not None
            assert stored == inserted.get(item.document.doc_id)
            assert stored.document.text == item.document.text
        assert imported.reader().document_count == len(DOCUMENTS)
        assert top10(imported) == top10(inserted)
    finally:
        inserted.close()
        imported.close()


@pytest.mark.milvus
def test_a_server_that_cannot_read_the_files_gets_inserts(
    targets: Callable[[], MilvusTarget],
    small_files: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """As a server on another machine: the first file is not where the server looks."""
    asked = imports(monkeypatch, lambda _, path: f"/elsewhere{path}")
    target = targets()
    with caplog.at_level(logging.WARNING, logger="indexer"):
        store = build(target)
    try:
        assert len(asked) == 1  # tried once
        said = [r.getMessage() for r in caplog.records if "cannot import" in r.getMessage()]
        assert len(said) == 1, said
        assert "/elsewhere" in said[0]
        assert list(small_files.iterdir()) == []
        passages, documents = rows(target)
        assert len(passages) == PASSAGES  # each once: nothing imported, all inserted
        assert len({(r["doc_id"], r["chunk_id"]) for r in passages}) == PASSAGES
        assert len(documents) == len(DOCUMENTS)
    finally:
        store.close()


@pytest.mark.milvus
def test_a_failure_after_the_first_file_is_the_stores_error(
    targets: Callable[[], MilvusTarget], small_files: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Rows are in by then: inserting the rest would not make a whole store."""
    imports(monkeypatch, lambda number, path: path if number == 1 else f"/elsewhere{path}")
    target = targets()
    with pytest.raises(StoreUnavailableError, match=r"half-built: build it again with --force"):
        build(target)
    assert list(small_files.iterdir()) == []
    assert not MilvusStore.exists(target)


@pytest.mark.milvus
def test_an_import_that_outlasts_its_deadline_is_the_stores_error(
    targets: Callable[[], MilvusTarget], small_files: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Not a fallback: the task may still finish, and inserts as well would double rows."""
    monkeypatch.setattr(milvus_bulk, "IMPORT_SECONDS", 0.0)
    target = targets()
    with pytest.raises(StoreUnavailableError, match=r"did not import .* in 0 s"):
        build(target)
    assert list(small_files.iterdir()) == []


@pytest.mark.lite
def test_milvus_lite_inserts(
    tmp_path: Path,
    small_files: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    asked = imports(monkeypatch, lambda _, path: path)
    target = MilvusTarget(uri=str(tmp_path / "milvus.db"), collection="lite")
    with caplog.at_level(logging.INFO, logger="indexer"):
        store = build(target)
    try:
        assert asked == []
        assert any("no bulk import" in r.getMessage() for r in caplog.records)
        assert store.reader().passage_count == PASSAGES
        assert store.reader().document_count == len(DOCUMENTS)
    finally:
        store.close()
