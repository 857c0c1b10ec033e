from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from indexer.embedding import Vectors
from indexer.query_encoding import (
    WRITE_CHUNK,
    BatchingEmbedder,
    CachingEmbedder,
    WriteEncoder,
    plan_model_calls,
)
from tests.utils.fakes import HashingEmbedder


class SlowEmbedder(HashingEmbedder):
    """Blocks each model call until released, so that callers pile up meanwhile."""

    def __init__(self) -> None:
        super().__init__()
        self.release = threading.Event()
        self.entered = threading.Event()

    def encode(self, texts: list[str], *, batch_size: int = 64, progress: bool = False) -> Vectors:
        self.entered.set()
        self.release.wait(10)
        return super().encode(texts)


def test_the_cache_answers_repeated_texts_without_the_model() -> None:
    model = HashingEmbedder()
    cached = CachingEmbedder(model, size=10)
    first = cached.encode(["alpha", "beta", "alpha"])
    again = cached.encode(["beta", "alpha", "gamma"])
    assert model.encoded == [["alpha", "beta"], ["gamma"]]
    np.testing.assert_array_equal(first[0], again[1])
    np.testing.assert_array_equal(first, model.encode(["alpha", "beta", "alpha"]))


def test_the_cache_evicts_the_least_recently_used_and_can_be_off() -> None:
    model = HashingEmbedder()
    cached = CachingEmbedder(model, size=2)
    for text in ["a", "b", "a", "c", "a", "b"]:
        cached.encode([text])
    assert model.encoded == [["a"], ["b"], ["c"], ["b"]]
    off = CachingEmbedder(model, size=0)
    off.encode(["z"])
    off.encode(["z"])
    assert model.encoded[-2:] == [["z"], ["z"]]


def test_cached_vectors_cannot_be_modified_by_callers() -> None:
    cached = CachingEmbedder(HashingEmbedder(), size=4)
    vector = cached.encode(["alpha"])
    vector[0] += 1  # the stacked result is the caller's own copy
    np.testing.assert_array_equal(cached.encode(["alpha"]), HashingEmbedder().encode(["alpha"]))


def test_a_lone_query_is_encoded_at_once_with_the_same_result() -> None:
    model = HashingEmbedder()
    batcher = BatchingEmbedder(model)
    try:
        np.testing.assert_array_equal(batcher.encode(["alpha"]), model.encode(["alpha"]))
        assert (batcher.batches, batcher.largest_batch) == (1, 1)
    finally:
        batcher.close()


def test_concurrent_queries_share_model_calls_and_each_gets_its_own_vectors() -> None:
    model = SlowEmbedder()
    batcher = BatchingEmbedder(model)
    texts = [f"query number {i}" for i in range(12)]
    try:
        with ThreadPoolExecutor(max_workers=len(texts) + 1) as pool:
            blocker = pool.submit(batcher.encode, ["first"])
            model.entered.wait(5)  # the worker is now busy; the next twelve queue up
            futures = [pool.submit(batcher.encode, [text]) for text in texts]
            deadline = time.monotonic() + 10
            while len(batcher._queries) < len(texts):
                assert time.monotonic() < deadline, "the callers never queued up"
                time.sleep(0.01)
            model.release.set()
            results = [f.result(10) for f in futures]
            blocker.result(10)
        assert (batcher.batches, batcher.largest_batch) == (2, 12)
        for text, vector in zip(texts, results, strict=True):
            np.testing.assert_array_equal(vector, HashingEmbedder().encode([text]))
    finally:
        batcher.close()


def test_model_calls_group_similar_lengths_within_the_padding_budget() -> None:
    lengths = [40, 5, 6, 120, 7, 41, 300]
    calls = plan_model_calls(lengths, budget=128)
    assert sorted(i for call in calls for i in call) == list(range(len(lengths)))
    assert calls == [[1, 2, 4], [0, 5], [3], [6]]  # 300 alone is over budget: a call of its own
    for call in calls[:-1]:
        assert len(call) * max(lengths[i] for i in call) <= 128
    assert plan_model_calls([]) == []
    assert plan_model_calls([3] * 16, budget=64) == [list(range(16))]


def test_a_merged_batch_of_mixed_lengths_is_split_and_reassembled_in_order() -> None:
    model = HashingEmbedder()
    batcher = BatchingEmbedder(model, token_budget=40)
    short, long = "a b", " ".join(f"w{i}" for i in range(30))
    texts = [long, short, "c d", long + " x"]
    try:
        vectors = batcher.encode(texts)
    finally:
        batcher.close()
    assert model.encoded == [[short, "c d"], [long], [long + " x"]]
    np.testing.assert_array_equal(vectors, HashingEmbedder().encode(texts))


def test_a_model_failure_reaches_every_waiting_caller() -> None:
    class Broken(HashingEmbedder):
        def encode(
            self, texts: list[str], *, batch_size: int = 64, progress: bool = False
        ) -> Vectors:
            raise RuntimeError("model crashed")

    batcher = BatchingEmbedder(Broken())
    try:
        with pytest.raises(RuntimeError, match="model crashed"):
            batcher.encode(["x"])
        assert batcher.inner.tokenizer().token_spans("a b") == [(0, 1), (2, 3)]
    finally:
        batcher.close()


def test_wrappers_keep_the_embedder_interface() -> None:
    wrapped = CachingEmbedder(BatchingEmbedder(HashingEmbedder()), size=8)
    assert (wrapped.model_name, wrapped.dimension) == ("test/hashing-64", 64)
    assert wrapped.encode([]).shape == (0, 64)


class TimedEmbedder(HashingEmbedder):
    """Each model call takes 20 ms, as a real one would."""

    def encode(self, texts: list[str], *, batch_size: int = 64, progress: bool = False) -> Vectors:
        time.sleep(0.02)
        return super().encode(texts)


def test_passages_of_written_documents_share_the_encoder_a_few_at_a_time() -> None:
    model = HashingEmbedder()
    batcher = BatchingEmbedder(model)
    texts = [f"passage {i} of an article" for i in range(10)]
    try:
        vectors = WriteEncoder(batcher).encode(texts)
    finally:
        batcher.close()
    np.testing.assert_array_equal(vectors, HashingEmbedder().encode(texts))
    assert [len(call) for call in model.encoded] == [4, 4, 2]  # WRITE_CHUNK at a time
    assert WRITE_CHUNK == 4


def test_queries_and_writes_share_the_encoder_fairly() -> None:
    """A long write neither starves queries nor is starved by a steady stream of them: while it
    runs, the model's calls alternate between the two. Counted in model calls, not seconds (a
    busy machine stretches seconds, not the order of calls)."""
    model = TimedEmbedder()
    batcher = BatchingEmbedder(model)
    stop = threading.Event()

    def ask() -> int:
        asked = 0
        while not stop.is_set():
            batcher.encode(["a query"])
            asked += 1
        return asked

    try:
        with ThreadPoolExecutor(max_workers=3) as pool:
            askers = [pool.submit(ask) for _ in range(2)]
            deadline = time.monotonic() + 10
            while len(model.encoded) < 3:  # the stream of queries is flowing
                assert time.monotonic() < deadline
                time.sleep(0.01)
            written = pool.submit(WriteEncoder(batcher).encode, [f"p{i}" for i in range(80)])
            written.result(60)  # 20 chunks of 20 ms
            stop.set()
            asked = [asker.result(10) for asker in askers]
    finally:
        batcher.close()
    kinds = "".join("w" if texts[0].startswith("p") else "q" for texts in model.encoded)
    during = kinds[kinds.index("w") : kinds.rindex("w") + 1]
    assert during.count("w") == 20
    # The write first catches up on the encoder time queries had before it (a share of the
    # last seconds each), then the two alternate, give or take a turn that found the other
    # side's queue momentarily empty.
    writes = [len(run) for run in during.split("q") if run]
    assert writes[0] <= kinds.index("w") + 2, kinds
    assert max(writes[1:], default=0) <= 3, kinds
    assert max(len(run) for run in during.split("w") if run) <= 3, kinds  # writes go on
    assert during.count("q") >= during.count("w") - writes[0] - 3, kinds  # so do queries
    assert min(asked) > 0
