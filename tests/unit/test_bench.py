"""The benchmark's own arithmetic: percentiles, tables, synthetic data and recall."""

from __future__ import annotations

import itertools
import os

import numpy as np

from bench.scale import exact_top, measure, replicate
from bench.stats import percentiles_ms, rss_mb, table


def test_percentiles_are_reported_in_milliseconds() -> None:
    stats = percentiles_ms([0.001 * i for i in range(1, 101)])
    assert stats == {"p50_ms": 50.5, "p90_ms": 90.1, "p99_ms": 99.01}


def test_rss_of_this_process_is_plausible() -> None:
    assert 10 < rss_mb(os.getpid()) < 20_000


def test_table_aligns_columns_and_shows_missing_values() -> None:
    text = table([{"a": 1, "b": 2.345}, {"a": 10}], ["a", "b"])
    assert text.splitlines() == [" a     b", " 1  2.35", "10     -"]


def test_replicated_vectors_are_unit_length_and_near_their_source() -> None:
    base = np.eye(4, 16, dtype=np.float32)
    vectors = replicate(base, 40, noise=0.01)
    assert vectors.shape == (40, 16)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, rtol=1e-5)
    assert (np.argmax(vectors @ base.T, axis=1) == np.arange(40) % 4).all()


def test_measure_reports_perfect_recall_for_exact_search() -> None:
    vectors = replicate(
        np.random.default_rng(0).normal(size=(50, 16)).astype(np.float32), 500, 0.05
    )
    queries = replicate(vectors[:10], 20, 0.05, seed=2)
    truth = exact_top(vectors, queries, 10)
    [row] = measure("Flat", vectors, queries, truth, [""])
    assert row["recall_at_10"] == 1.0
    assert row["index"] == "Flat"
    assert row["p50_ms"] > 0
    rows = measure("IVF8,Flat", vectors, queries, truth, ["nprobe=1", "nprobe=8"])
    assert [r["search_params"] for r in rows] == ["nprobe=1", "nprobe=8"]
    assert rows[1]["recall_at_10"] == 1.0  # probing every list is exhaustive
    assert rows[0]["recall_at_10"] <= rows[1]["recall_at_10"]
    [hnsw] = measure(
        "HNSW8", vectors, queries, truth, ["efSearch=64"], build_params="efConstruction=80"
    )
    assert hnsw["index"] == "HNSW8 (efConstruction=80)"
    assert hnsw["recall_at_10"] > 0.5


def test_mixed_vectors_are_distinct_unit_vectors_between_their_sources() -> None:
    base = np.eye(10, 16, dtype=np.float32)
    vectors = replicate(base, 300, noise=0.0, mix=True)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, rtol=1e-5)
    assert (vectors[:, 10:] == 0).all()  # no noise: they stay in the span of their sources
    assert len(np.unique(vectors.round(4), axis=0)) > 250


def test_the_soak_mix_is_reproducible_and_has_every_kind_of_request() -> None:
    from bench.soak import mixed_requests
    from indexer.types import Document

    documents = [Document(f"d{i}", f"Title {i}", f"Text number {i}.") for i in range(5)]
    first = list(itertools.islice(mixed_requests(documents, ["a", "b", "c", "d"]), 2000))
    again = list(itertools.islice(mixed_requests(documents, ["a", "b", "c", "d"]), 2000))
    assert first == again
    kinds = {(r.method, r.url.split("/")[1]) for r in first}
    assert kinds == {
        ("GET", "search"),
        ("POST", "search"),
        ("GET", "documents"),
        ("PUT", "documents"),
        ("DELETE", "documents"),
    }
    assert any(r.url == "/search/batch" for r in first)
    writes = [r for r in first if r.method in ("PUT", "DELETE")]
    assert 0.1 < len(writes) / len(first) < 0.25  # the mix stays mostly reads
