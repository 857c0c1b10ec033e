"""Query-side wrappers around an embedder: an LRU cache, and batching of concurrent callers.

Both keep the ``Embedder`` interface, so a ``Searcher`` takes them like the plain model.
"""

from __future__ import annotations

import queue
import threading
from concurrent.futures import Future
from dataclasses import dataclass, field

import numpy as np
from cachetools import LRUCache

from indexer.chunking import Tokenizer
from indexer.embedding import Embedder, Vectors


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


@dataclass(slots=True)
class _Request:
    texts: list[str]
    result: Future[Vectors] = field(default_factory=Future)


class BatchingEmbedder:
    """Serves concurrent ``encode`` calls from one worker thread, merging them into batches.

    While the model encodes one batch, new requests queue up; the worker then takes all of them
    at once. An idle service answers a lone query immediately (no waiting window), and a busy
    one amortises each model call over every query that arrived meanwhile.
    """

    def __init__(self, inner: Embedder, max_batch: int = 64) -> None:
        self.inner = inner
        self.model_name = inner.model_name
        self.dimension = inner.dimension
        self.max_batch = max_batch
        self.batch_sizes: list[int] = []  # texts per model call, for tests and benchmarks
        self._queue: queue.SimpleQueue[_Request | None] = queue.SimpleQueue()
        self._worker = threading.Thread(target=self._run, name="query-encoder", daemon=True)
        self._worker.start()

    def encode(self, texts: list[str], *, batch_size: int = 64, progress: bool = False) -> Vectors:
        request = _Request(list(texts))
        self._queue.put(request)
        return request.result.result()

    def tokenizer(self) -> Tokenizer:
        return self.inner.tokenizer()

    def close(self) -> None:
        self._queue.put(None)
        self._worker.join(timeout=10)

    def _run(self) -> None:
        while True:
            first = self._queue.get()
            if first is None:
                return
            batch = [first]
            size = len(first.texts)
            while size < self.max_batch:
                try:
                    more = self._queue.get_nowait()
                except queue.Empty:
                    break
                if more is None:
                    self._queue.put(None)  # finish this batch, then stop
                    break
                batch.append(more)
                size += len(more.texts)
            self._encode(batch)

    def _encode(self, batch: list[_Request]) -> None:
        texts = [text for request in batch for text in request.texts]
        try:
            # The model splits the merged texts into length-sorted batches of its own size.
            vectors = self.inner.encode(texts, batch_size=16)
        except Exception as error:  # every waiting caller gets the failure, none hangs
            for request in batch:
                request.result.set_exception(error)
            return
        self.batch_sizes.append(len(texts))
        offset = 0
        for request in batch:
            request.result.set_result(vectors[offset : offset + len(request.texts)])
            offset += len(request.texts)
