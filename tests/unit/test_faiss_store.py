"""The local store's own machinery: merges, tombstones, the translog across restarts, and
crash safety under kill -9 (the contract suite covers what every store must do)."""

from __future__ import annotations

import random
import textwrap
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from indexer.build import BuildParams, build_index, new_manifest
from indexer.filters import Filter, parse_filter
from indexer.ingest import Preparer
from indexer.loading import Corpus
from indexer.search import MODES, Query, Searcher
from indexer.stores.base import StoreLockedError
from indexer.stores.faiss import state as local
from indexer.stores.faiss.columns import MetadataColumns
from indexer.stores.faiss.layout import TRANSLOG_DIR, current_version, version_number
from indexer.stores.faiss.merges import MergePolicy
from indexer.stores.faiss.store import FaissStore
from indexer.stores.faiss.translog import generations
from indexer.types import Document, IndexedDocument, Passage
from tests.utils.corpus import DIM, corpus
from tests.utils.durability import (
    Expected,
    assert_same_ranking,
    content,
    kill_writer,
    version_of,
)
from tests.utils.fakes import HashingEmbedder
from tests.utils.paths import ARTIFACTS

PARAMS = BuildParams()


def documents(ids: range, version: int = 1) -> list[Document]:
    return [Document(f"doc-{i:03d}", **content(f"doc-{i:03d}", version)) for i in ids]  # type: ignore[arg-type]


def built(directory: Path, docs: list[Document], params: BuildParams = PARAMS) -> Path:
    build_index(Corpus(docs), directory, HashingEmbedder(), params, source_label="test")
    return directory


def prepare(store: FaissStore, docs: list[Document]) -> list:  # type: ignore[type-arg]
    preparer = Preparer(HashingEmbedder(), store.manifest.chunking, store.manifest.title_prefix)
    return preparer.prepare(docs)


def held(store: FaissStore) -> dict[str, int | None]:
    reader = store.reader()
    return {
        s.document.doc_id: version_of(s.document.title)
        for s in reader.documents(0, reader.document_count)
    }


def rankings(store: FaissStore, queries: list[str]) -> list[list[tuple[str, int, float]]]:
    searcher = Searcher(store, HashingEmbedder())
    return [
        [
            (h.passage.doc_id, h.passage.chunk_id, h.score)
            for h in searcher.search(Query(q, mode=m, k=20))
        ]
        for q in queries
        for m in MODES
    ]


def test_a_merge_drops_removed_rows_and_ranks_as_before(tmp_path: Path) -> None:
    store = FaissStore.open(built(tmp_path / "index", documents(range(10))))
    empty_log = store.translog_bytes
    assert empty_log is not None
    store.put(prepare(store, documents(range(5, 15), version=2)))
    store.delete(["doc-000", "doc-014"])
    store.refresh()
    assert store.translog_bytes is not None
    assert store.translog_bytes > empty_log
    assert store.last_merge_at is None
    queries = ["storm harvest", "minister budget tax", "river bridge"]
    before = rankings(store, queries)
    _, added, removed = store._index.growth()
    assert (added, removed) != (0, 0)
    merge = store.start_merge()
    assert merge is not None
    merge.join(30)
    assert store.merges == 1
    assert store.last_merge_at is not None
    assert store.translog_bytes == empty_log  # the merged writes' generations are gone
    assert store._index.growth()[1:] == (0, 0)  # everything in the new base, nothing removed
    assert rankings(store, queries) == before
    assert sorted(p.name for p in store.location.iterdir()) == [
        "CURRENT",
        "LOCK",
        "translog",
        "v000002",
    ]
    assert held(store) == {f"doc-{i:03d}": 1 if i < 5 else 2 for i in range(1, 14)}
    store.close()
    reopened = FaissStore.open(store.location)
    for ours, theirs in zip(rankings(reopened, queries), before, strict=True):
        assert_same_ranking(ours, theirs)
    reopened.close()


@pytest.fixture
def gate(monkeypatch: pytest.MonkeyPatch) -> threading.Event:
    """Merges wait for this event before they compact: something can happen meanwhile."""
    opened = threading.Event()
    real_compact = local.LocalIndex.compact

    def held_compact(view: local.LocalView) -> local.LocalIndex:
        opened.wait(10)
        return real_compact(view)

    monkeypatch.setattr(local.LocalIndex, "compact", staticmethod(held_compact))
    return opened


def test_writes_during_a_merge_are_kept(tmp_path: Path, gate: threading.Event) -> None:
    store = FaissStore.open(built(tmp_path / "index", documents(range(10))))
    store.put(prepare(store, documents(range(10, 20))))
    merge = store.start_merge()
    assert merge is not None
    store.put(prepare(store, documents(range(20, 25))))  # while the merge waits
    store.delete(["doc-003"])
    gate.set()
    merge.join(30)
    assert store.merges == 1
    expected = {f"doc-{i:03d}": 1 for i in range(25) if i != 3}
    assert held(store) == expected
    store.close()
    reopened = FaissStore.open(store.location)
    assert held(reopened) == expected
    assert reopened.seq == 16
    reopened.close()


def test_the_translog_is_replayed_at_start_and_trimmed_by_a_merge(tmp_path: Path) -> None:
    index_dir = built(tmp_path / "index", documents(range(3)))
    store = FaissStore.open(index_dir)
    store.put(prepare(store, documents(range(3, 6))))
    store.close()
    assert generations(index_dir / TRANSLOG_DIR) == [1]
    store = FaissStore.open(index_dir)  # replays; a new writer starts a new generation
    assert held(store) == {f"doc-{i:03d}": 1 for i in range(6)}
    store.delete(["doc-001"])
    assert generations(index_dir / TRANSLOG_DIR) == [1, 2]
    merge = store.start_merge()
    assert merge is not None
    merge.join(30)
    assert generations(index_dir / TRANSLOG_DIR) == []  # all in the new version
    store.put(prepare(store, documents(range(6, 7))))
    store.close()
    store = FaissStore.open(index_dir)
    assert set(held(store)) == {f"doc-{i:03d}" for i in range(7) if i != 1}
    store.close()


def test_the_merge_policy_merges_on_its_own(tmp_path: Path) -> None:
    index_dir = built(tmp_path / "index", documents(range(4)))
    store = FaissStore.open(index_dir, refresh_interval=0.01, merge_policy=MergePolicy(5, 0.1))
    for i in range(4, 30):
        store.put(prepare(store, documents(range(i, i + 1))))
    deadline = time.monotonic() + 20
    while store.merges == 0:
        assert time.monotonic() < deadline, "no merge happened"
        time.sleep(0.05)
    store.close()
    # A quarter of the live rows changed (3100 of 11 900), and at least 1000 rows:
    assert MergePolicy(1000, 0.25).due(base_rows=10_000, added=2500, removed=600)
    assert not MergePolicy(1000, 0.25).due(base_rows=10_000, added=500, removed=400)
    assert not MergePolicy(1000, 0.25).due(base_rows=0, added=999, removed=0)


@pytest.mark.parametrize(("spec", "params"), [("HNSW16", "efSearch=64"), ("IVF2,Flat", "nprobe=2")])
def test_approximate_indexes_take_deletes_as_tombstones_until_a_merge(
    tmp_path: Path, spec: str, params: str
) -> None:
    config = BuildParams(index_factory=spec, search_params=params)
    store = FaissStore.open(built(tmp_path / "index", documents(range(40)), config))
    victim = store.get("doc-007")
    assert victim is not None
    vector = HashingEmbedder().encode([victim.passages[0].text])
    store.delete(["doc-007"])
    _, ids = store.reader().vector_search(vector, 200)
    assert "doc-007" not in {store.reader().passage(int(i)).doc_id for i in ids}
    rows_before = store.reader().vectors.rows
    merge = store.start_merge()
    assert merge is not None
    merge.join(30)
    assert store.reader().vectors.rows < rows_before  # the tombstones are gone
    _, ids = store.reader().vector_search(vector, 200)
    assert "doc-007" not in {store.reader().passage(int(i)).doc_id for i in ids}
    store.close()


def test_a_reader_taken_before_a_merge_keeps_answering(tmp_path: Path) -> None:
    store = FaissStore.open(built(tmp_path / "index", documents(range(10))))
    store.delete(["doc-002"])
    reader = store.reader()
    query = HashingEmbedder().encode(["storm harvest"])
    before = reader.vector_search(query, 5)
    merge = store.start_merge()
    assert merge is not None
    merge.join(30)
    after = reader.vector_search(query, 5)
    np.testing.assert_array_equal(before[1], after[1])
    assert reader.passage(int(after[1][0])).doc_id != "doc-002"
    store.close()


def test_leftovers_of_a_crashed_merge_are_cleaned_at_open(tmp_path: Path) -> None:
    index_dir = built(tmp_path / "index", documents(range(3)))
    (index_dir / ".tmp-v000002").mkdir()
    (index_dir / "v000005").mkdir()
    store = FaissStore.open(index_dir)
    assert sorted(p.name for p in index_dir.iterdir()) == ["CURRENT", "LOCK", "translog", "v000001"]
    store.close()


def test_a_second_writer_on_the_same_index_is_refused(tmp_path: Path) -> None:
    index_dir = built(tmp_path / "index", documents(range(3)))
    first = FaissStore.open(index_dir)
    with pytest.raises(StoreLockedError, match="in use by another process"):
        FaissStore.open(index_dir)
    reading = FaissStore.open(index_dir, writable=False)  # readers need no lock
    assert reading.reader().document_count == 3
    reading.close()
    first.close()
    FaissStore.open(index_dir).close()


# -- kill -9 ------------------------------------------------------------------------------

WRITER = textwrap.dedent(
    """
    import random, sys
    from pathlib import Path
    from indexer.ingest import Preparer
    from indexer.stores.faiss.merges import MergePolicy
    from indexer.stores.faiss.store import FaissStore
    from indexer.types import Document, IndexedDocument, Passage
    from tests.utils.durability import content, next_op, version_of
    from tests.utils.fakes import HashingEmbedder

    store = FaissStore.open(
        Path(sys.argv[1]), refresh_interval=0.01, merge_policy=MergePolicy(min_rows=6, ratio=0.05)
    )
    preparer = Preparer(HashingEmbedder(), store.manifest.chunking, store.manifest.title_prefix)
    reader = store.reader()
    state = {
        s.document.doc_id: version_of(s.document.title)
        for s in reader.documents(0, reader.document_count)
    }
    rng = random.Random(int(sys.argv[2]))
    while True:
        op = next_op(rng, state)
        print("begin", op.line(), flush=True)
        if op.kind == "put":
            document = Document(op.doc_id, **content(op.doc_id, op.version))
            store.put(preparer.prepare([document]))
            state[op.doc_id] = op.version
        else:
            store.delete([op.doc_id])
            state[op.doc_id] = None
        print("ack", op.line(), flush=True)
    """
)


@pytest.mark.long
def test_kill_9_at_random_moments_loses_no_acknowledged_write(tmp_path: Path) -> None:
    """Writes, deletes and merges (a tiny merge threshold) killed mid-flight, six times; each
    restart holds every acknowledged write, nothing deleted comes back, and the end state
    ranks exactly like a fresh build of the same documents."""
    index_dir = built(tmp_path / "index", documents(range(5)))
    expected = Expected({f"doc-{i:03d}": 1 for i in range(5)})
    rng = random.Random(1234)
    for round_number in range(6):
        # Killed after a random number of acknowledged writes (a few hundred a second: merges
        # run meanwhile, and some are killed midway), while the next is in flight.
        complete = kill_writer(
            WRITER,
            [str(index_dir), str(round_number)],
            tmp_path / f"writer-{round_number}.log",
            acknowledged=rng.randint(60, 400),
        )
        in_flight = expected.read_log(complete)
        store = FaissStore.open(index_dir, writable=False)
        try:
            expected.check(held(store), in_flight)
        finally:
            store.close()
    assert expected.acknowledged > 30
    assert version_number(current_version(index_dir).name) > 3  # merges ran between the kills
    live = {doc_id: v for doc_id, v in expected.versions.items() if v is not None}
    store = FaissStore.open(index_dir, writable=False)
    order = [s.document.doc_id for s in store.reader().documents(0, 10_000)]
    assert set(order) == set(live)
    fresh = FaissStore.open(
        built(tmp_path / "fresh", [Document(d, **content(d, live[d])) for d in order]),  # type: ignore[arg-type]
        writable=False,
    )
    queries = ["storm harvest minister", "river bridge", "tax tariff pipeline", "museum"]
    for ours, theirs in zip(rankings(store, queries), rankings(fresh, queries), strict=True):
        assert_same_ranking(ours, theirs)
    store.close()
    fresh.close()
    ARTIFACTS.mkdir(exist_ok=True)
    (ARTIFACTS / "kill9-store.txt").write_text(
        expected.summary(
            6,
            merges=f"the index is at {current_version(index_dir).name} (each version after "
            "v000001 is a merge, some of them killed midway)",
            rankings="equal to a fresh build of the same documents (4 queries x 3 modes)",
        )
    )


def test_a_merge_running_at_close_is_abandoned_and_nothing_is_lost(
    tmp_path: Path, gate: threading.Event
) -> None:
    store = FaissStore.open(built(tmp_path / "index", documents(range(5))))
    store.put(prepare(store, documents(range(5, 10))))
    merge = store.start_merge()
    assert merge is not None
    closing = threading.Thread(target=store.close)
    closing.start()
    deadline = time.monotonic() + 10
    while not store._closed.is_set():  # close() has begun: it waits for the merge
        assert time.monotonic() < deadline
        time.sleep(0.005)
    gate.set()
    closing.join(30)
    merge.join(30)
    assert not closing.is_alive()
    assert not merge.is_alive()
    assert store.merges == 0
    assert sorted(p.name for p in store.location.iterdir()) == [
        "CURRENT",
        "LOCK",
        "translog",
        "v000001",
    ]
    reopened = FaissStore.open(store.location)
    assert set(held(reopened)) == {f"doc-{i:03d}" for i in range(10)}
    reopened.close()


@pytest.mark.long
@pytest.mark.parametrize(("spec", "params"), [("Flat", ""), ("HNSW32", "efSearch=16")])
def test_a_filter_matching_3_of_100_000_passages_returns_those_3(
    tmp_path: Path, spec: str, params: str
) -> None:
    """Before ranking: neither the k best of everything then filtered, nor a graph search
    that wanders off the few allowed rows (HNSW with a small efSearch would)."""
    dimension, count = 8, 100_000
    rng = np.random.default_rng(0)
    vectors = rng.normal(size=(count, dimension)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    rare = {17, 50_001, 99_998}
    items = []
    for i in range(count):
        text = f"report {i}"
        document = Document(f"d{i}", "", text, {"desk": "rare"} if i in rare else {})
        passage = (Passage(document.doc_id, 0, 0, len(text), text),)
        items.append(IndexedDocument(document, passage, vectors[i : i + 1]))
    config = BuildParams(index_factory=spec, search_params=params)
    manifest = new_manifest("test/synthetic", dimension, config, "synthetic")
    store = FaissStore.create(tmp_path / "index", manifest, items)
    only = parse_filter({"desk": "rare"})
    reader = store.reader()
    query = -vectors[17:18]  # as far from one of them as can be
    _, rows = reader.vector_search(query, 10, only)
    assert sorted(reader.passage(int(r)).doc_id for r in rows) == ["d17", "d50001", "d99998"]
    _, rows = reader.keyword_search("report", 10, only)
    assert sorted(reader.passage(int(r)).doc_id for r in rows) == ["d17", "d50001", "d99998"]
    store.close()


def test_a_filtered_listing_computes_its_documents_once_per_view(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """GET /documents?filter= asks one view for its total and its page: the filter is evaluated
    over the metadata columns once, not for each; a later view, with new writes, evaluates it
    again."""
    items = corpus(30)
    manifest = new_manifest("test/listing", DIM, BuildParams(), "listing")
    store = FaissStore.create(tmp_path / "index", manifest, items[:20])
    evaluated: list[Filter] = []
    mask = MetadataColumns.mask

    def counted(columns: MetadataColumns, filter: Filter, n: int) -> np.ndarray:
        evaluated.append(filter)
        return mask(columns, filter, n)

    monkeypatch.setattr(MetadataColumns, "mask", counted)
    world, science = parse_filter({"section": "world"}), parse_filter({"section": "science"})

    def passing(condition: Filter, upto: int) -> list[str]:
        return [
            i.document.doc_id
            for i in items[:upto]
            if condition.matches(i.document.doc_id, i.document.metadata)
        ]

    reader = store.reader()
    assert reader.count_documents(world) == len(passing(world, 20)) == 7
    assert [s.document.doc_id for s in reader.documents(2, 3, world)] == passing(world, 20)[2:5]
    assert reader.document_ids(world) == passing(world, 20)
    assert evaluated == [world]
    assert reader.document_ids(science) == passing(science, 20)
    assert reader.count_documents(world) == 7
    assert evaluated == [world, science]

    store.put(items[20:])
    store.refresh()
    later = store.reader()
    assert later.count_documents(world) == len(passing(world, 30)) == 10
    assert later.document_ids(world) == passing(world, 30)
    assert evaluated == [world, science, world]
    assert reader.count_documents(world) == 7  # the earlier view keeps its own answer
    store.close()
