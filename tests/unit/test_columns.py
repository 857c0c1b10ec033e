from __future__ import annotations

import threading
import time

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from indexer.filters import Condition, Filter, parse_filter
from indexer.metadata import Metadata, MetadataValue
from indexer.stores.faiss.columns import MetadataColumns

Document = tuple[str, Metadata]


def parsed(raw: object) -> Filter:
    result = parse_filter(raw)
    assert result is not None
    return result


def columns_of(documents: list[Document]) -> MetadataColumns:
    columns = MetadataColumns()
    for doc_id, metadata in documents:
        columns.append(doc_id, metadata)
    return columns


def expected(documents: list[Document], filter: Filter) -> list[bool]:
    return [filter.matches(doc_id, metadata) for doc_id, metadata in documents]


DOCUMENTS: list[Document] = [
    ("a.txt", {"section": "world", "year": 2019, "published": "2019-05-01", "breaking": True}),
    ("b.txt", {"section": "sport", "year": 2020.0, "published": "2019-05-01T23:00+02:00"}),
    ("c.txt", {"section": "world", "year": True, "published": "2021-01-01T00:00:00Z"}),
    ("d.txt", {"year": "2019", "published": "soon", "breaking": False}),
    ("e.txt", {}),
    ("f.txt", {"section": 1, "year": 2021, "published": 20190501}),
]


def test_append_numbers_documents_from_zero() -> None:
    columns = MetadataColumns()
    assert len(columns) == 0
    assert [columns.append(doc_id, metadata) for doc_id, metadata in DOCUMENTS] == list(
        range(len(DOCUMENTS))
    )
    assert len(columns) == len(DOCUMENTS)
    assert columns.doc_id(2) == "c.txt"
    with pytest.raises(IndexError):
        columns.doc_id(len(DOCUMENTS))


@pytest.mark.parametrize(
    ("raw", "matching"),
    [
        ({"section": "world"}, ["a.txt", "c.txt"]),
        ({"section": 1}, ["f.txt"]),
        ({"section": True}, []),
        ({"year": 2020}, ["b.txt"]),
        ({"year": True}, ["c.txt"]),
        ({"year": "2019"}, ["d.txt"]),
        ({"year": [2019, 2021, "2019"]}, ["a.txt", "d.txt", "f.txt"]),
        ({"year": {"gte": 2019.5}}, ["b.txt", "f.txt"]),
        ({"year": {"gt": 2019, "lt": 2021}}, ["b.txt"]),
        ({"year": {"gt": 2021, "lt": 2019}}, []),
        ({"published": {"gte": "2019-05-01", "lt": "2019-05-02"}}, ["a.txt", "b.txt"]),
        ({"published": {"gt": "2019-05-01T21:00:00Z"}}, ["c.txt"]),
        ({"published": {"gte": 0}}, ["f.txt"]),
        ({"published": "2019-05-01"}, ["a.txt"]),
        ({"breaking": False}, ["d.txt"]),
        ({"breaking": [True, False]}, ["a.txt", "d.txt"]),
        ({"missing": "x"}, []),
        ({"missing": {"gte": 0}}, []),
        ({"doc_id": ["e.txt", "b.txt", "zzz"]}, ["b.txt", "e.txt"]),
        ({"doc_id": "a.txt", "section": "world", "year": {"lte": 2019}}, ["a.txt"]),
        ({"section": {"eq": "world", "in": ["sport"]}}, []),
        ({"section": ["a", "b", "c", "d", "e", "world"]}, ["a.txt", "c.txt"]),
    ],
)
def test_mask_picks_the_matching_documents(raw: object, matching: list[str]) -> None:
    columns = columns_of(DOCUMENTS)
    filter = parsed(raw)
    mask = columns.mask(filter, len(columns))
    assert mask.dtype == np.bool_
    assert [DOCUMENTS[i][0] for i in np.flatnonzero(mask)] == matching
    assert mask.tolist() == expected(DOCUMENTS, filter)


def test_many_strings_wanted_at_once() -> None:
    # Past a few values a string condition uses a lookup table over the key's distinct strings;
    # documents without the key (or with another type under it) must stay out of it.
    docs: list[Document] = [(f"d{i}", {"tag": f"t{i}"}) for i in range(8)]
    docs += [("none", {}), ("number", {"tag": 3}), ("d7", {"tag": "t7"})]
    columns = columns_of(docs)
    filter = parsed({"tag": ["t3", "t4", "t5", "t6", "t7", "t99"]})
    assert np.flatnonzero(columns.mask(filter, len(docs))).tolist() == [3, 4, 5, 6, 7, 10]
    by_id = parsed({"doc_id": ["d1", "d2", "d5", "d6", "d7"]})
    assert np.flatnonzero(columns.mask(by_id, len(docs))).tolist() == [1, 2, 5, 6, 7, 10]


def test_mask_of_a_prefix_and_bad_n() -> None:
    columns = columns_of(DOCUMENTS)
    filter = parsed({"section": "world"})
    assert columns.mask(filter, 2).tolist() == [True, False]
    assert columns.mask(filter, 0).tolist() == []
    with pytest.raises(ValueError, match="n must be between 0 and 6, not 7"):
        columns.mask(filter, 7)
    with pytest.raises(ValueError, match="not -1"):
        columns.mask(filter, -1)


def test_take_keeps_those_documents_in_that_order() -> None:
    columns = columns_of(DOCUMENTS)
    numbers = [5, 0, 2, 0]
    taken = columns.take(numbers)
    assert len(taken) == 4
    assert [taken.doc_id(i) for i in range(4)] == ["f.txt", "a.txt", "c.txt", "a.txt"]
    kept = [DOCUMENTS[i] for i in numbers]
    for raw in [{"section": "world"}, {"year": {"gte": 2019}}, {"doc_id": "a.txt"}]:
        filter = parsed(raw)
        assert taken.mask(filter, 4).tolist() == expected(kept, filter)
    # Appending to the compact copy numbers on from its end and leaves the original alone.
    assert taken.append("g.txt", {"section": "world"}) == 4
    assert taken.mask(parsed({"section": "world"}), 5).tolist() == [False, True, True, True, True]
    assert len(columns) == len(DOCUMENTS)


def test_take_drops_keys_and_strings_only_the_dropped_documents_had() -> None:
    columns = columns_of(DOCUMENTS)
    taken = columns.take(np.array([1, 4]))
    assert taken.mask(parsed({"breaking": [True, False]}), 2).tolist() == [False, False]
    assert taken.mask(parsed({"section": "world"}), 2).tolist() == [False, False]
    assert taken.mask(parsed({"section": "sport"}), 2).tolist() == [True, False]
    empty = columns.take([])
    assert len(empty) == 0
    assert empty.mask(parsed({"section": "sport"}), 0).tolist() == []
    assert empty.append("x", {"section": "sport"}) == 0
    assert empty.mask(parsed({"section": "sport"}), 1).tolist() == [True]


def test_take_rejects_numbers_out_of_range() -> None:
    columns = columns_of(DOCUMENTS)
    with pytest.raises(IndexError):
        columns.take([len(DOCUMENTS)])
    with pytest.raises(IndexError):
        columns.take([-1])


def test_appends_after_a_snapshot_do_not_change_its_masks() -> None:
    columns = columns_of(DOCUMENTS)
    filters = [
        parsed({"section": "world"}),
        parsed({"year": {"gte": 2019}}),
        parsed({"published": {"lt": "2030-01-01"}}),
        parsed({"breaking": True}),
        parsed({"fresh": "new"}),  # a key first seen after the snapshot
        parsed({"section": "brand-new-string"}),  # a string first seen after the snapshot
        parsed({"year": {"gte": "2000-01-01"}}),  # dates under a key that so far has none
        parsed({"breaking": 1}),  # numbers under a key that so far has only booleans
        parsed({"doc_id": ["a.txt", "later.txt"]}),
    ]
    n = len(columns)
    before = [columns.mask(filter, n) for filter in filters]
    held = [mask.copy() for mask in before]
    # Enough appends to grow every buffer several times, all matching the filters above.
    for i in range(1000):
        columns.append(
            "later.txt" if i % 2 else "a.txt",
            {
                "section": "brand-new-string" if i % 3 else "world",
                "year": "2024-01-01" if i % 5 == 0 else 2024,
                "published": "2029-12-31",
                "breaking": 1 if i % 7 == 0 else True,
                "fresh": "new",
            },
        )
    for filter, mask_then, held_then in zip(filters, before, held, strict=True):
        assert columns.mask(filter, n).tolist() == held_then.tolist()
        assert mask_then.tolist() == held_then.tolist()  # masks handed out are not written to
        # ...and the new documents do match, so the unchanged prefix is not a vacuous pass.
        assert columns.mask(filter, len(columns))[n:].any()


def test_a_reader_holding_columns_while_the_writer_appends_sees_a_stable_prefix() -> None:
    docs: list[Document] = [
        (f"d{i}", {"n": i % 100, "s": f"s{i % 13}", **({"late": True} if i > 5000 else {})})
        for i in range(20_000)
    ]
    watched = [
        parsed({"n": {"gte": 10, "lt": 20}, "s": ["s1", "s2"]}),
        parsed({"late": True}),
        parsed({"doc_id": ["d3", "d7000", "d19999"]}),
    ]
    truth = [np.array(expected(docs, filter)) for filter in watched]
    columns = MetadataColumns()
    done = threading.Event()
    failures: list[BaseException] = []  # the writer's: a thread cannot fail the test

    def write() -> None:
        try:
            for i, (doc_id, metadata) in enumerate(docs):
                columns.append(doc_id, metadata)
                if i % 500 == 0:
                    time.sleep(0)  # let the reader in mid-way, not only before or after
        except BaseException as error:
            failures.append(error)
        finally:
            done.set()

    writer = threading.Thread(target=write)
    writer.start()
    snapshots: set[int] = set()
    deadline = time.monotonic() + 60
    while not done.is_set():
        assert time.monotonic() < deadline, "the writer did not finish"
        n = len(columns)
        for filter, full in zip(watched, truth, strict=True):
            assert np.array_equal(columns.mask(filter, n), full[:n])
        snapshots.add(n)
    writer.join(10)
    assert failures == []
    assert any(0 < n < len(docs) for n in snapshots)  # some reads overlapped the writes
    assert len(columns) == len(docs)
    assert np.array_equal(columns.mask(watched[1], len(columns)), truth[1])


def _no_per_document_loop(*args: object) -> bool:
    raise AssertionError("a filter was evaluated document by document")


def test_scale_200k_documents_three_matches(monkeypatch: pytest.MonkeyPatch) -> None:
    columns = MetadataColumns()
    rare = {17, 100_003, 199_999}
    sections = ["world", "sport", "business", "science", "arts"]
    for i in range(200_000):
        section = "rare" if i in rare else sections[i % 5]
        columns.append(f"doc{i}.txt", {"section": section, "year": 1990 + i % 35})
    filter = parsed({"section": ["rare", "never"], "year": {"gte": 1990}})
    # Vectorised: never a per-document Python loop (about a second here; ``make bench`` times
    # the mask, well under a millisecond).
    monkeypatch.setattr(Filter, "matches", _no_per_document_loop)
    monkeypatch.setattr(Condition, "matches", _no_per_document_loop)
    mask = columns.mask(filter, len(columns))
    assert np.flatnonzero(mask).tolist() == sorted(rare)


# The property: mask equals Filter.matches, for random documents and filters. Small pools of
# keys and values, so that filters often hit, types mix under one key, and the same instant is
# written several ways.
KEYS = ["a", "b", "c"]
STRINGS = [
    "x",
    "1",
    "2019-05-01",
    "2019-05-01T00:00:00Z",
    "2019-05-01T02:00+02:00",
    "1999-12-31 23:59:59.5",
    "not-a-date",
]
NUMBERS = [0, 1, 1.0, -2.5, 2**53]
DOC_IDS = [f"d{i}" for i in range(6)]

values: st.SearchStrategy[MetadataValue] = st.one_of(
    st.booleans(), st.sampled_from(NUMBERS), st.sampled_from(STRINGS)
)
metadata = st.dictionaries(st.sampled_from(KEYS), values)


@st.composite
def documents(draw: st.DrawFn) -> list[Document]:
    # Up to 150 documents (past the initial capacity, so buffers grow), drawn from a small pool
    # so that the same values recur and filters often match some documents but not all.
    pool = draw(st.lists(st.tuples(st.sampled_from(DOC_IDS), metadata), min_size=1, max_size=12))
    count = draw(st.integers(0, 150))
    chooser = draw(st.randoms(use_true_random=False))
    return [chooser.choice(pool) for _ in range(count)]


number_bounds = st.sampled_from([-3, 0, 0.5, 1, 2**53])
date_bounds = st.sampled_from(
    ["1999-12-31", "2019-05-01", "2019-05-01T00:00:00+00:00", "2019-05-01T01:00"]
)


@st.composite
def conditions(draw: st.DrawFn, scalars: st.SearchStrategy[MetadataValue]) -> object:
    form = draw(st.sampled_from(["scalar", "list", "range", "mixed"]))
    if form == "scalar":
        return draw(scalars)
    if form == "list":
        return draw(st.lists(scalars, min_size=1, max_size=7))  # past the few-values fast path
    operators: dict[str, object] = {}
    bounds = draw(st.sampled_from([number_bounds, date_bounds]))
    for operator in draw(st.sets(st.sampled_from(["gt", "gte", "lt", "lte"]), min_size=1)):
        operators[operator] = draw(bounds)
    if form == "mixed":
        operators["in"] = draw(st.lists(scalars, min_size=1, max_size=4))
    return operators


@st.composite
def filters(draw: st.DrawFn, docs: list[Document]) -> Filter:
    """A filter of one to three fields, its values often taken from ``docs`` so it hits."""
    present = [value for _, metadata in docs for value in metadata.values()]
    scalars = st.one_of(st.sampled_from(present), values) if present else values
    fields = st.sampled_from([*KEYS, *KEYS, "never_seen"])
    raw: dict[str, object] = draw(st.dictionaries(fields, conditions(scalars), max_size=2))
    if draw(st.integers(0, 3)) == 0:
        raw["doc_id"] = draw(st.lists(st.sampled_from([*DOC_IDS, "absent"]), min_size=1))
    if not raw:
        raw["a"] = draw(scalars)
    return parsed(raw)


@settings(max_examples=200, deadline=None)
@given(documents(), st.data())
def test_mask_equals_matches(docs: list[Document], data: st.DataObject) -> None:
    columns = columns_of(docs)
    n = data.draw(st.integers(0, len(docs)), label="n")
    for filter in data.draw(st.lists(filters(docs), min_size=1, max_size=4), label="filters"):
        assert columns.mask(filter, n).tolist() == expected(docs[:n], filter)


@settings(max_examples=100, deadline=None)
@given(documents(), st.data())
def test_take_equals_matches_on_the_taken_documents(
    docs: list[Document], data: st.DataObject
) -> None:
    columns = columns_of(docs)
    numbers = data.draw(
        st.lists(st.integers(0, len(docs) - 1), max_size=40) if docs else st.just([]),
        label="numbers",
    )
    taken = columns.take(numbers)
    kept = [docs[i] for i in numbers]
    assert [taken.doc_id(i) for i in range(len(kept))] == [doc_id for doc_id, _ in kept]
    fs = data.draw(st.lists(filters(docs), min_size=1, max_size=4), label="filters")
    for filter in fs:
        assert taken.mask(filter, len(kept)).tolist() == expected(kept, filter)
    # The compact copy keeps working as a store: append more and compare again.
    extra = data.draw(documents(), label="extra")
    for doc_id, metadata in extra:
        taken.append(doc_id, metadata)
    for filter in fs:
        assert taken.mask(filter, len(taken)).tolist() == expected(kept + extra, filter)
