"""The contract every store must meet: register a kind of store in ``indexer.stores.KINDS`` and
this whole suite runs against it unchanged, for each index type it lists
(``StoreKind.index_examples``), at a throwaway location (``StoreKind.location_in``). Milvus runs
once more on a real Milvus server.

Documents come from ``tests/utils/corpus.py``, with chosen vectors (no model), so rankings can be
checked exactly.
"""

from __future__ import annotations

import uuid
import zlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from indexer.build import BuildParams, new_manifest
from indexer.filters import Filter, parse_filter
from indexer.manifest import Manifest
from indexer.stores import KINDS, Store
from indexer.stores.base import (
    OutOfScopeError,
    ReadOnlyStoreError,
    Rebuild,
    ReindexError,
    SearchUnsupportedError,
    StaleWriteError,
)
from indexer.stores.milvus.client import MilvusTarget
from indexer.stores.milvus.numbering import STRIDE
from indexer.stores.milvus.store import MilvusStore
from indexer.types import Document, DocumentInfo, IndexedDocument, Passage
from tests.utils.corpus import DIM, WORDS, article, corpus, unit

# The server searches stores this small by brute force (growing segments, and sealed ones too
# small to index) whatever the index type, so IVF_FLAT there would repeat HNSW's run, for about
# 3 minutes of CI; Milvus Lite runs it. (2.3: no full-text search, so its keyword searches must
# refuse with SearchUnsupportedError.)
SERVER_SPECS = {"FLAT", "HNSW"}
CASES = [
    *(
        pytest.param(
            (name, "local", spec, params),
            id="-".join(filter(None, (name, spec, params))),
            marks=[pytest.mark.lite] if name == "milvus" else [],  # Milvus Lite
        )
        for name, kind in sorted(KINDS.items())
        for spec, params in kind.index_examples
    ),
    *(
        pytest.param(
            ("milvus", "server", spec, params),
            id="-".join(filter(None, ("milvus-server", spec, params))),
            marks=[pytest.mark.milvus],
        )
        for spec, params in KINDS["milvus"].index_examples
        if spec in SERVER_SPECS
    ),
]

StoreFactory = Callable[[Sequence[IndexedDocument]], Store]


@pytest.fixture(scope="session")
def shared_directory(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One directory for the session's throwaway stores: Milvus Lite keeps a file there for the
    session (starting Milvus Lite on a new file takes seconds); each test names its own."""
    return tmp_path_factory.mktemp("stores")


@pytest.fixture(params=CASES)
def make_store(request: pytest.FixtureRequest) -> Iterator[StoreFactory]:
    name, where, spec, params = request.param
    kind = KINDS[name]
    opened: list[Store] = []
    prefix = f"t{uuid.uuid4().hex[:12]}"  # each test's own collections, in a shared file
    server = request.getfixturevalue("milvus_server").uri if where == "server" else None
    shared = request.getfixturevalue("shared_directory")

    def location(number: int) -> object:
        if server is not None:
            return MilvusTarget(uri=server, collection=f"{prefix}_{number}")
        return kind.location_in(shared, f"{prefix}_{number}")

    def make(documents: Sequence[IndexedDocument]) -> Store:
        build = BuildParams(index_factory=spec, search_params=params, store=name)
        manifest = new_manifest("test/contract", DIM, build, "contract")
        store = kind.store.create(location(len(opened)), manifest, documents)
        opened.append(store)
        return store

    yield make
    for store in opened:
        store.close()
        kind.drop(store.location)


def keyword_search(
    store: Store, query: str, k: int, condition: Filter | None = None
) -> tuple[np.ndarray, np.ndarray] | None:
    """The store's keyword search, or None where the deployment has none: then the store must
    say so with SearchUnsupportedError, which the service turns into a 4xx."""
    reader = store.reader()
    location = store.location
    if isinstance(location, MilvusTarget) and not location.is_lite:  # the tests' 2.3 server
        with pytest.raises(SearchUnsupportedError, match=r"need Milvus 2\.5"):
            reader.keyword_search(query, k, condition)
        return None
    return reader.keyword_search(query, k, condition)


def numbered(store: Store, writes: int) -> int:
    """The sequence number after a new store's first ``writes`` writes of a document each:
    ``writes``, but on a Milvus server, where each replica numbers in a slot of its own,
    ``writes`` strides and the slot (``indexer/stores/milvus/numbering.py``)."""
    location = store.location
    if isinstance(store, MilvusStore) and not location.is_lite:
        return writes * STRIDE + store.slot
    return writes


def reopen(store: Store) -> Store:
    store.close()
    return type(store).open(store.location)


def keys(store: Store, ids: np.ndarray) -> list[tuple[str, int]]:
    reader = store.reader()
    return [(reader.passage(int(i)).doc_id, reader.passage(int(i)).chunk_id) for i in ids]


def expected_ranking(items: Sequence[IndexedDocument], query: np.ndarray, k: int) -> list:
    scored = [
        (float(vector @ query), item.document.doc_id, chunk)
        for item in items
        for chunk, vector in enumerate(item.vectors)
    ]
    scored.sort(key=lambda s: -s[0])
    return [(doc_id, chunk) for _, doc_id, chunk in scored[:k]]


# -- reading what was created ---------------------------------------------------------------


def test_a_created_store_holds_its_documents_and_passages(make_store: StoreFactory) -> None:
    items = corpus()
    store = make_store(items)
    reader = store.reader()
    assert reader.document_count == len(items)
    assert reader.passage_count == sum(len(i.passages) for i in items)
    assert reader.seq == 0
    listed = reader.documents(0, 1000)
    assert [s.document.doc_id for s in listed] == [i.document.doc_id for i in items]
    stored = store.get("doc-007")
    assert stored is not None
    assert stored.document == items[7].document
    assert stored.passages == items[7].passages
    assert store.get("nope") is None
    assert [s.document.doc_id for s in reader.documents(10, 5)] == [
        f"doc-{i:03d}" for i in range(10, 15)
    ]


def test_vector_search_is_an_inner_product_ranking(make_store: StoreFactory) -> None:
    items = corpus()
    store = make_store(items)
    query = unit(np.random.default_rng(99), 1)
    scores, ids = store.reader().vector_search(query, 10)
    assert keys(store, ids) == expected_ranking(items, query[0], 10)
    assert (np.diff(scores) <= 0).all()
    reader = store.reader()
    first = reader.passage(int(ids[0]))
    item = next(i for i in items if i.document.doc_id == first.doc_id)
    np.testing.assert_allclose(scores[0], item.vectors[first.chunk_id] @ query[0], rtol=1e-5)
    assert reader.document_info(int(ids[0])) == DocumentInfo.of(item.document)


def test_a_stored_vector_finds_itself_first(make_store: StoreFactory) -> None:
    items = corpus()
    store = make_store(items)
    scores, ids = store.reader().vector_search(items[14].vectors[1:2], 1)
    assert keys(store, ids) == [("doc-014", 1)]
    np.testing.assert_allclose(scores, [1.0], rtol=1e-5)


def test_asking_for_more_than_stored_returns_what_there_is(make_store: StoreFactory) -> None:
    items = corpus(3)
    store = make_store(items)
    scores, ids = store.reader().vector_search(unit(np.random.default_rng(1), 1), 50)
    assert len(ids) == len(scores) == sum(len(i.passages) for i in items)
    assert (ids >= 0).all()


def test_keyword_search_ranks_passages_that_contain_the_words(make_store: StoreFactory) -> None:
    items = corpus()
    store = make_store(items)
    searched = keyword_search(store, "harvest", 100)
    if searched is None:
        return
    scores, ids = searched
    found = keys(store, ids)
    expected = {
        (i.document.doc_id, p.chunk_id) for i in items for p in i.passages if "harvest" in p.text
    }
    assert set(found) == expected
    assert (scores > 0).all()
    assert store.reader().keyword_search("zyzzyva", 10)[1].tolist() == []


def test_an_empty_store_answers_with_nothing(make_store: StoreFactory) -> None:
    store = make_store([])
    reader = store.reader()
    assert (reader.document_count, reader.passage_count) == (0, 0)
    assert reader.vector_search(unit(np.random.default_rng(0), 1), 5)[1].tolist() == []
    searched = keyword_search(store, "oil", 5)
    assert searched is None or searched[1].tolist() == []
    assert reader.documents(0, 10) == []


# -- filters ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "matches"),
    [
        ({"section": "science"}, lambda d: d.metadata["section"] == "science"),
        ({"section": ["world", "science"]}, lambda d: d.metadata["section"] != "business"),
        ({"year": {"gte": 2010, "lt": 2015}}, lambda d: 2010 <= d.metadata["year"] < 2015),
        ({"breaking": True}, lambda d: d.metadata["breaking"] is True),
        (
            {"published": {"gt": "2012-01-01"}, "section": "world"},
            lambda d: d.metadata["published"] > "2012-01-01" and d.metadata["section"] == "world",
        ),
        (
            {"doc_id": ["doc-003", "doc-040", "missing"]},
            lambda d: d.doc_id in {"doc-003", "doc-040"},
        ),
        ({"year": 1999}, lambda d: False),
    ],
)
def test_filters_apply_before_ranking_in_both_searches(
    make_store: StoreFactory, raw: dict[str, object], matches: Callable[[Document], bool]
) -> None:
    items = corpus()
    store = make_store(items)
    allowed = [i for i in items if matches(i.document)]
    wanted = {(i.document.doc_id, p.chunk_id) for i in allowed for p in i.passages}
    condition = parse_filter(raw)
    query = unit(np.random.default_rng(5), 1)
    _, ids = store.reader().vector_search(query, 1000, condition)
    assert keys(store, ids) == expected_ranking(allowed, query[0], 1000)
    searched = keyword_search(store, " ".join(WORDS), 1000, condition)
    assert searched is None or set(keys(store, searched[1])) == wanted


def test_a_filter_matching_three_passages_of_thousands_returns_those_three(
    make_store: StoreFactory,
) -> None:
    rng = np.random.default_rng(3)
    items = [article(i, rng, passages=1) for i in range(3000)]
    rare = [7, 1500, 2999]
    for at in rare:
        document = items[at].document
        items[at] = IndexedDocument(
            Document(document.doc_id, document.title, document.text, {"desk": "rare"}),
            items[at].passages,
            items[at].vectors,
        )
    store = make_store(items)
    only = parse_filter({"desk": "rare"})
    query = -items[7].vectors  # as far from one of them as a vector can be
    _, ids = store.reader().vector_search(query, 10, only)
    assert sorted(keys(store, ids)) == sorted((items[at].document.doc_id, 0) for at in rare)
    searched = keyword_search(store, "report", 10, only)
    assert searched is None or sorted(keys(store, searched[1])) == sorted(
        (items[at].document.doc_id, 0) for at in rare
    )


def test_listings_filter_documents_in_write_order(make_store: StoreFactory) -> None:
    items = corpus()
    store = make_store(items)
    reader = store.reader()
    world = parse_filter({"section": "world"})
    expected = [i.document.doc_id for i in items if i.document.metadata["section"] == "world"]
    assert reader.document_ids() == [i.document.doc_id for i in items]
    assert reader.document_ids(world) == expected
    assert reader.count_documents(world) == len(expected)
    assert reader.count_documents() == reader.document_count == len(items)
    assert [s.document.doc_id for s in reader.documents(0, 5, world)] == expected[:5]
    assert [s.document.doc_id for s in reader.documents(5, 1000, world)] == expected[5:]
    assert reader.documents(0, 1, world)[0] == store.get(expected[0])
    recent = parse_filter({"year": {"gte": 2010}, "breaking": True})
    assert reader.document_ids(recent) == [
        i.document.doc_id
        for i in items
        if i.document.metadata["year"] >= 2010 and i.document.metadata["breaking"] is True
    ]
    assert reader.document_ids(parse_filter({"year": 1999})) == []
    assert reader.documents(0, 10, parse_filter({"doc_id": "missing"})) == []
    # A replaced document is listed under its new metadata, last; a deleted one not at all.
    first = items[0]
    moved = IndexedDocument(
        Document(first.document.doc_id, "Moved", first.document.text, {"section": "weather"}),
        first.passages,
        first.vectors,
    )
    store.put([moved])
    store.delete([expected[1]])
    store.refresh()
    reader = store.reader()
    assert reader.document_ids(world) == expected[2:]
    assert reader.count_documents(world) == len(expected) - 2
    assert reader.document_ids(parse_filter({"section": "weather"})) == [first.document.doc_id]
    assert reader.document_ids()[-1] == first.document.doc_id


# -- writes -----------------------------------------------------------------------------------


def test_a_put_is_durable_at_once_and_searchable_after_a_refresh(make_store: StoreFactory) -> None:
    items = corpus()
    store = make_store(items[:40])
    before = store.reader()
    written = store.put(items[40:43])
    assert written.existed == (False, False, False)
    assert written.seq == numbered(store, 3)  # one per document
    assert store.get("doc-041") is not None  # real-time get
    assert store.wait_for(written.seq, 10)
    reader = store.reader()
    assert reader.seq == numbered(store, 3)
    assert reader.document_count == 43
    _, ids = reader.vector_search(items[41].vectors[0:1], 1)
    assert keys(store, ids) == [("doc-041", 0)]
    # A reader is a point in time: the one from before still does not see the writes.
    assert before.document_count == 40
    _, seen_before = before.vector_search(items[41].vectors[0:1], 100)
    assert "doc-041" not in {before.passage(int(i)).doc_id for i in seen_before}


def test_a_replaced_document_is_found_only_by_its_new_content(make_store: StoreFactory) -> None:
    items = corpus()
    store = make_store(items)
    old = items[5]
    rng = np.random.default_rng(11)
    text = "storm storm over the harbour"
    new = IndexedDocument(
        Document(old.document.doc_id, "Replaced", text, {"section": "weather"}),
        (Passage(old.document.doc_id, 0, 0, len(text), text),),
        unit(rng, 1),
    )
    written = store.put([new])
    assert written.existed == (True,)
    store.refresh()
    reader = store.reader()
    assert reader.document_count == len(items)
    _, ids = reader.vector_search(old.vectors[0:1], 1000)
    assert ("doc-005", 1) not in keys(store, ids)
    assert keys(store, reader.vector_search(new.vectors, 1)[1]) == [("doc-005", 0)]
    _, by_filter = reader.vector_search(new.vectors, 10, parse_filter({"section": "weather"}))
    assert keys(store, by_filter) == [("doc-005", 0)]
    old_section = parse_filter({"section": "world", "doc_id": "doc-005"})
    assert not reader.vector_search(new.vectors, 10, old_section)[1].size
    stored = store.get("doc-005")
    assert stored is not None
    assert stored.document.title == "Replaced"
    assert [s.document.doc_id for s in reader.documents(0, 1000)][-1] == "doc-005"  # moved last


def test_a_delete_is_gone_from_every_search_and_listing_once_it_returns(
    make_store: StoreFactory,
) -> None:
    items = corpus()
    store = make_store(items)
    written = store.delete(["doc-009", "nope"])
    assert written.existed == (True, False)
    assert written.seq == numbered(store, 1)  # deleting nothing is not a write
    reader = store.reader()  # no refresh: deletes publish themselves
    assert reader.document_count == len(items) - 1
    assert "doc-009" not in {s.document.doc_id for s in reader.documents(0, 1000)}
    _, ids = reader.vector_search(items[9].vectors[0:1], 1000)
    assert all(doc_id != "doc-009" for doc_id, _ in keys(store, ids))
    searched = keyword_search(store, " ".join(WORDS), 1000)
    assert searched is None or all(doc_id != "doc-009" for doc_id, _ in keys(store, searched[1]))
    assert store.get("doc-009") is None
    assert store.delete(["doc-009"]).existed == (False,)


def with_section(item: IndexedDocument, section: str) -> IndexedDocument:
    document = item.document
    return replace(item, document=replace(document, metadata={"section": section}))


def test_a_guarded_put_never_replaces_a_document_outside_its_guard(
    make_store: StoreFactory,
) -> None:
    items = corpus()
    store = make_store(items[:10])
    tenant = parse_filter({"section": "tenant"})
    inside = with_section(items[10], "tenant")
    assert store.put([inside], guard=tenant).existed == (False,)  # a new id: allowed
    assert store.put([inside], guard=tenant).existed == (True,)  # its own: replaced
    assert store.wait_for(numbered(store, 2), 10)
    seq = store.reader().seq
    taken = with_section(items[3], "tenant")  # doc-003 is in another section
    fresh = with_section(items[11], "tenant")
    with pytest.raises(OutOfScopeError, match="'doc-003' is taken"):
        store.put([fresh, taken], guard=tenant)
    assert store.get("doc-011") is None  # nothing of the refused put was written
    stored = store.get("doc-003")
    assert stored is not None
    assert stored.document == items[3].document
    store.refresh()
    assert store.reader().seq == seq
    # A document another writer has just created is another's too.
    assert store.put([with_section(items[12], "other")]).existed == (False,)
    with pytest.raises(OutOfScopeError):
        store.put([with_section(items[12], "tenant")], guard=tenant)


def test_a_guarded_delete_leaves_documents_outside_its_guard_alone(
    make_store: StoreFactory,
) -> None:
    items = corpus()
    store = make_store(items[:10])
    section = items[2].document.metadata["section"]
    guard = parse_filter({"section": section})
    outside = next(
        i.document.doc_id for i in items[:10] if i.document.metadata["section"] != section
    )
    written = store.delete(["doc-002", outside, "nope"], guard=guard)
    assert written.existed == (True, False, False)
    assert store.get("doc-002") is None
    assert store.get(outside) is not None
    assert outside in store.reader().document_ids()


def test_writes_survive_closing_and_reopening(make_store: StoreFactory) -> None:
    items = corpus()
    store = make_store(items[:50])
    store.put(items[50:55])
    store.delete(["doc-001", "doc-052"])
    query = unit(np.random.default_rng(8), 1)
    store.refresh()
    ranking = keys(store, store.reader().vector_search(query, 20)[1])
    seq = numbered(store, 7)
    store = reopen(store)
    try:
        reader = store.reader()
        assert reader.seq == seq
        assert reader.document_count == 50 + 5 - 2
        assert keys(store, reader.vector_search(query, 20)[1]) == ranking
        assert store.get("doc-052") is None
        assert store.get("doc-053") is not None
        assert store.put(items[55:56]).seq == numbered(store, 8)  # numbering goes on
    finally:
        store.close()


def test_a_read_only_store_refuses_writes_and_still_reads(make_store: StoreFactory) -> None:
    store = make_store(corpus(5))
    store.close()
    reading = type(store).open(store.location, writable=False)
    try:
        assert reading.read_only is not None
        with pytest.raises(ReadOnlyStoreError):
            reading.put(corpus(6)[5:])
        with pytest.raises(ReadOnlyStoreError):
            reading.delete(["doc-001"])
        assert reading.reader().document_count == 5
    finally:
        reading.close()


def test_a_filter_object_and_its_json_select_the_same(make_store: StoreFactory) -> None:
    store = make_store(corpus())
    condition = parse_filter({"year": {"gte": 2020}})
    assert condition is not None
    again = parse_filter(condition.to_json())
    query = unit(np.random.default_rng(2), 1)
    assert store.reader().vector_search(query, 50, again)[1].tolist() == (
        store.reader().vector_search(query, 50, condition)[1].tolist()
    )
    assert isinstance(Filter.of_doc_ids(["doc-001"]), Filter)


def test_a_document_whose_vectors_do_not_fit_is_refused_before_anything_is_written(
    make_store: StoreFactory,
) -> None:
    store = make_store(corpus(3))
    (good,) = corpus(4)[3:]
    bad = IndexedDocument(good.document, good.passages, np.ones((1, DIM + 1), dtype=np.float32))
    with pytest.raises(ValueError, match="vectors of shape"):
        store.put([good, bad])
    assert store.get(good.document.doc_id) is None
    assert store.reader().seq == 0


def test_filters_are_type_strict_and_take_any_string(make_store: StoreFactory) -> None:
    """1 never equals true or "1"; quotes, backslashes, newlines and non-ASCII text match as
    written (a store that builds query expressions must escape them)."""
    rng = np.random.default_rng(4)
    tricky = ['say "yes"', "back\\slash", "two\nlines", "Zürich – 東京", "1"]
    values: list[object] = [*tricky, 1, 1.0, True, False, 0]
    items = []
    for number, value in enumerate(values):
        base = article(number, rng, passages=1)
        document = Document(base.document.doc_id, "", base.document.text, {"v": value})  # type: ignore[dict-item]
        items.append(IndexedDocument(document, base.passages, base.vectors))
    store = make_store(items)
    query = unit(np.random.default_rng(6), 1)

    def matching(raw: dict[str, object]) -> list[str]:
        _, ids = store.reader().vector_search(query, 100, parse_filter(raw))
        return sorted(doc_id for doc_id, _ in keys(store, ids))

    for number, value in enumerate(tricky):
        assert matching({"v": value}) == [f"doc-{number:03d}"], value
    assert matching({"v": 1}) == ["doc-005", "doc-006"]  # 1 and 1.0, not true, not "1"
    assert matching({"v": True}) == ["doc-007"]
    assert matching({"v": False}) == ["doc-008"]
    assert matching({"v": 0}) == ["doc-009"]
    assert matching({"v": {"gte": 0}}) == ["doc-005", "doc-006", "doc-009"]  # numbers only
    assert matching({"v": ["1", True]}) == ["doc-004", "doc-007"]


# -- reindexing ------------------------------------------------------------------------------


def rebuilt(document: Document) -> IndexedDocument:
    """A document as the "new settings" of the reindex tests prepare it: one passage, and a
    vector drawn from its text (the same text, the same vector)."""
    seed = zlib.crc32(document.text.encode())
    passage = Passage(document.doc_id, 0, 0, len(document.text), document.text)
    return IndexedDocument(document, (passage,), unit(np.random.default_rng(seed), 1))


def reindexed_manifest(store: Store) -> Manifest:
    chunking = replace(store.manifest.chunking, max_tokens=store.manifest.chunking.max_tokens + 1)
    return store.manifest.model_copy(update={"chunking": chunking, "build_id": uuid.uuid4().hex})


def test_a_reindex_rebuilds_every_live_document_and_keeps_the_writes_made_meanwhile(
    make_store: StoreFactory,
) -> None:
    items = corpus(40)
    store = make_store(items)
    epoch = store.epoch
    rng = np.random.default_rng(21)
    text = "harvest storm in the valley"
    late = IndexedDocument(
        Document("doc-late", "Late", text, {"section": "world"}),
        (Passage("doc-late", 0, 0, len(text), text),),
        unit(rng, 1),
    )
    replaced = IndexedDocument(
        Document("doc-003", "Replaced", text + " again", {}),
        (Passage("doc-003", 0, 0, len(text) + 6, text + " again"),),
        unit(rng, 1),
    )
    calls: list[int] = []
    switched: list[int] = []

    def prepare(documents: Sequence[Document]) -> list[IndexedDocument]:
        if not calls:  # writes while the rebuild runs, prepared the old way
            store.put([late, replaced])
            store.delete(["doc-007"])
        calls.append(len(documents))
        return [rebuilt(d) for d in documents]

    target = reindexed_manifest(store)
    manifest = store.reindex(
        Rebuild(target, prepare, on_switch=lambda: switched.append(store.epoch))
    )
    assert switched == [epoch]  # at the switch, before the epoch moves
    assert store.epoch != epoch
    assert manifest.chunking == target.chunking
    assert store.manifest.chunking == target.chunking
    assert manifest.counts.documents == 40  # 40 + late - deleted
    store.refresh()
    reader = store.reader()
    assert reader.document_count == 40
    assert reader.passage_count == 40  # one passage each now
    live = {s.document.doc_id for s in reader.documents(0, 1000)}
    assert "doc-late" in live
    assert "doc-007" not in live
    assert store.get("doc-007") is None
    stored = store.get("doc-003")
    assert stored is not None
    assert stored.document.title == "Replaced"
    assert len(stored.passages) == 1
    # Every document is searchable by its new vector, and only by that.
    for doc_id in ("doc-late", "doc-003", "doc-010"):
        found = store.get(doc_id)
        assert found is not None
        query = rebuilt(found.document).vectors
        assert keys(store, reader.vector_search(query, 1)[1]) == [(doc_id, 0)]
    _, old_hits = reader.vector_search(items[10].vectors[1:2], 1000)
    assert ("doc-010", 1) not in keys(store, old_hits)
    # A write prepared for the version before is refused, to be prepared again.
    with pytest.raises(StaleWriteError):
        store.put([rebuilt(late.document)], epoch=epoch)
    assert store.put([rebuilt(late.document)], epoch=store.epoch).existed == (True,)


def test_a_failed_reindex_leaves_the_old_version_serving_and_writable(
    make_store: StoreFactory,
) -> None:
    items = corpus(40)
    store = make_store(items)
    before = store.manifest
    query = unit(np.random.default_rng(5), 1)
    ranking = keys(store, store.reader().vector_search(query, 10)[1])

    def prepare(documents: Sequence[Document]) -> list[IndexedDocument]:
        bad = rebuilt(documents[0])
        wrong = np.ones((1, DIM + 1), dtype=np.float32)  # a model of another dimension
        return [IndexedDocument(bad.document, bad.passages, wrong)] + [
            rebuilt(d) for d in documents[1:]
        ]

    with pytest.raises(ReindexError):
        store.reindex(Rebuild(reindexed_manifest(store), prepare))
    assert store.manifest == before
    assert store.epoch == 0
    assert keys(store, store.reader().vector_search(query, 10)[1]) == ranking
    assert store.put(corpus(41)[40:]).existed == (False,)
    store = reopen(store)
    try:
        assert store.manifest.build_id == before.build_id
        assert store.reader().document_count == 41
    finally:
        store.close()
