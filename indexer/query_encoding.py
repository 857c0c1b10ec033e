"""Query-side wrappers around an embedder: an LRU cache, and batching of concurrent callers.

Both keep the ``Embedder`` interface, so a ``Searcher`` takes them like the plain model.
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from collections.abc import Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field

import numpy as np
from cachetools import LRUCache

from indexer.chunking import Tokenizer
from indexer.embedding import Embedder, Vectors
from indexer.tracing import span


class CachingEmbedder:
    """Remembers the vectors of the last ``size`` distinct texts (repeated queries are common)."""

    def __init__(self, inner: Embedder, size: int = 1024) -> None:
        self.inner = inner
        self.model_name = inner.model_name
        self.dimension = inner.dimension
        self._cache: LRUCache[str, Vectors] = LRUCache(maxsize=max(size, 1))
        self._enabled = size > 0
        self._lock = threading.Lock()

    def encode(self, texts: list[str], *, batch_size: int = 64, progress: bool = False) -> Vectors:
        if not self._enabled:
            return self.inner.encode(texts, batch_size=batch_size, progress=progress)
        with self._lock:
            found = {t: self._cache[t] for t in texts if t in self._cache}
        missing = list(dict.fromkeys(t for t in texts if t not in found))
        if missing:
            fresh = self.inner.encode(missing, batch_size=batch_size, progress=progress)
            with self._lock:
                for text, vector in zip(missing, fresh, strict=True):
                    vector.setflags(write=False)
                    self._cache[text] = vector
                    found[text] = vector
        return (
            np.stack([found[t] for t in texts])
            if texts
            else np.empty((0, self.dimension), np.float32)
        )

    def tokenizer(self) -> Tokenizer:
        return self.inner.tokenizer()


# Every text in one model call is padded to the call's longest, so a 10-token query encoded
# beside a 150-token one costs as much as a long one. Capping count x longest per call keeps
# short queries together (one call for 16) and long ones in small groups; on CISI's queries
# 256-512 was the flat optimum for torch and ONNX alike (docs/performance.md).
PADDED_TOKEN_BUDGET = 384
_SPECIAL_TOKENS = 2  # [CLS] and [SEP], which the model adds to every text


def plan_model_calls(lengths: Sequence[int], budget: int = PADDED_TOKEN_BUDGET) -> list[list[int]]:
    """Group text indices into model calls: by length, each call's size x longest <= budget.

    A text longer than the budget on its own still gets a call of its own.
    """
    calls: list[list[int]] = []
    current: list[int] = []
    for index in sorted(range(len(lengths)), key=lengths.__getitem__):
        # Ascending order: the text being added is the call's longest.
        if current and (len(current) + 1) * lengths[index] > budget:
            calls.append(current)
            current = []
        current.append(index)
    if current:
        calls.append(current)
    return calls


# Documents being written share the query encoder's thread, this many passages per model
# call: one call at a time keeps the two cores from being fought over, and a query never waits
# behind more than a few passages of a long article.
WRITE_CHUNK = 4
# When queries and writes both wait, the one that used less of the encoder over about this many
# seconds goes next: a steady write rate needing less than half of it is always kept up with,
# and a bulk ingest gets half, not all.
FAIR_SHARE_SECONDS = 2.0


@dataclass(slots=True)
class _Request:
    texts: list[str]
    result: Future[Vectors] = field(default_factory=Future)


class BatchingEmbedder:
    """Serves concurrent ``encode`` calls from one worker thread, merging them into batches.

    While the model encodes one batch, new requests queue up; the worker then takes all of them
    at once. An idle service answers a lone query immediately (no waiting window), and a busy
    one amortises each model call over every query that arrived meanwhile. A merged batch is
    split into calls of similar length (``plan_model_calls``), so that padding stays cheap.
    Passages of documents being written (``encode_for_write``) go in between, a few at a time.
    """

    def __init__(
        self,
        inner: Embedder,
        max_batch: int = 64,
        token_budget: int = PADDED_TOKEN_BUDGET,
    ) -> None:
        self.inner = inner
        self.model_name = inner.model_name
        self.dimension = inner.dimension
        self.max_batch = max_batch
        self.token_budget = token_budget
        # Totals, not a history: a list of batch sizes would grow for as long as the service runs.
        self.batches = 0
        self.largest_batch = 0
        self._tokenizer = inner.tokenizer()
        self._ready = threading.Condition()
        self._queries: deque[_Request] = deque()
        self._writes: deque[_Request] = deque()
        self._closing = False
        self._worker = threading.Thread(target=self._run, name="query-encoder", daemon=True)
        self._worker.start()

    def encode(self, texts: list[str], *, batch_size: int = 64, progress: bool = False) -> Vectors:
        request = _Request(list(texts))
        # The model runs on the worker thread, for several callers' texts at once: this span
        # is the caller's wait for its share (queueing included).
        with span("query_encoder.encode") as current:
            current.set_attribute("query_encoder.texts", len(texts))
            with self._ready:
                self._queries.append(request)
                self._ready.notify()
            return request.result.result()

    def encode_for_write(self, texts: list[str]) -> Vectors:
        """Passages of a document being written: queries go first, these fill the gaps."""
        requests = [_Request(texts[i : i + WRITE_CHUNK]) for i in range(0, len(texts), WRITE_CHUNK)]
        with span("query_encoder.encode_for_write") as current:
            current.set_attribute("query_encoder.texts", len(texts))
            with self._ready:
                self._writes.extend(requests)
                self._ready.notify()
            parts = [request.result.result() for request in requests]
        return np.concatenate(parts) if parts else np.empty((0, self.dimension), np.float32)

    def tokenizer(self) -> Tokenizer:
        return self.inner.tokenizer()

    def close(self) -> None:
        with self._ready:
            self._closing = True
            self._ready.notify()
        self._worker.join(timeout=10)

    def _run(self) -> None:
        spent = {"queries": 0.0, "writes": 0.0}  # encoder seconds, decaying
        last = time.monotonic()
        while True:
            with self._ready:
                self._ready.wait_for(lambda: self._queries or self._writes or self._closing)
                if not self._queries and not self._writes:
                    return  # closing, and nothing is left to answer
                now = time.monotonic()
                decay = math.exp(-(now - last) / FAIR_SHARE_SECONDS)
                spent = {kind: seconds * decay for kind, seconds in spent.items()}
                last = now
                writes_turn = bool(self._writes) and (
                    not self._queries or spent["writes"] <= spent["queries"]
                )
                batch: list[_Request] = []
                if writes_turn:
                    batch.append(self._writes.popleft())
                else:
                    size = 0
                    while self._queries and size < self.max_batch:
                        batch.append(self._queries.popleft())
                        size += len(batch[-1].texts)
            started = time.monotonic()
            self._encode(batch)
            spent["writes" if writes_turn else "queries"] += time.monotonic() - started

    def _encode(self, batch: list[_Request]) -> None:
        texts = [text for request in batch for text in request.texts]
        try:
            lengths = [len(self._tokenizer.token_spans(t)) + _SPECIAL_TOKENS for t in texts]
            vectors = np.empty((len(texts), self.dimension), dtype=np.float32)
            for call in plan_model_calls(lengths, self.token_budget):
                vectors[call] = self.inner.encode([texts[i] for i in call], batch_size=len(call))
        except Exception as error:  # every waiting caller gets the failure, none hangs
            for request in batch:
                request.result.set_exception(error)
            return
        self.batches += 1
        self.largest_batch = max(self.largest_batch, len(texts))
        offset = 0
        for request in batch:
            request.result.set_result(vectors[offset : offset + len(request.texts)])
            offset += len(request.texts)


class WriteEncoder:
    """The ``Embedder`` that documents being written are prepared with: the batcher's model,
    between its query batches."""

    def __init__(self, batcher: BatchingEmbedder) -> None:
        self.batcher = batcher
        self.model_name = batcher.model_name
        self.dimension = batcher.dimension

    def encode(self, texts: list[str], *, batch_size: int = 64, progress: bool = False) -> Vectors:
        return self.batcher.encode_for_write(list(texts))

    def tokenizer(self) -> Tokenizer:
        return self.batcher.tokenizer()
