"""Figures the tests once asserted as timings (a busy machine made them flaky there): a filter
over 200 000 documents' metadata, and how queries and a long write share the encoder. The tests
check the behaviour (vectorised; the two alternate); these measure it."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from bench.stats import percentiles_ms
from indexer.embedding import Embedder
from indexer.filters import parse_filter
from indexer.query_encoding import BatchingEmbedder, WriteEncoder
from indexer.stores.faiss.columns import MetadataColumns


def filter_mask(documents: int = 200_000, repeats: int = 20) -> dict[str, Any]:
    """A filter matching 3 of ``documents`` (a string set and a number range) as a mask."""
    columns = MetadataColumns()
    rare = {17, documents // 2 + 3, documents - 1}
    sections = ["world", "sport", "business", "science", "arts"]
    for i in range(documents):
        section = "rare" if i in rare else sections[i % 5]
        columns.append(f"doc{i}.txt", {"section": section, "year": 1990 + i % 35})
    condition = parse_filter({"section": ["rare", "never"], "year": {"gte": 1990}})
    assert condition is not None
    seconds = []
    for _ in range(repeats):
        started = time.perf_counter()
        columns.mask(condition, len(columns))
        seconds.append(time.perf_counter() - started)
    return {"documents": documents, "repeats": repeats, **percentiles_ms(seconds)}


def encoder_sharing(model: Embedder, passages: int = 80) -> dict[str, Any]:
    """Two clients querying without pause while a document of ``passages`` passages is written
    (the write's encoding, first alone, then beside them): how long it took, and the queries'
    waits meanwhile. The model is the real one, so the figures are this machine's."""
    texts = [f"passage {i} of a long article about harbour pilots" for i in range(passages)]
    batcher = BatchingEmbedder(model)
    waits: list[float] = []
    stop = threading.Event()

    def ask() -> None:
        while not stop.is_set():
            started = time.monotonic()
            batcher.encode(["a query about harbour pilots"])
            waits.append(time.monotonic() - started)

    try:
        started = time.monotonic()
        WriteEncoder(batcher).encode(texts)
        alone = time.monotonic() - started
        with ThreadPoolExecutor(max_workers=3) as pool:
            askers = [pool.submit(ask) for _ in range(2)]
            deadline = time.monotonic() + 60
            while len(waits) < 10:  # the stream of queries is flowing
                if any(asker.done() for asker in askers) or time.monotonic() > deadline:
                    stop.set()
                    for asker in askers:
                        asker.result(30)  # an asker's error, if it failed
                    raise RuntimeError("the querying clients did not get going in 60 s")
                time.sleep(0.01)
            waits.clear()
            started = time.monotonic()
            pool.submit(WriteEncoder(batcher).encode, texts).result(120)
            shared = time.monotonic() - started
            stop.set()
            for asker in askers:
                asker.result(30)
    finally:
        batcher.close()
    return {
        "passages": passages,
        # Microseconds: with a test's fake model a write takes well under a millisecond.
        "write_alone_seconds": round(alone, 6),
        "write_beside_queries_seconds": round(shared, 6),
        **{f"query_wait_{key}": value for key, value in percentiles_ms(waits).items()},
    }
