"""The Milvus store's group commit and its memory of its own writes, on Milvus Lite and on a
real server: concurrent puts share one round, and two stores on one collection (replicas) each
see the other's writes."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest

import indexer.stores.milvus.schema as milvus_schema
from indexer.stores.base import Written
from indexer.stores.milvus.client import MilvusTarget
from indexer.stores.milvus.numbering import STRIDE
from indexer.stores.milvus.store import MilvusStore
from indexer.types import Document, IndexedDocument, Passage
from tests.utils.corpus import one_passage
from tests.utils.durability import Expected, kill_writer
from tests.utils.milvus_stores import LITE_AND_SERVER, milvus_uri, small_store
from tests.utils.paths import REPO
from tests.utils.processes import wait_for

DIM = 4


def item(doc_id: str, text: str = "some text") -> IndexedDocument:
    return one_passage(doc_id, text, DIM)


@pytest.fixture(params=LITE_AND_SERVER)
def target(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[MilvusTarget]:
    uri = milvus_uri(request.param, request, tmp_path)
    with small_store(uri, "w", DIM, [item("old-1"), item("old-2")]) as found:
        yield found


def test_concurrent_puts_in_one_group_each_get_their_own_outcome(target: MilvusTarget) -> None:
    store = MilvusStore.open(target)
    try:
        puts = [[item("old-1")], [item("new-1"), item("new-2")], [item("new-1", "again")], []]
        results: dict[int, Written | BaseException] = {}

        def put(number: int, documents: list[IndexedDocument]) -> None:
            try:
                results[number] = store.put(documents)
            except BaseException as error:  # kept for the assert below: a thread cannot fail
                results[number] = error

        # Hold the write lock so that every put queues, then let them go as one group.
        with store.write_lock:
            threads = [threading.Thread(target=put, args=(n, p)) for n, p in enumerate(puts)]
            for queued, thread in enumerate(threads, start=1):
                thread.start()
                deadline = time.monotonic() + 10
                while len(store._queue) < queued:  # in this order
                    assert time.monotonic() < deadline, f"put {queued} never queued"
                    time.sleep(0.001)
        for thread in threads:
            thread.join(30)
        assert not any(thread.is_alive() for thread in threads)

        # One number a document (on a server, in this replica's slot: see numbering).
        def nth(n: int) -> int:
            return n if target.is_lite else n * STRIDE + store.slot

        assert results[0] == Written(nth(1), (True,))
        assert results[1] == Written(nth(3), (False, False))
        assert results[2] == Written(nth(4), (True,))  # new-1, written earlier in the group
        assert results[3].existed == ()
        assert store.seq == nth(4)
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
        # Another replica's write counts once Milvus has applied it: once B's reads see it.
        until(lambda: text_of(b, "shared") == "some text", "B sees A's write")
        assert b.put([item("shared", "from b")]).existed == (True,)  # A's write: replaced
        until(lambda: text_of(a, "shared") == "from b", "A sees B's write")
        assert a.put([item("shared", "from a")]).existed == (True,)  # A remembers its own
        until(lambda: text_of(b, "shared") == "from a", "B sees A's replacement")
        # B wrote "shared" a moment ago too: A's replacement must have removed B's rows.
        deleted = b.delete(["shared"])
        assert deleted.existed == (True,)
        for store in (a, b):
            assert store.get("shared") is None
            store.refresh()
            assert store.reader().document_count == 2
        # The shared counter carries B's writes to A: A numbers its next write after them.
        until(lambda: a.refresh() or a.reader().seq >= deleted.seq, "A sees B's counter")
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


def until(check: Callable[[], object], what: str) -> None:
    """A replica learns of another's write once Milvus has applied it: a tick or two."""
    wait_for(check, what, 15, interval=0.05)


def text_of(store: MilvusStore, doc_id: str) -> str | None:
    found = store.get(doc_id)
    return None if found is None else found.document.text


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
    failures: list[BaseException] = []
    try:
        for round_ in range(3):
            start = threading.Barrier(2, timeout=30)

            def write(store: MilvusStore, text: str, start: threading.Barrier = start) -> None:
                try:
                    start.wait()
                    store.put([item(d, text) for d in ids])
                except BaseException as error:  # kept for the assert below
                    failures.append(error)

            threads = [
                threading.Thread(target=write, args=(store, f"{who} {round_}"))
                for store, who in ((a, "a"), (b, "b"))
            ]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join(30)
            assert not any(thread.is_alive() for thread in threads)
            assert failures == []
        deadline = time.monotonic() + 15

        def settled(store: MilvusStore) -> bool:
            # The recheck removes the older copy's passages and its document row; under load
            # the second can show a moment after the first, so wait for both.
            store.refresh()
            reader = store.reader()
            return reader.document_count == reader.passage_count == 2 + len(ids)  # + old-1, old-2

        while any(len(passages_of(a, d)[1]) != 1 for d in ids) or not all(map(settled, (a, b))):
            views = {name: store.reader() for name, store in (("a", a), ("b", b))}
            assert time.monotonic() < deadline, (views, {d: passages_of(a, d) for d in ids})
            time.sleep(0.2)
        for d in ids:
            one, other = a.get(d), b.get(d)
            assert one is not None
            assert other is not None
            assert one.document.text == other.document.text == passages_of(a, d)[0][0]
    finally:
        a.close()
        b.close()


# -- kill -9 of a writer ----------------------------------------------------------------------

# Processes of their own, the test's included: a Milvus Lite file is held by one process.
OPEN = textwrap.dedent(
    """
    import json, random, sys
    from indexer.build import BuildParams, new_manifest
    from indexer.ingest import Preparer
    from indexer.stores.milvus.client import MilvusTarget
    from indexer.stores.milvus.store import MilvusStore
    from indexer.types import Document
    from tests.utils.durability import content, next_op, version_of
    from tests.utils.fakes import HashingEmbedder

    target = MilvusTarget(uri=sys.argv[1], collection=sys.argv[2])
    if not MilvusStore.exists(target):
        params = BuildParams(store="milvus", index_factory="FLAT")
        manifest = new_manifest(HashingEmbedder.model_name, 64, params, "kill")
        MilvusStore.create(target, manifest, []).close()
    store = MilvusStore.open(target)
    reader = store.reader()
    state = {
        s.document.doc_id: version_of(s.document.title)
        for s in reader.documents(0, reader.document_count)
    }
    """
)
READER = OPEN + textwrap.dedent(
    """
    got = {d: store.get(d) for d in sys.argv[3:]}
    print(json.dumps({
        "listed": state,
        "got": {d: None if s is None else version_of(s.document.title) for d, s in got.items()},
    }))
    store.close()
    """
)
WRITER = OPEN + textwrap.dedent(
    """
    preparer = Preparer(HashingEmbedder(), store.manifest.chunking, store.manifest.title_prefix)
    rng = random.Random(int(sys.argv[3]))
    while True:
        op = next_op(rng, state, pool=20)
        print("begin", op.line(), flush=True)
        if op.kind == "put":
            store.put(preparer.prepare([Document(op.doc_id, **content(op.doc_id, op.version))]))
            state[op.doc_id] = op.version
        else:
            store.delete([op.doc_id])
            state[op.doc_id] = None
        print("ack", op.line(), flush=True)
    """
)


def test_kill_9_of_a_writer_loses_no_acknowledged_write(
    target: MilvusTarget, tmp_path: Path
) -> None:
    """A process writing to a Milvus store is killed mid-write, three times: every write it had
    acknowledged is there when the store is opened again (listed, and read by id), nothing it
    deleted comes back, and the write in flight is there whole or not at all."""
    kill = MilvusTarget(
        uri=str(tmp_path / "kill.db") if target.is_lite else target.uri,
        collection=f"{target.collection}_kill",
    )
    expected, rng = Expected(), random.Random(99)
    environment = {**os.environ, "PYTHONPATH": str(REPO)}

    def run(script: str, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-c", script, kill.uri, kill.collection, *args],
            cwd=REPO,
            env=environment,
            capture_output=True,
            text=True,
            timeout=120,
        )

    try:
        for round_number in range(3):
            complete = kill_writer(
                WRITER,
                [kill.uri, kill.collection, str(round_number)],
                tmp_path / f"writer-{round_number}.log",
                acknowledged=rng.randint(10, 40),
            )
            in_flight = expected.read_log(complete)
            read = run(READER, *sorted({*expected.versions, f"doc-{0:03d}"}))
            assert read.returncode == 0, read.stderr
            held = json.loads(read.stdout.splitlines()[-1])
            expected.check(held["listed"], in_flight)
            assert held["got"] == {d: expected.versions.get(d) for d in held["got"]}
        assert expected.acknowledged >= 30
    finally:
        if not target.is_lite:
            MilvusStore.drop(kill)
