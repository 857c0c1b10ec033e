"""Reindexing a live store: new chunking and a new model, writes and deletes made during the
rebuild kept (prepared again, never with their old-model vectors), a restart after the switch,
and a damaged version refused while the old one serves on."""

from __future__ import annotations

import logging
import shutil
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest

from indexer.build import BuildParams, build_index
from indexer.ingest import Preparer, passage_representation
from indexer.loading import Corpus
from indexer.reindex import ReindexChanges, ReindexTracker, reindex
from indexer.stores.base import Rebuild, ReindexError, StaleWriteError
from indexer.stores.faiss.layout import current_version
from indexer.stores.faiss.state import VersionError, verify_version
from indexer.stores.faiss.store import FaissStore
from indexer.stores.faiss.vectors import VECTORS_FILE
from indexer.types import Document, IndexedDocument
from tests.utils.durability import content
from tests.utils.fakes import HashingEmbedder


class OtherEmbedder(HashingEmbedder):
    """Another "model": the same dimension, different vectors for the same text."""

    model_name = "test/other-64"

    def __init__(self) -> None:
        super().__init__(self.model_name)

    def encode(self, texts: list[str], *, batch_size: int = 64, progress: bool = False):  # type: ignore[no-untyped-def]
        return np.roll(super().encode(texts), 7, axis=1)


def docs(ids: Sequence[int], version: int = 1) -> list[Document]:
    return [Document(f"doc-{i:03d}", **content(f"doc-{i:03d}", version)) for i in ids]  # type: ignore[arg-type]


@pytest.fixture
def store(tmp_path: Path) -> FaissStore:
    build_index(
        Corpus(docs(range(30))),
        tmp_path / "index",
        HashingEmbedder(),
        BuildParams(),
        source_label="t",
    )
    opened = FaissStore.open(tmp_path / "index", refresh_interval=0.05)
    yield opened  # type: ignore[misc]
    opened.close()


def old_prepared(store: FaissStore, documents: list[Document]) -> list[IndexedDocument]:
    manifest = store.manifest
    return Preparer(HashingEmbedder(), manifest.chunking, manifest.title_prefix).prepare(documents)


def assert_embedded_by(store: FaissStore, embedder: HashingEmbedder) -> None:
    """Every live passage's vector is ``embedder``'s, of its representation under the
    index's current chunking and title prefix (no vector of another model survives)."""
    view = store.reader()
    numbers, _ = view.live_numbers()
    assert len(numbers) == view.document_count
    for number in numbers.tolist():
        first, count = (int(x) for x in view.document_rows[number])
        document = view.documents_by_number[number]
        passages = view.passages_by_row[first : first + count]
        texts = [
            passage_representation(p, document.title, view.manifest.title_prefix) for p in passages
        ]
        got = view.vectors.vectors(np.arange(first, first + count, dtype=np.int64))
        np.testing.assert_allclose(got, embedder.encode(texts), atol=1e-5)
        assert all(p.end - p.start > 0 for p in passages)


def held(store: FaissStore) -> dict[str, str]:
    view = store.reader()
    return {s.document.doc_id: s.document.title for s in view.documents(0, view.document_count)}


def test_a_reindex_rechunks_and_reembeds_every_document(store: FaissStore) -> None:
    before, old_build, old_passages = (
        held(store),
        store.manifest.build_id,
        store.reader().passage_count,
    )
    tracker = ReindexTracker()
    assert tracker.start(old_build)
    manifest = reindex(
        store, OtherEmbedder(), ReindexChanges(chunk_max_tokens=16), progress=tracker.progress
    )
    assert manifest.model.name == OtherEmbedder.model_name
    assert manifest.chunking.max_tokens == 16
    assert manifest.build_id not in ("", old_build)
    assert store.manifest == manifest
    assert store.epoch == 1
    assert held(store) == before
    assert store.reader().passage_count > old_passages  # smaller windows, more passages
    assert_embedded_by(store, OtherEmbedder())
    assert tracker.status.phase == "switching"
    assert tracker.status.done == tracker.status.total
    verify_version(current_version(store.root), manifest.model)


def test_writes_and_deletes_during_the_rebuild_are_prepared_again(store: FaissStore) -> None:
    """Writes during the rebuild are embedded by the old model (the store serves it); the
    reindex prepares them again from their documents, both outside and inside the lock."""
    target = ReindexChanges(chunk_max_tokens=16).apply(store.manifest, OtherEmbedder())
    other = Preparer(OtherEmbedder(), target.chunking, target.title_prefix)
    calls = 0

    def prepare(documents: Sequence[Document]) -> list[IndexedDocument]:
        nonlocal calls
        calls += 1
        if calls == 1:  # during the rebuild: more writes than are caught up under the lock
            store.put(old_prepared(store, docs(range(100, 120))))
            store.put(old_prepared(store, docs([3, 4], version=2)))  # replaced
            store.delete(["doc-005", "doc-101", "missing"])
        return other.prepare(documents)

    store.reindex(Rebuild(target, prepare))
    contents = held(store)
    assert "doc-005" not in contents
    assert "doc-101" not in contents
    assert "doc-100" in contents
    assert "doc-119" in contents
    assert contents["doc-003"].endswith(" 2")
    assert contents["doc-006"].endswith(" 1")
    assert store.reader().document_count == 30 - 1 + 20 - 1
    assert_embedded_by(store, OtherEmbedder())
    assert store.manifest.seq == store.seq


def test_a_restart_after_the_switch_serves_the_same_content_and_no_old_vector(
    store: FaissStore, tmp_path: Path
) -> None:
    def prepare_and_write(documents: Sequence[Document]) -> list[IndexedDocument]:
        if not writes_done:
            writes_done.append(True)
            store.put(old_prepared(store, docs([200, 201])))
            store.delete(["doc-002"])
        return new.prepare(documents)

    writes_done: list[bool] = []
    target = ReindexChanges(chunk_max_tokens=24).apply(store.manifest, OtherEmbedder())
    new = Preparer(OtherEmbedder(), target.chunking, target.title_prefix)
    store.reindex(Rebuild(target, prepare_and_write))
    # After the switch, a write prepared the new way goes on the translog after the version.
    store.put(new.prepare(docs([300])), epoch=store.epoch)
    with pytest.raises(StaleWriteError):  # prepared before the switch: must be prepared again
        store.put(old_prepared(store, docs([301])), epoch=0)
    store.refresh()
    contents, seq = held(store), store.seq
    assert "doc-300" in contents
    assert "doc-200" in contents
    assert "doc-002" not in contents
    store.close()
    # The translog still holds the old-model records of the writes made during the rebuild
    # (in generations after the one trimmed) or none; either way replay must skip them.
    reopened = FaissStore.open(store.root)
    try:
        assert held(reopened) == contents
        assert reopened.seq == seq
        assert reopened.manifest.model.name == OtherEmbedder.model_name
        assert_embedded_by(reopened, OtherEmbedder())
    finally:
        reopened.close()


def test_a_damaged_version_is_refused_and_the_old_one_serves_on(
    store: FaissStore, caplog: pytest.LogCaptureFixture
) -> None:
    before_current, before_manifest = current_version(store.root), store.manifest
    damaged: list[Path] = []

    def damage(version: Path) -> None:
        damaged.append(version)
        vectors = version / VECTORS_FILE
        data = bytearray(vectors.read_bytes())
        data[len(data) // 2] ^= 0xFF
        vectors.write_bytes(bytes(data))

    def prepare(documents: Sequence[Document]) -> list[IndexedDocument]:
        if not damaged and documents[0].doc_id == "doc-000":
            store.put(old_prepared(store, docs([400])))
        return Preparer(OtherEmbedder(), before_manifest.chunking, True).prepare(documents)

    target = ReindexChanges().apply(store.manifest, OtherEmbedder())
    with (
        caplog.at_level(logging.ERROR, logger="indexer"),
        pytest.raises(ReindexError, match="checksum"),
    ):
        store.reindex(Rebuild(target, prepare), before_switch=damage)
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1
    assert "old one serves on" in errors[0].getMessage()
    assert "\n" not in errors[0].getMessage()
    assert current_version(store.root) == before_current
    assert not damaged[0].exists()
    assert store.manifest == before_manifest
    assert store.epoch == 0
    store.refresh()
    assert "doc-400" in held(store)  # the write made meanwhile is served by the old version
    assert_embedded_by(store, HashingEmbedder())
    store.put(old_prepared(store, docs([401])), epoch=0)  # writes go on as before
    assert store.start_merge() is not None  # and the next merge may run


def test_verify_version_refuses_a_damaged_incomplete_or_other_model_version(tmp_path: Path) -> None:
    build_index(
        Corpus(docs(range(5))),
        tmp_path / "index",
        HashingEmbedder(),
        BuildParams(),
        source_label="t",
    )
    version = current_version(tmp_path / "index")
    manifest = verify_version(version)
    with pytest.raises(VersionError, match="not of 'test/other-64'"):
        verify_version(version, manifest.model.model_copy(update={"name": "test/other-64"}))
    with pytest.raises(VersionError, match="64 dimensions"):
        verify_version(version, manifest.model.model_copy(update={"dimension": 32}))
    copy = tmp_path / "copy"
    shutil.copytree(version, copy)
    (copy / VECTORS_FILE).unlink()
    with pytest.raises(VersionError, match="incomplete"):
        verify_version(copy)
    (copy / VECTORS_FILE).write_bytes(b"")
    with pytest.raises(VersionError, match="does not match its checksum"):
        verify_version(copy)
