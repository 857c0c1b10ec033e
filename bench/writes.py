"""The write benchmarks: the live corpus under load, through the real server.

- single writes: PUT documents/s and latency at concurrency 4;
- bulk ingest: passages/s through POST /documents, against the offline build's rate;
- searches while ingesting: p50 and requests/s at concurrency 16, idle and with 10 docs/s
  being written meanwhile;
- churn: resident memory before and after 10 000 replace/delete cycles;
- replay: start-up time with a 10 000-write translog, against the same corpus merged.
"""

from __future__ import annotations

import itertools
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import httpx

from bench.stats import percentiles_ms, rss_mb
from harness.load import Request, run_requests
from harness.service import REPO, copy_index, server
from indexer.build import BuildParams, build_index
from indexer.embedding import Embedder
from indexer.ingest import Preparer
from indexer.loading import Corpus, load_corpus
from indexer.stores.faiss.layout import TRANSLOG_DIR
from indexer.stores.faiss.merges import MergePolicy
from indexer.stores.faiss.store import FaissStore
from indexer.types import Document

KEY = "bench-write-key"
HEADERS = {"Authorization": f"Bearer {KEY}"}
WRITTEN = (200, 201)


def _body(document: Document) -> dict[str, Any]:
    return {"title": document.title, "text": document.text, "metadata": dict(document.metadata)}


def _short(document: Document, variant: int) -> Document:
    """A one-passage version of a document (its first sentence or so): churn measures the
    index's bookkeeping, so the model's share is kept small."""
    text = f"{document.text[:160]} (revision {variant})"
    return Document(document.doc_id, document.title[:80], text)


def write_benchmarks(
    documents: Sequence[Document],
    queries: Sequence[str],
    index_dir: Path,
    embedder: Embedder,
    port: int,
    env: Mapping[str, str],
    *,
    churn_cycles: int = 10_000,
    log_writes: int = 10_000,
    offline_passages_per_s: float | None = None,
) -> dict[str, Any]:
    """Every write benchmark; ``index_dir`` is the collection's index (the bulk ingest goes
    into an index of the two seed articles instead). The bulk ingest is compared with
    ``offline_passages_per_s``, the offline build's rate on these documents, measured here
    if the run has not measured it already."""
    env = {**env, "SEARCH_API_KEY": KEY}
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="bench-writes-") as scratch:
        live = copy_index(index_dir, Path(scratch) / "live")
        with server(live, port, env) as (process, _):
            base = f"http://127.0.0.1:{port}"
            results["put_c4"] = put_rate(base, documents[:200], concurrency=4)
            results["search_c16"] = _search_while_writing(base, queries, documents[200:])
            results["churn"] = _churn(base, process.pid, documents, churn_cycles)
        ingest = Path(scratch) / "ingest"
        seeds = load_corpus(REPO / "seeds")
        build_index(seeds, ingest, embedder, BuildParams(), source_label="seeds")
        with server(ingest, port, env):
            results["bulk"] = _bulk(f"http://127.0.0.1:{port}", documents)
        if offline_passages_per_s is None:
            offline_passages_per_s = offline_rate(Corpus(list(documents)), embedder)
        results["bulk"]["offline_build_passages_per_s"] = round(offline_passages_per_s, 1)
        results["bulk"]["ratio_to_offline_build"] = round(
            results["bulk"]["passages_per_s"] / results["bulk"]["offline_build_passages_per_s"], 2
        )
        replay = copy_index(index_dir, Path(scratch) / "replay")
        results["replay"] = _replay(replay, documents, embedder, log_writes, port, env)
    return results


def put_rate(base: str, documents: Sequence[Document], concurrency: int) -> dict[str, Any]:
    """``PUT /documents/put-<n>`` of each document, ``concurrency`` at a time."""
    requests = (
        Request("PUT", f"/documents/put-{i}", json=_body(d), ok=WRITTEN)
        for i, d in enumerate(documents)
    )
    load = run_requests(base, requests, concurrency=concurrency, headers=HEADERS)
    return {
        "concurrency": concurrency,
        "documents": load.requests,
        "errors": load.errors,
        "documents_per_s": round(load.requests_per_second, 1),
        **percentiles_ms(load.latencies),
    }


def _search_while_writing(
    base: str, queries: Sequence[str], documents: Sequence[Document]
) -> dict[str, Any]:
    """Searches at concurrency 16, first alone, then with 10 documents/s written meanwhile."""

    def searches() -> Iterator[Request]:
        return (
            Request("GET", "/search", {"q": q, "k": "10"})
            for q in itertools.islice(itertools.cycle(queries), 300)
        )

    run_requests(base, itertools.islice(searches(), 40), concurrency=4)  # warm-up
    idle = run_requests(base, searches(), concurrency=16)
    writes = (
        Request("PUT", f"/documents/ingest-{i}", json=_body(d), ok=WRITTEN)
        for i, d in enumerate(itertools.cycle(documents))
    )
    busy = run_requests(
        base,
        searches(),
        concurrency=16,
        headers=HEADERS,
        background=writes,
        background_rate=10.0,
    )
    rows: dict[str, Any] = {}
    for name, load in (("idle", idle), ("writing_10_docs_per_s", busy)):
        rows[name] = {
            "requests": load.requests,
            "errors": load.errors,
            "requests_per_s": round(load.requests_per_second, 1),
            **percentiles_ms(load.latencies),
        }
    # What was written meanwhile: a starved writer would flatter the searches.
    rows["writing_10_docs_per_s"]["documents_written_per_s"] = round(
        busy.background / busy.seconds, 1
    )
    rows["p50_ratio"] = round(rows["writing_10_docs_per_s"]["p50_ms"] / rows["idle"]["p50_ms"], 2)
    rows["rps_ratio"] = round(
        rows["idle"]["requests_per_s"] / rows["writing_10_docs_per_s"]["requests_per_s"], 2
    )
    return rows


def _churn(base: str, pid: int, documents: Sequence[Document], cycles: int) -> dict[str, Any]:
    """Each cycle replaces one document and deletes and re-adds another (three writes), on a
    pool of 200 short documents; RSS after a warm-up of 500 cycles, and at the end."""
    pool = [_short(d, 0) for d in documents[:200]]

    def cycle_requests(first: int, count: int) -> Iterator[Request]:
        for n in range(first, first + count):
            replaced = _short(pool[n % 100], n)
            readded = pool[100 + n % 100]
            yield Request("PUT", f"/documents/churn-{n % 100}", json=_body(replaced), ok=WRITTEN)
            yield Request("DELETE", f"/documents/churn-re-{n % 100}", ok=(204, 404))
            yield Request("PUT", f"/documents/churn-re-{n % 100}", json=_body(readded), ok=WRITTEN)

    # One worker: the three writes of a cycle touch shared ids and must stay in order.
    warm = run_requests(base, cycle_requests(0, 500), concurrency=1, headers=HEADERS)
    before = rss_mb(pid)
    started = time.perf_counter()
    load = run_requests(base, cycle_requests(500, cycles), concurrency=1, headers=HEADERS)
    after = rss_mb(pid)
    return {
        "cycles": cycles,
        "writes": load.requests,
        "errors": load.errors + warm.errors,
        "seconds": round(time.perf_counter() - started, 1),
        "writes_per_s": round(load.requests_per_second, 1),
        "rss_before_mb": before,
        "rss_after_mb": after,
        "rss_growth_percent": round(100 * (after - before) / before, 1),
    }


def _bulk(base: str, documents: Sequence[Document]) -> dict[str, Any]:
    """The whole collection through POST /documents in batches of 100, one batch at a time."""
    batches = [documents[i : i + 100] for i in range(0, len(documents), 100)]
    passages, latencies = 0, []
    started = time.perf_counter()
    with httpx.Client(base_url=base, headers=HEADERS, timeout=300) as client:
        for batch in batches:
            body = {"documents": [{"doc_id": d.doc_id, **_body(d)} for d in batch]}
            sent = time.perf_counter()
            response = client.post("/documents", json=body)
            latencies.append(time.perf_counter() - sent)
            response.raise_for_status()
            passages += sum(item["passages"] for item in response.json()["items"])
    seconds = time.perf_counter() - started
    return {
        "documents": len(documents),
        "passages": passages,
        "batches": len(batches),
        "seconds": round(seconds, 2),
        "passages_per_s": round(passages / seconds, 1),
        **percentiles_ms(latencies),
    }


def _replay(
    index_dir: Path,
    documents: Sequence[Document],
    embedder: Embedder,
    writes: int,
    port: int,
    env: Mapping[str, str],
) -> dict[str, Any]:
    """Start-up with ``writes`` records in the translog, then with the same corpus merged."""
    store = FaissStore.open(index_dir, merge_policy=MergePolicy(min_rows=10**12))
    preparer = Preparer(embedder, store.manifest.chunking, store.manifest.title_prefix)
    # 1000 ids written over and over: the log grows, the corpus does not.
    pool = [
        Document(f"log-{i}", d.title, d.text)
        for i, d in enumerate(_short(documents[i % len(documents)], i) for i in range(1000))
    ]
    prepared = preparer.prepare(pool)
    for n in range(writes):
        store.put([prepared[n % len(prepared)]])
    store.close()
    log_mb = sum(p.stat().st_size for p in (index_dir / TRANSLOG_DIR).iterdir()) / 2**20
    with server(index_dir, port, env) as (_, with_log):
        pass
    store = FaissStore.open(index_dir)
    merge = store.start_merge()
    if merge is not None:
        merge.join()
    store.close()
    with server(index_dir, port, env) as (_, merged):
        pass
    return {
        "log_writes": writes,
        "log_mb": round(log_mb, 1),
        "seconds_to_ready_with_log": round(with_log, 2),
        "seconds_to_ready_merged": round(merged, 2),
    }


def offline_rate(corpus: Corpus, embedder: Embedder) -> float:
    """The offline build's passages/s on this corpus (the bulk ingest's yardstick)."""
    with tempfile.TemporaryDirectory(prefix="bench-build-") as scratch:
        report = build_index(corpus, Path(scratch) / "i", embedder, BuildParams(), source_label="b")
    return report.passages_per_second
