"""The Milvus store's group commit and its memory of its own writes, on Milvus Lite and on a
real server: concurrent puts share one round, and two stores on one collection (replicas) each
see the other's writes."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

import indexer.stores.milvus.schema as milvus_schema
from indexer.index import BuildParams, new_manifest
from indexer.stores.base import Written
from indexer.stores.milvus.client import MilvusTarget
from indexer.stores.milvus.store import MilvusStore
from indexer.types import Document, IndexedDocument, Passage

DIM = 4


def item(doc_id: str, text: str = "some text") -> IndexedDocument:
    vector = np.random.default_rng(abs(hash((doc_id, text))) % 2**32).normal(size=(1, DIM))
    return IndexedDocument(
        Document(doc_id, doc_id.title(), text),
        (Passage(doc_id, 0, 0, len(text), text),),
        (vector / np.linalg.norm(vector)).astype(np.float32),
    )


@pytest.fixture(params=["lite", pytest.param("server", marks=pytest.mark.milvus)])
def target(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[MilvusTarget]:
    if request.param == "server":
        uri = request.getfixturevalue("milvus_server").uri
    else:
        uri = str(tmp_path / "milvus.db")
    found = MilvusTarget(uri=uri, collection=f"w{uuid.uuid4().hex[:12]}")
    manifest = new_manifest(
        "test/writes", DIM, BuildParams(store="milvus", index_factory="FLAT"), "w"
    )
    MilvusStore.create(found, manifest, [item("old-1"), item("old-2")]).close()
    yield found
    MilvusStore.drop(found)


def test_concurrent_puts_in_one_group_each_get_their_own_outcome(target: MilvusTarget) -> None:
    store = MilvusStore.open(target)
    try:
        puts = [[item("old-1")], [item("new-1"), item("new-2")], [item("new-1", "again")], []]
        results: dict[int, Written] = {}
        # Hold the write lock so that every put queues, then let them go as one group.
        with store._write_lock:
            threads = [
                threading.Thread(target=lambda n=n, p=p: results.__setitem__(n, store.put(p)))
                for n, p in enumerate(puts)
            ]
            for queued, thread in enumerate(threads, start=1):
                thread.start()
                while len(store._queue) < queued:  # in this order
                    time.sleep(0.001)
        for thread in threads:
            thread.join(30)
        assert results[0] == Written(1, (True,))
        assert results[1] == Written(3, (False, False))
        assert results[2] == Written(4, (True,))  # new-1, written earlier in the same group
        assert results[3].existed == ()
        assert store.seq == 4
        new_1 = store.get("new-1")
        assert new_1 is not None
        assert new_1.document.text == "again"
        store.refresh()
        reader = store.reader()
        assert reader.document_count == 4  # old-1, old-2, new-1, new-2: one copy each
        assert reader.passage_count == 4
    finally:
        store.close()


def test_each_replica_sees_the_others_writes(target: MilvusTarget) -> None:
    a, b = MilvusStore.open(target), MilvusStore.open(target)
    try:
        assert a.put([item("shared")]).existed == (False,)
        time.sleep(0.5)  # another replica's write counts once Milvus has applied it
        assert b.put([item("shared", "from b")]).existed == (True,)  # A's write: replaced
        time.sleep(0.5)
        assert a.put([item("shared", "from a")]).existed == (True,)  # A remembers its own
        time.sleep(0.5)
        # B wrote "shared" a moment ago too: A's replacement must have removed B's rows.
        deleted = b.delete(["shared"])
        assert deleted.existed == (True,)
        for store in (a, b):
            assert store.get("shared") is None
            store.refresh()
            assert store.reader().document_count == 2
        time.sleep(0.5)
        # The shared counter carries B's writes to A: A numbers its next write after them.
        assert a.put([item("later")]).seq > deleted.seq
    finally:
        a.close()
        b.close()


def test_two_copies_of_one_write_number_read_as_the_copy_written_last(
    target: MilvusTarget,
) -> None:
    """Two replicas writing one document at the same moment can number their writes alike
    (the shared counter has no compare-and-set) and miss each other's rows: both copies stay
    until the document is written again. Reading or searching it gives one copy, the later."""
    store = MilvusStore.open(target)
    try:
        written = store.put([item("contested", "first copy")])
        later = item("contested", "second copy, longer")
        milvus_schema._insert_documents(store._client, store._version, [(written.seq, later)])
        store.refresh()
        kept = store.get("contested")
        assert kept is not None
        assert kept.document.text == "second copy, longer"
        assert kept.passages == later.passages
        listed = [s for s in store.reader().documents(0, 100) if s.document.doc_id == "contested"]
        assert [s.document.text for s in listed] == ["second copy, longer"]
        reader = store.reader()
        for vectors in (later.vectors, item("contested", "first copy").vectors):
            _, ids = reader.vector_search(vectors, 10)
            hits = [reader.passage(int(i)) for i in ids]
            assert [p.text for p in hits if p.doc_id == "contested"] == ["second copy, longer"]
        # The next write of the document replaces both copies.
        assert store.put([item("contested", "settled")]).existed == (True,)
        store.refresh()
        reader = store.reader()
        assert (reader.document_count, reader.passage_count) == (3, 3)
    finally:
        store.close()


def test_a_delete_through_one_replica_is_gone_from_the_others_searches_once_acknowledged(
    target: MilvusTarget,
) -> None:
    """A takedown: once the delete returns, no replica's search finds the document (the
    deleting replica's publish reads at a session timestamp past the delete, so it returns
    only once Milvus has applied it, for every reader)."""
    a, b = MilvusStore.open(target), MilvusStore.open(target)
    try:
        written = item("takedown", "an article to take down")
        a.put([written])
        deadline = time.monotonic() + 10
        while not b.wait_for(a.seq, 0.2):  # B learns of the write at its refresh
            assert time.monotonic() < deadline

        def found_by_b() -> bool:
            _, ids = b.reader().vector_search(written.vectors[0:1], 10)
            return any(b.reader().passage(int(i)).doc_id == "takedown" for i in ids)

        assert found_by_b()
        assert a.delete(["takedown"]).existed == (True,)
        assert not found_by_b()  # at once: not after B's refresh, nor after a time tick
    finally:
        a.close()
        b.close()
