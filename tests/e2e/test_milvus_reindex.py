"""Reindexing a Milvus store that several replicas serve, on a real Milvus server: the new
version is built while every replica searches and writes, one replica switches it, the others
follow at their next refresh, and the writes a lagging replica still makes to the old version
are carried over before it is dropped."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence

import numpy as np
import pytest
from pymilvus import MilvusClient

from harness.milvus import MilvusServer
from indexer.build import BuildParams, new_manifest
from indexer.manifest import Manifest
from indexer.stores.base import Rebuild
from indexer.stores.milvus.client import MilvusTarget
from indexer.stores.milvus.store import MilvusStore
from indexer.types import Document, IndexedDocument, Passage
from tests.utils.corpus import DIM, corpus, unit
from tests.utils.processes import wait_for

pytestmark = pytest.mark.milvus

K = 5
QUERY = unit(np.random.default_rng(99), 1)


def prepared(document: Document) -> IndexedDocument:
    """The "new settings": one passage per document, a vector from its id; the documents the
    test writes (``w-…``) point away from the query, so rankings show only the switch."""
    if document.doc_id.startswith("w-"):
        vector = -QUERY
    else:
        vector = unit(np.random.default_rng(int(document.doc_id.split("-")[1])), 1)
    passage = Passage(document.doc_id, 0, 0, len(document.text), document.text)
    return IndexedDocument(document, (passage,), vector)


def written(doc_id: str) -> IndexedDocument:
    """A write as the old version prepares it."""
    text = f"late news {doc_id}"
    document = Document(doc_id, doc_id, text, {"section": "world"})
    return IndexedDocument(document, (Passage(doc_id, 0, 0, len(text), text),), -QUERY)


def ranking(store: MilvusStore) -> tuple[str, tuple[tuple[str, int], ...]]:
    reader = store.reader()
    _, ids = reader.vector_search(QUERY, K)
    found = tuple((reader.passage(int(i)).doc_id, reader.passage(int(i)).chunk_id) for i in ids)
    return reader.manifest.build_id, found


@pytest.fixture
def target(milvus_server: MilvusServer) -> Iterator[MilvusTarget]:
    found = MilvusTarget(uri=milvus_server.uri, collection=f"re{uuid.uuid4().hex[:10]}")
    params = BuildParams(index_factory="FLAT", search_params="", store="milvus")
    MilvusStore.create(found, new_manifest("test/re", DIM, params, "re"), corpus(60)).close()
    yield found
    MilvusStore.drop(found)


def test_replicas_switch_to_a_reindexed_version_without_a_failed_search_or_a_lost_write(
    target: MilvusTarget, milvus_server: MilvusServer
) -> None:
    a = MilvusStore.open(target, refresh_interval=0.2)
    b = MilvusStore.open(target, refresh_interval=0.2)
    # A replica that does not refresh during the test: its writes after the switch still go to
    # the old version, as a replica's do until its next refresh.
    lagging = MilvusStore.open(target, refresh_interval=3600)
    followed: list[Manifest] = []
    switched: list[str] = []

    def follow(manifest: Manifest) -> object | None:
        followed.append(manifest)
        return lambda: switched.append(manifest.build_id)

    b.follow(follow)  # type: ignore[arg-type]
    old_build = a.manifest.build_id
    old_ranking = ranking(a)
    stop = threading.Event()
    seen: list[list[tuple[str, tuple[tuple[str, int], ...]]]] = [[] for _ in range(8)]
    failures: list[BaseException] = []

    def search(store: MilvusStore, into: list) -> None:
        while not stop.is_set():
            try:
                into.append(ranking(store))
            except BaseException as error:  # every failure is reported below
                failures.append(error)

    threads = [
        threading.Thread(target=search, args=(store, into), daemon=True)
        for store, into in zip([a, b] * 4, seen, strict=True)
    ]
    calls: list[int] = []
    syncs: list[float] = []  # when A compared the versions
    compare = a._reindexer._sync

    def counted_sync(*args: object) -> tuple[int, int]:
        syncs.append(time.monotonic())
        return compare(*args)  # type: ignore[arg-type]

    a._reindexer._sync = counted_sync  # type: ignore[method-assign]

    def prepare(documents: Sequence[Document]) -> list[IndexedDocument]:
        if not calls:  # writes through both replicas while the rebuild runs
            b.put([written("w-during-b")])
            a.put([written("w-during-a")])
            b.delete(["doc-007"])
        calls.append(len(documents))
        return [prepared(d) for d in documents]

    def until(check: Callable[[], bool], what: str, seconds: float = 20) -> None:
        def searching_fine() -> bool:
            assert failures == [], failures  # a search failed: no point waiting on
            return check()

        wait_for(searching_fine, what, seconds, interval=0.02)

    try:
        for thread in threads:
            thread.start()
        until(lambda: all(len(observed) >= 3 for observed in seen), "searches under way")
        manifest = old_build
        target_manifest = a.manifest.model_copy(update={"build_id": uuid.uuid4().hex})
        manifest = a.reindex(Rebuild(target_manifest, prepare), grace=4).build_id
        before_grace = len(syncs)
        lagging.put([written("w-lagging")])  # to the old version, after the switch
        until(lambda: b.manifest.build_id == manifest, "B following the switch", 10)
        assert [m.build_id for m in followed] == [manifest]
        assert switched == [manifest]
        assert b.epoch == 1
        b.put([written("w-after-b")])  # to the new version
        until(
            lambda: all(any(build == manifest for build, _ in seen_[-3:]) for seen_ in seen),
            "every searcher answered by the new version",
        )
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=30)
    assert not any(thread.is_alive() for thread in threads)
    try:
        assert failures == []
        new_ranking = ranking(a)
        assert new_ranking[0] == manifest
        assert new_ranking[1] != old_ranking[1]
        for observed in seen:
            assert len(observed) > 10
            assert set(observed) <= {old_ranking, new_ranking}, set(observed)
            # Old answers, then new ones: exactly one switch, never back.
            builds = [build for build, _ in observed]
            first_new = builds.index(manifest)
            assert set(builds[:first_new]) == {old_build}
            assert set(builds[first_new:]) == {manifest}
        # The late write to the old version is carried over within the grace period, and
        # the old version dropped after it.
        deadline = time.monotonic() + 20
        client = MilvusClient(uri=milvus_server.uri)
        try:
            while f"{target.collection}_passages" in client.list_collections():
                assert time.monotonic() < deadline, "the old version was not dropped"
                time.sleep(0.2)
        finally:
            client.close()
        # About 20 rounds in the grace period, but the versions are compared only in the
        # first, after the lagging write moved the old version's counter, and in the last.
        assert 2 <= len(syncs) - before_grace <= 4, len(syncs) - before_grace
        for store in (a, b):
            store.refresh()
            for doc_id in ("w-during-b", "w-during-a", "w-lagging", "w-after-b", "doc-010"):
                assert store.get(doc_id) is not None, doc_id
            assert store.get("doc-007") is None
            assert store.reader().document_count == 60 + 4 - 1
        lagging.refresh()  # the lagging replica follows too, and finds its own write
        assert lagging.manifest.build_id == manifest
        assert lagging.get("w-lagging") is not None
        reopened = MilvusStore.open(target)
        try:
            assert reopened.manifest.build_id == manifest
            assert reopened.reader().document_count == 63
        finally:
            reopened.close()
    finally:
        for store in (a, b, lagging):
            store.close()
