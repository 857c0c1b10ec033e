"""The benchmark's own arithmetic: percentiles, tables, synthetic data and recall."""

from __future__ import annotations

import itertools
import os
import time
from pathlib import Path

import numpy as np
import pytest

from bench.milvus import (
    agreement_at,
    cpu_seconds,
    milvus_missing,
    milvus_spec,
    parse_milvus_spec,
    store_ratios,
    timed_methods,
    total_rss_mb,
)
from bench.scale import exact_top, measure, recall_at, replicate
from bench.stats import percentiles_ms, rss_mb, table
from tests.utils.fakes import HashingEmbedder


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


def test_recall_counts_the_true_top_k_found() -> None:
    truth = np.array([[1, 2, 3], [4, 5, 6]], dtype=np.int64)
    assert recall_at([[3, 2, 1], [4, 9, 8]], truth, 3) == (1.0 + 1 / 3) / 2
    assert recall_at([[1, 2, 3, 4], [4, 5, 6, 7]], truth, 2) == 1.0  # only the first k count


def test_agreement_compares_each_list_with_its_reference() -> None:
    reference = [[("a", 0), ("b", 1)], [("c", 0), ("d", 0)]]
    assert agreement_at([[("b", 1), ("a", 0)], [("c", 0), ("x", 0)]], reference) == 0.75
    assert agreement_at([[]], [[]]) != agreement_at([[]], [[]])  # nothing to agree on: NaN


def test_total_rss_adds_processes_and_skips_those_gone() -> None:
    mine = rss_mb(os.getpid())
    assert total_rss_mb([os.getpid(), 2**22 + 1]) == mine  # beyond pid_max: no such process
    assert total_rss_mb([]) == 0.0


def test_the_default_milvus_scale_rows_come_from_the_store_settings() -> None:
    assert milvus_spec("HNSW", "M=16,efConstruction=200,ef=128") == (
        "HNSW@M=16,efConstruction=200|ef=64;ef=128;ef=256"
    )
    assert milvus_spec("HNSW", "M=16,ef=16") == "HNSW@M=16|ef=10;ef=16;ef=32"  # ef >= k
    assert milvus_spec("IVF_FLAT", "nlist=1024,nprobe=16") == (
        "IVF_FLAT@nlist=1024|nprobe=8;nprobe=16;nprobe=32"
    )
    assert milvus_spec("FLAT", "") == "FLAT@|"


def test_milvus_specs_parse_into_build_and_search_parameters() -> None:
    assert parse_milvus_spec("HNSW@M=16,efConstruction=200|ef=64;ef=128") == (
        "HNSW",
        {"M": 16, "efConstruction": 200},
        [{"ef": 64}, {"ef": 128}],
    )
    assert parse_milvus_spec("FLAT") == ("FLAT", {}, [{}])
    with pytest.raises(ValueError, match="search parameters go after"):
        parse_milvus_spec("HNSW@M=16,ef=64")
    with pytest.raises(ValueError, match="build parameters go after"):
        parse_milvus_spec("HNSW|M=16")
    with pytest.raises(ValueError, match="not one of"):
        parse_milvus_spec("DISKANN|")


def test_store_ratios_put_each_milvus_row_over_faiss() -> None:
    rows = [
        {"store": "faiss", "consistency": "-", "c1_p50_ms": 10.0, "c16_requests_per_s": 80.0},
        {"store": "milvus", "consistency": "Session", "c1_p50_ms": 15.0},
        {"store": "milvus", "consistency": "Strong", "c1_p50_ms": 210.0, "c16_requests_per_s": 40},
    ]
    ratios = store_ratios(rows)
    assert ratios["milvus/Session c1_p50_ms"] == 1.5
    assert ratios["milvus/Session c16_requests_per_s"] is None  # not measured
    assert ratios["milvus/Strong c1_p50_ms"] == 21.0
    assert ratios["milvus/Strong c16_requests_per_s"] == 0.5
    assert not any(name.startswith("faiss") or "agreement" in name for name in ratios)


def test_milvus_rows_are_skipped_with_a_reason_without_the_server(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("MILVUS_VENV", str(tmp_path / "no-venv"))
    reason = milvus_missing()
    assert reason is not None
    assert f"{tmp_path}/no-venv/bin/milvus-server not found" in reason
    assert "make install-milvus" in reason


def test_timed_methods_count_calls_and_restore_the_class() -> None:
    class Client:
        def search(self, x: int) -> int:
            time.sleep(0.01)  # what is timed: at least 10 ms a call
            return x + 1

        def insert(self) -> None:
            raise RuntimeError("refused")

    original = Client.__dict__["search"]
    with timed_methods(Client, ["search", "insert"]) as timings:
        client = Client()
        assert client.search(1) == 2
        assert client.search(2) == 3
        with pytest.raises(RuntimeError):
            client.insert()
    assert timings["search"]["calls"] == 2
    assert timings["insert"]["calls"] == 1  # a failed call counts too
    assert 0.02 <= timings["search"]["seconds"] < 5  # two calls of at least 10 ms
    assert Client.__dict__["search"] is original


def test_cpu_seconds_of_this_process_grow_with_work() -> None:
    before = cpu_seconds([os.getpid(), 2**22 + 1])
    sum(i * i for i in range(3_000_000))
    assert cpu_seconds([os.getpid()]) > before


def test_the_micro_figures_are_measured() -> None:
    from bench.micro import encoder_sharing, filter_mask

    mask = filter_mask(documents=1000, repeats=3)
    assert mask["documents"] == 1000
    assert 0 < mask["p50_ms"] <= mask["p99_ms"]
    shared = encoder_sharing(HashingEmbedder(), passages=12)
    assert shared["passages"] == 12
    assert shared["write_alone_seconds"] > 0
    assert shared["query_wait_p50_ms"] > 0
