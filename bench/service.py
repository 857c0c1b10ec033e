"""The service benchmark: indexing rate, in-process floor, HTTP latency and throughput, memory."""

from __future__ import annotations

import json
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.stats import percentiles_ms, rss_mb
from harness.load import run_load
from harness.service import REPO, server
from indexer.build import BuildParams, build_index, stale_at
from indexer.embedding import Embedder
from indexer.ingest import passage_representation
from indexer.loading import Corpus, load_corpus
from indexer.search import Mode, Query, Searcher
from indexer.stores.faiss.store import FaissStore


@dataclass(frozen=True, slots=True)
class ServerRun:
    seconds_to_ready: float
    rss_after_start_mb: float
    rss_after_load_mb: float
    levels: list[dict[str, Any]]


def load_queries(collection: Path, max_chars: int = 1000) -> list[str]:
    """The collection's queries that the API accepts (longer ones would only measure 422s)."""
    with (collection / "queries.jsonl").open(encoding="utf-8") as handle:
        texts = [json.loads(line)["text"].strip() for line in handle if line.strip()]
    return [text for text in texts if 0 < len(text) <= max_chars]


def indexing_rate(corpus: Corpus, embedder: Embedder, params: BuildParams) -> dict[str, float]:
    """End-to-end build rate against the raw encode rate of the very same passage texts."""
    with tempfile.TemporaryDirectory(prefix="bench-build-") as scratch:
        report = build_index(
            corpus, Path(scratch) / "index", embedder, params, source_label="bench"
        )
        store = FaissStore.open(Path(scratch) / "index", writable=False)
        reader = store.reader()
        texts = [
            passage_representation(passage, stored.document.title, params.title_prefix)
            for stored in reader.documents(0, reader.document_count)
            for passage in stored.passages
        ]
        store.close()
    started = time.perf_counter()
    embedder.encode(texts)
    encode_seconds = time.perf_counter() - started
    build_rate = report.passages_per_second
    encode_rate = len(texts) / encode_seconds
    return {
        "passages": len(texts),
        "build_seconds": round(report.seconds, 2),
        "build_passages_per_s": round(build_rate, 1),
        "encode_passages_per_s": round(encode_rate, 1),
        "build_over_encode": round(build_rate / encode_rate, 3),
    }


def ensure_index(corpus: Corpus, out: Path, embedder: Embedder, params: BuildParams) -> Path:
    if stale_at(out, corpus, embedder.model_name, params) is not None:
        build_index(corpus, out, embedder, params, source_label="bench")
    return out


def in_process_floor(searcher: Searcher, queries: Sequence[str], mode: Mode) -> dict[str, Any]:
    """Encode + search, one query at a time, in this process: what HTTP adds to is measured here."""
    for query in queries[:10]:  # warm-up
        searcher.search(Query(query, mode=mode, k=10))
    seconds = []
    for query in queries:
        started = time.perf_counter()
        searcher.search(Query(query, mode=mode, k=10))
        seconds.append(time.perf_counter() - started)
    return {"mode": mode, "queries": len(seconds), **percentiles_ms(seconds)}


def http_levels(
    index_dir: Path,
    port: int,
    queries: Sequence[str],
    levels: Sequence[int],
    requests_per_level: int,
    env: dict[str, str],
    params: dict[str, str] | None = None,
) -> ServerRun:
    """The service's latency and throughput at each concurrency level; ``params``: the
    search's query parameters (default ``k=10`` in the default mode)."""
    params = params or {"k": "10"}
    with server(index_dir, port, env) as (process, seconds_to_ready):
        rss_start = rss_mb(process.pid)
        base = f"http://127.0.0.1:{port}"
        run_load(base, queries, concurrency=4, requests=40, params=params)  # warm-up
        results = []
        for concurrency in levels:
            load = run_load(
                base,
                queries,
                concurrency=concurrency,
                requests=requests_per_level,
                params=params,
            )
            results.append(
                {
                    "concurrency": concurrency,
                    "requests": load.requests,
                    "errors": load.errors,
                    "requests_per_s": round(load.requests_per_second, 1),
                    **percentiles_ms(load.latencies),
                }
            )
        return ServerRun(round(seconds_to_ready, 2), rss_start, rss_mb(process.pid), results)


def seed_start_to_ready(embedder: Embedder, port: int, env: dict[str, str]) -> dict[str, float]:
    with tempfile.TemporaryDirectory(prefix="bench-seeds-") as scratch:
        out = Path(scratch) / "index"
        build_index(load_corpus(REPO / "seeds"), out, embedder, BuildParams(), source_label="seeds")
        with server(out, port, env) as (process, seconds):
            return {"seconds_to_ready": round(seconds, 2), "idle_rss_mb": rss_mb(process.pid)}
