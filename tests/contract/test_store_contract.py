"""The contract every vector store must meet; add a store to ``store_class`` and it runs here."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from indexer.stores import STORES, VectorStore, store_class

STORE_KINDS = sorted(STORES)
DIM = 8


def unit_vectors(n: int, seed: int = 0) -> np.ndarray:
    vectors = np.random.default_rng(seed).normal(size=(n, DIM)).astype(np.float32)
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


@pytest.fixture(params=STORE_KINDS)
def store(request: pytest.FixtureRequest) -> VectorStore:
    return store_class(request.param).create(DIM)


def filled(store: VectorStore, n: int = 50) -> np.ndarray:
    vectors = unit_vectors(n)
    store.add(np.arange(100, 100 + n, dtype=np.int64), vectors)
    return vectors


def test_starts_empty_and_counts_what_is_added(store: VectorStore) -> None:
    assert len(store) == 0
    assert store.dimension == DIM
    filled(store, 20)
    assert len(store) == 20


def test_search_returns_exact_inner_product_ranking_with_caller_ids(store: VectorStore) -> None:
    vectors = filled(store)
    query = unit_vectors(1, seed=1)
    scores, ids = store.search(query, 5)
    expected = np.argsort(-(vectors @ query[0]))[:5] + 100
    assert ids.shape == scores.shape == (1, 5)
    assert ids[0].tolist() == expected.tolist()
    np.testing.assert_allclose(scores[0], np.sort(vectors @ query[0])[::-1][:5], rtol=1e-5)


def test_a_stored_vector_finds_itself_first(store: VectorStore) -> None:
    vectors = filled(store)
    scores, ids = store.search(vectors[[7, 30]], 1)
    assert ids[:, 0].tolist() == [107, 130]
    np.testing.assert_allclose(scores[:, 0], [1.0, 1.0], rtol=1e-5)


def test_asking_for_more_than_stored_pads_with_minus_one(store: VectorStore) -> None:
    filled(store, 3)
    _, ids = store.search(unit_vectors(1), 5)
    assert sorted(ids[0][:3].tolist()) == [100, 101, 102]
    assert ids[0][3:].tolist() == [-1, -1]


def test_allowed_restricts_the_search(store: VectorStore) -> None:
    filled(store)
    _, ids = store.search(unit_vectors(1, seed=2), 10, allowed=[105, 110, 149])
    assert sorted(i for i in ids[0].tolist() if i >= 0) == [105, 110, 149]
    _, none = store.search(unit_vectors(1, seed=2), 3, allowed=[])
    assert none[0].tolist() == [-1, -1, -1]


def test_empty_store_searches_to_nothing(store: VectorStore) -> None:
    _, ids = store.search(unit_vectors(2), 3)
    assert ids.tolist() == [[-1, -1, -1], [-1, -1, -1]]


def test_remove_drops_ids_and_reports_how_many_were_there(store: VectorStore) -> None:
    vectors = filled(store)
    assert store.remove(np.array([107, 999], dtype=np.int64)) == 1
    assert len(store) == 49
    _, ids = store.search(vectors[[7]], 3)
    assert 107 not in ids[0].tolist()


def test_wrong_dimension_is_rejected(store: VectorStore) -> None:
    with pytest.raises(ValueError, match="shape"):
        store.add(np.array([1], dtype=np.int64), np.ones((1, DIM + 1), dtype=np.float32))
    with pytest.raises(ValueError, match="ids"):
        store.add(np.array([1, 2], dtype=np.int64), np.ones((1, DIM), dtype=np.float32))


def test_save_and_load_round_trip(store: VectorStore, tmp_path: Path) -> None:
    vectors = filled(store)
    store.save(tmp_path)
    loaded = type(store).load(tmp_path)
    assert len(loaded) == len(store)
    assert loaded.dimension == DIM
    query = unit_vectors(1, seed=3)
    assert loaded.search(query, 10)[1].tolist() == store.search(query, 10)[1].tolist()
    assert store_class(store.kind) is type(store)
    del vectors


@pytest.mark.parametrize("kind", STORE_KINDS)
def test_an_unknown_spec_or_parameter_is_a_value_error(kind: str) -> None:
    """What the builder turns into a one-line message, before any embedding work."""
    with pytest.raises(ValueError, match="no-such-index"):
        store_class(kind).create(DIM, "no-such-index")
    with pytest.raises(ValueError, match="no_such_parameter"):
        store_class(kind).create(DIM).tune("no_such_parameter=3")


def test_unknown_store_kind_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="unknown vector store 'nope'"):
        store_class("nope")
