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
from indexer.build import BuildParams, new_manifest
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
        with store.write_lock:
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
    (the shared counter has no compare-and-set) and miss each other's rows. Until the older
    copy is removed, reading or searching the document gives one copy, the later."""
    store = MilvusStore.open(target)
    try:
        written = store.put([item("contested", "first copy")])
        later = item("contested", "second copy, longer")
        milvus_schema.insert_documents(store._client, store.version, [(written.seq, later)])
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


def passages_of(store: MilvusStore, doc_id: str) -> tuple[list[str], list[str]]:
    """What Milvus holds of ``doc_id`` now: its text rows and its passages' texts."""
    where = f'doc_id == "{doc_id}"'
    version = store.version
    texts = store._reads.query_all(version.documents, where, ["text"], consistency_level="Strong")
    passages = store._reads.query_all(version.passages, where, ["text"], consistency_level="Strong")
    return [r["text"] for r in texts], [r["text"] for r in passages]


def test_an_older_copy_left_beside_a_newer_one_is_removed_a_moment_later(
    target: MilvusTarget,
) -> None:
    """Another replica's write of the same moment missed this one's rows and left its own
    copy (numbered after it): the replica that wrote looks again a second later and removes
    the older copy whole, so none of its passages (here chunks 1 and 2, which the newer copy
    does not have) is found any more."""
    store = MilvusStore.open(target, refresh_interval=0.2)
    try:
        texts = ["first part", "second part", "third part"]
        vectors = np.stack([item(f"contested-{n}").vectors[0] for n in range(3)])
        spans, offset = [], 0
        for n, text in enumerate(texts):
            spans.append(Passage("contested", n, offset, offset + len(text), text))
            offset += len(text) + 1
        older = IndexedDocument(
            Document("contested", "Contested", " ".join(texts)), tuple(spans), vectors
        )
        written = store.put([older])
        newer = item("contested", "the other replica's copy")
        milvus_schema.insert_documents(store._client, store.version, [(written.seq + 1, newer)])
        store._set_seq(written.seq + 1)  # as that replica's write would
        deadline = time.monotonic() + 15
        while passages_of(store, "contested") != (
            ["the other replica's copy"],
            ["the other replica's copy"],
        ):
            assert time.monotonic() < deadline, passages_of(store, "contested")
            time.sleep(0.2)
        while not store.wait_for(written.seq + 1, 0.2):
            assert time.monotonic() < deadline
        reader = store.reader()
        assert (reader.document_count, reader.passage_count) == (3, 3)
        for vector in vectors:
            _, ids = reader.vector_search(vector, 10)
            found = [reader.passage(int(i)) for i in ids]
            assert [p.text for p in found if p.doc_id == "contested"] == [
                "the other replica's copy"
            ]
    finally:
        store.close()


def test_two_replicas_writing_documents_at_once_leave_one_copy_of_each(
    target: MilvusTarget,
) -> None:
    """Two replicas write the same five documents at the same moment, several times over:
    each document ends with one copy, the same one through both replicas. (Without the
    recheck each was left with two, on Milvus Lite and on the server alike.)"""
    a, b = (
        MilvusStore.open(target, refresh_interval=0.2),
        MilvusStore.open(target, refresh_interval=0.2),
    )
    ids = [f"race-{n}" for n in range(5)]
    try:
        for round_ in range(3):
            start = threading.Barrier(2)

            def write(store: MilvusStore, text: str, start: threading.Barrier = start) -> None:
                start.wait()
                store.put([item(d, text) for d in ids])

            threads = [
                threading.Thread(target=write, args=(store, f"{who} {round_}"))
                for store, who in ((a, "a"), (b, "b"))
            ]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join(30)
        deadline = time.monotonic() + 15
        while any(len(passages_of(a, d)[1]) != 1 for d in ids):
            assert time.monotonic() < deadline, {d: passages_of(a, d) for d in ids}
            time.sleep(0.2)
        for store in (a, b):  # and old-1, old-2
            store.refresh()
            assert store.reader().document_count == 2 + len(ids)
            assert store.reader().passage_count == 2 + len(ids)
        for d in ids:
            one, other = a.get(d), b.get(d)
            assert one is not None
            assert other is not None
            assert one.document.text == other.document.text == passages_of(a, d)[0][0]
    finally:
        a.close()
        b.close()
