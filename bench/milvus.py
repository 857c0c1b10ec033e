"""The store axis: the same service on FAISS and on a real Milvus server, and Milvus at scale.

The server is Milvus 2.3.5 standalone (``make install-milvus``), started here on free loopback
ports with a fresh data directory and stopped at the end (``harness/milvus.py``). It has
no full-text search, so every comparison here is in ``mode=semantic`` on both stores.

- ``store_comparison``: CISI chunked and embedded once; each store built from those same
  passages and vectors (its own cost, passages/s); the store's search alone and encode + search
  in this process; then the service over HTTP through the same harness and load generator as
  the rest of the benchmark (``http_levels``), and ``PUT /documents`` at concurrency 4.
- ``measure_milvus``: ``--scale``'s rows for Milvus: insert, index and load N vectors, then
  recall@10 against exact search, latency one query at a time, and the server's memory.
"""

from __future__ import annotations

import os
import tempfile
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

import numpy as np

from bench.scale import Matrix, recall_at
from bench.service import http_levels, in_process_floor
from bench.stats import percentiles_ms, rss_mb
from bench.writes import KEY, put_rate
from harness.load import run_load
from harness.milvus import (
    MilvusServer,
    milvus_server_executable,
    process_tree,
    start_milvus,
    stop_milvus,
)
from harness.service import copy_index, server
from indexer.build import BuildParams, new_manifest
from indexer.embedding import Embedder
from indexer.ingest import Preparer
from indexer.loading import Corpus
from indexer.search import Searcher
from indexer.stores.base import Reader
from indexer.stores.faiss.layout import write_index
from indexer.stores.faiss.state import LocalIndex
from indexer.stores.faiss.store import FaissStore
from indexer.stores.milvus.client import Consistency, MilvusTarget, parse_index_params
from indexer.stores.milvus.store import MilvusStore
from indexer.types import IndexedDocument

SEMANTIC = {"k": "10", "mode": "semantic"}
COLLECTION = "bench"
PUT_DOCUMENTS = 200
INDEX_TIMEOUT = 1800.0
SCALE_INSERT_BATCH = 10_000  # 15 MB of float32 at dimension 384: well within gRPC's limit
STORE_COLUMNS = [
    "store",
    "consistency",
    "ingest_passages_per_s",
    "store_p50_ms",
    "cached_http_p50_ms",
    "in_process_p50_ms",
    "c1_p50_ms",
    "c1_requests_per_s",
    "c16_p50_ms",
    "c16_requests_per_s",
    "put_documents_per_s",
    "store_put_ms",
    "store_replace_ms",
    "agreement_at_10",
    "service_rss_mb",
    "milvus_rss_mb",
]


# The client's calls timed for the breakdown of the store's costs.
CLIENT_CALLS = (
    "create_collection",
    "create_index",
    "load_collection",
    "get_load_state",
    "insert",
    "upsert",
    "delete",
    "flush",
    "query",
    "search",
)


def milvus_missing() -> str | None:
    """Why the Milvus rows cannot run here (a sentence), or None when they can."""
    try:
        import pymilvus  # noqa: F401
    except ImportError:
        return "pymilvus is not installed (pip install -e '.[test]')"
    executable = milvus_server_executable()
    if not executable.exists():
        return f"{executable} not found (make install-milvus, or set MILVUS_VENV to its venv)"
    return None


@contextmanager
def running_milvus() -> Iterator[MilvusServer]:
    """A Milvus standalone server on free loopback ports and a temporary data directory,
    stopped (and its data removed) on leaving."""
    with tempfile.TemporaryDirectory(prefix="bench-milvus-") as scratch:
        milvus = start_milvus(Path(scratch) / "milvus")
        try:
            yield milvus
        finally:
            stopped = stop_milvus(milvus)
            if stopped.remaining:
                raise RuntimeError(f"Milvus processes survived SIGKILL: {stopped.remaining}")


def total_rss_mb(pids: Iterable[int]) -> float:
    """Resident memory of several processes together (those gone meanwhile count 0)."""
    total = 0.0
    for pid in pids:
        try:
            total += rss_mb(pid)
        except (OSError, RuntimeError):
            continue
    return round(total, 1)


def milvus_rss_mb(milvus: MilvusServer) -> float:
    """The server's resident memory: the ``milvus-server`` wrapper and ``milvus run``."""
    return total_rss_mb(p.pid for p in process_tree(milvus.process.pid))


@contextmanager
def timed_methods(cls: type, names: Iterable[str]) -> Iterator[dict[str, dict[str, float]]]:
    """Time every call of ``cls``'s methods ``names`` (in any thread) while inside: yields
    ``{name: {"calls": n, "seconds": s}}`` for those called, filled in as they return."""
    timings: dict[str, dict[str, float]] = {}
    originals = {name: cls.__dict__[name] for name in names}

    def timed(name: str, method: Any) -> Any:
        def call(*args: Any, **kwargs: Any) -> Any:
            began = time.perf_counter()
            try:
                return method(*args, **kwargs)
            finally:
                entry = timings.setdefault(name, {"calls": 0, "seconds": 0.0})
                entry["calls"] += 1
                entry["seconds"] = round(entry["seconds"] + time.perf_counter() - began, 4)

        return call

    for name, method in originals.items():
        setattr(cls, name, timed(name, method))
    try:
        yield timings
    finally:
        for name, method in originals.items():
            setattr(cls, name, method)


def _client_class() -> type:
    from pymilvus import MilvusClient

    client: type = MilvusClient
    return client


def cpu_seconds(pids: Iterable[int]) -> float:
    """User + system CPU time of several processes so far (those gone count 0)."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0
    for pid in pids:
        try:
            text = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            continue
        fields = text[text.rindex(")") + 2 :].split()
        total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / ticks


def idle_cpu_percent(milvus: MilvusServer, seconds: float = 5.0) -> float:
    """How much of one core the server uses doing nothing (time ticks, heartbeats)."""
    pids = [p.pid for p in process_tree(milvus.process.pid)]
    before = cpu_seconds(pids)
    time.sleep(seconds)
    return round(100 * (cpu_seconds(pids) - before) / seconds, 1)


def agreement_at(found: Sequence[Sequence[object]], reference: Sequence[Sequence[object]]) -> float:
    """Mean share of each reference list found in the other list (same length), e.g. an
    approximate index's top 10 against an exact one's."""
    shares = [
        len(set(f) & set(r)) / len(r) for f, r in zip(found, reference, strict=True) if len(r)
    ]
    return round(float(np.mean(shares)), 4) if shares else float("nan")


def ratio(numerator: float | None, denominator: float | None) -> float | None:
    if numerator is None or denominator is None or denominator == 0:
        return None
    return round(numerator / denominator, 2)


def store_ratios(rows: Sequence[Mapping[str, Any]]) -> dict[str, float | None]:
    """Each non-FAISS row against the FAISS row: ``<store>/<consistency> <column>`` ->
    Milvus over FAISS (so > 1 means Milvus is slower for latencies, faster for rates)."""
    [faiss] = [row for row in rows if row["store"] == "faiss"]
    ratios: dict[str, float | None] = {}
    for row in rows:
        if row is faiss:
            continue
        for column in STORE_COLUMNS[2:14]:
            if column != "agreement_at_10":
                name = f"{row['store']}/{row['consistency']} {column}"
                ratios[name] = ratio(row.get(column), faiss.get(column))
    return ratios


def milvus_spec(index_type: str, params: str) -> str:
    """``--scale``'s default Milvus row set from the store settings: the settings' index,
    searched with their ``ef`` (or ``nprobe``) and with half and twice as much."""
    build, search = parse_index_params(index_type, params)
    searches = [",".join(f"{k}={v}" for k, v in search.items())] if search else [""]
    for key, least in (("ef", 10), ("nprobe", 1)):  # Milvus refuses an ef below the limit
        if key in search:
            value = int(search[key])
            others = {k: v for k, v in search.items() if k != key}
            searches = [
                ",".join(f"{k}={v}" for k, v in {**others, key: n}.items())
                for n in (max(value // 2, least), value, value * 2)
            ]
    built = ",".join(f"{k}={v}" for k, v in build.items())
    return f"{index_type}@{built}|{';'.join(searches)}"


def parse_milvus_spec(spec: str) -> tuple[str, dict[str, Any], list[dict[str, Any]]]:
    """``"HNSW@M=16,efConstruction=200|ef=64;ef=128"`` as (index type, build parameters,
    one dict of search parameters per setting to measure)."""
    index, _, settings = spec.partition("|")
    index_type, _, build_text = index.partition("@")
    build, search = parse_index_params(index_type.strip(), build_text)
    if search:
        raise ValueError(f"{', '.join(search)}: search parameters go after '|' in {spec!r}")
    searches = []
    for setting in [s for s in settings.split(";") if s.strip()] or [""]:
        built, searched = parse_index_params(index_type.strip(), setting)
        if built:
            raise ValueError(f"{', '.join(built)}: build parameters go after '@' in {spec!r}")
        searches.append(searched)
    return index_type.strip(), build, searches


def _describe(params: Mapping[str, Any]) -> str:
    return ",".join(f"{k}={v}" for k, v in params.items()) or "-"


# -- FAISS against Milvus on the service -------------------------------------------------------


def store_comparison(
    corpus: Corpus,
    queries: Sequence[str],
    embedder: Embedder,
    params: BuildParams,
    milvus_params: BuildParams,
    port: int,
    env: Mapping[str, str],
    *,
    levels: Sequence[int] = (1, 16),
    requests: int = 300,
    consistencies: Sequence[Consistency] = ("Session", "Strong"),
) -> dict[str, Any]:
    """FAISS (``params``) and Milvus (``milvus_params``, at each consistency level) on the
    same passages and vectors, measured one after the other in this run."""
    started = time.perf_counter()
    prepared = Preparer(embedder, params.chunking, params.title_prefix).prepare(corpus.documents)
    embed_seconds = time.perf_counter() - started
    passages = sum(len(item.passages) for item in prepared)
    vectors = embedder.encode(list(queries))
    env = {**env, "SEARCH_API_KEY": KEY}
    documents = [item.document for item in prepared[:PUT_DOCUMENTS]]
    results: dict[str, Any] = {
        "mode": "semantic",
        "documents": len(prepared),
        "passages": passages,
        "embedding_passages_per_s": round(passages / embed_seconds, 1),
        "faiss_index": params.index_factory,
        "milvus_index": f"{milvus_params.index_factory} ({milvus_params.search_params})",
    }
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="bench-stores-") as scratch:
        index_dir = Path(scratch) / "faiss"
        manifest = new_manifest(embedder.model_name, embedder.dimension, params, "bench")
        began = time.perf_counter()
        write_index(index_dir, LocalIndex.build(manifest, prepared), started=began)
        faiss_row: dict[str, Any] = {
            "store": "faiss",
            "consistency": "-",
            "ingest_seconds": round(time.perf_counter() - began, 2),
        }
        faiss_store = FaissStore.open(index_dir, writable=False)
        reference = _in_process(faiss_store, embedder, queries, vectors, faiss_row)
        faiss_store.close()
        faiss_row["agreement_at_10"] = 1.0
        _over_http(faiss_row, index_dir, port, queries, levels, requests, env)
        _cached_http(faiss_row, index_dir, port, queries, env)
        faiss_row.update(_puts(copy_index(index_dir, Path(scratch) / "put"), port, documents, env))
        faiss_store = FaissStore.open(copy_index(index_dir, Path(scratch) / "own"))
        faiss_row.update(_store_writes(faiss_store, prepared))
        faiss_store.close()
        rows.append(faiss_row)

        with running_milvus() as milvus:
            results["milvus_server"] = {
                "version": _server_version(milvus.uri),
                "seconds_to_ready": round(milvus.seconds_to_ready, 1),
                "rss_idle_mb": milvus_rss_mb(milvus),
                "idle_cpu_percent": idle_cpu_percent(milvus),
            }
            target = MilvusTarget(milvus.uri, COLLECTION)
            manifest = new_manifest(embedder.model_name, embedder.dimension, milvus_params, "b")
            began = time.perf_counter()
            with timed_methods(_client_class(), CLIENT_CALLS) as calls:
                MilvusStore.create(target, manifest, prepared).close()
            created = time.perf_counter() - began
            wait_indexed(milvus.uri, f"{COLLECTION}_passages")
            ingest = time.perf_counter() - began
            results["milvus_server"]["rss_after_ingest_mb"] = milvus_rss_mb(milvus)
            results["milvus_create_calls"] = calls
            milvus_env = {
                **env,
                "SEARCH_STORE": "milvus",
                "SEARCH_MILVUS_URI": milvus.uri,
                "SEARCH_MILVUS_COLLECTION": COLLECTION,
            }
            # The store's default consistency last, with the writes after its searches: no
            # search runs against the documents written.
            default = MilvusTarget(milvus.uri).consistency
            order = sorted(consistencies, key=lambda level: level == default)
            for consistency in order:
                row: dict[str, Any] = {
                    "store": "milvus",
                    "consistency": consistency,
                    "ingest_seconds": round(ingest, 2),
                    "create_seconds": round(created, 2),
                }
                store = MilvusStore.open(replace(target, consistency=consistency), writable=False)
                found = _in_process(store, embedder, queries, vectors, row)
                store.close()
                row["agreement_at_10"] = agreement_at(found, reference)
                level_env = {**milvus_env, "SEARCH_MILVUS_CONSISTENCY": consistency}
                # Strong waits for Milvus's next time tick on every search: fewer requests.
                count = requests if consistency != "Strong" else min(requests, 100)
                unused = Path(scratch) / "unused"  # SEARCH_INDEX_DIR: not read with Milvus
                _over_http(row, unused, port, queries, levels, count, level_env)
                _cached_http(row, unused, port, queries, level_env)
                row["milvus_rss_mb"] = milvus_rss_mb(milvus)
                if consistency == default:
                    row.update(_puts(unused, port, documents, level_env))
                    store = MilvusStore.open(target)
                    with timed_methods(_client_class(), CLIENT_CALLS) as calls:
                        row.update(_store_writes(store, prepared))
                    row["store_write_calls"] = calls
                    store.close()
                rows.append(row)
    for row in rows:
        row["ingest_passages_per_s"] = round(passages / row["ingest_seconds"], 1)
    rows.sort(key=lambda row: (row["store"], row["consistency"] != "Session"))
    results["rows"] = rows
    results["ratios"] = store_ratios(rows)
    return results


def _store_writes(
    store: FaissStore | MilvusStore, prepared: Sequence[IndexedDocument], count: int = 20
) -> dict[str, Any]:
    """The store's own cost of a write, one document at a time, vectors given (no model):
    ``count`` new documents, then half of them replaced."""
    renamed = []
    for n, item in enumerate(prepared[:count]):
        doc_id = f"store-put-{n}"
        document = replace(item.document, doc_id=doc_id)
        passages = tuple(replace(p, doc_id=doc_id) for p in item.passages)
        renamed.append(IndexedDocument(document, passages, item.vectors))
    added, replaced = [], []
    for item in renamed:
        began = time.perf_counter()
        store.put([item])
        added.append(time.perf_counter() - began)
    for item in renamed[: count // 2]:
        began = time.perf_counter()
        store.put([item])
        replaced.append(time.perf_counter() - began)
    return {
        "store_put_ms": percentiles_ms(added)["p50_ms"],
        "store_replace_ms": percentiles_ms(replaced)["p50_ms"],
    }


def _in_process(
    store: FaissStore | MilvusStore,
    embedder: Embedder,
    queries: Sequence[str],
    vectors: Matrix,
    row: dict[str, Any],
) -> list[list[tuple[str, int]]]:
    """The store's own search (vectors given) and encode + search, one query at a time;
    returns each query's top 10 as (document, passage) keys."""
    reader: Reader = store.reader()
    for vector in vectors[:10]:  # warm-up
        reader.vector_search(vector[None, :], 10)
    seconds, found = [], []
    for vector in vectors:
        began = time.perf_counter()
        _, ids = reader.vector_search(vector[None, :], 10)
        seconds.append(time.perf_counter() - began)
        keys = [reader.passage(int(i)) for i in ids]
        found.append([(p.doc_id, p.chunk_id) for p in keys])
    row["store_p50_ms"] = percentiles_ms(seconds)["p50_ms"]
    floor = in_process_floor(Searcher(store, embedder), queries, "semantic")
    row["in_process_p50_ms"] = floor["p50_ms"]
    return found


def _over_http(
    row: dict[str, Any],
    index_dir: Path,
    port: int,
    queries: Sequence[str],
    levels: Sequence[int],
    requests: int,
    env: Mapping[str, str],
) -> None:
    run = http_levels(index_dir, port, queries, levels, requests, dict(env), params=SEMANTIC)
    row["http"] = asdict(run)
    row["service_rss_mb"] = run.rss_after_load_mb
    for level in run.levels:
        row[f"c{level['concurrency']}_p50_ms"] = level["p50_ms"]
        row[f"c{level['concurrency']}_requests_per_s"] = level["requests_per_s"]
        if level["errors"]:
            row.setdefault("errors", 0)
            row["errors"] += level["errors"]


def _cached_http(
    row: dict[str, Any], index_dir: Path, port: int, queries: Sequence[str], env: Mapping[str, str]
) -> None:
    """HTTP p50 at concurrency 1 without the model: the query cache on, every query asked
    once to fill it, then once more, measured (HTTP and the store's search, no encoding)."""
    with server(index_dir, port, {**env, "SEARCH_QUERY_CACHE_SIZE": "1024"}):
        base = f"http://127.0.0.1:{port}"
        run_load(base, queries, concurrency=1, requests=len(queries), params=SEMANTIC)
        load = run_load(base, queries, concurrency=1, requests=len(queries), params=SEMANTIC)
    row["cached_http_p50_ms"] = percentiles_ms(load.latencies)["p50_ms"]
    row["cached_http_errors"] = load.errors


def _puts(
    index_dir: Path, port: int, documents: Sequence[Any], env: Mapping[str, str]
) -> dict[str, Any]:
    """``PUT /documents/{id}`` of ``documents`` at concurrency 4, on a server of its own."""
    with server(index_dir, port, env):
        base = f"http://127.0.0.1:{port}"
        run_load(base, ["warm-up"], concurrency=1, requests=5, params=SEMANTIC)
        put = put_rate(base, documents, concurrency=4)
    return {"put_documents_per_s": put["documents_per_s"], "put": put}


def _server_version(uri: str) -> str:
    from pymilvus import MilvusClient

    client = MilvusClient(uri=uri)
    try:
        return str(client.get_server_version())
    finally:
        client.close()


def wait_indexed(uri: str, collection: str, field: str = "vector") -> float:
    """Wait until Milvus has indexed every row of ``collection``; the seconds waited."""
    from pymilvus import MilvusClient

    client = MilvusClient(uri=uri)
    started = time.perf_counter()
    try:
        while True:
            info = client.describe_index(collection, field)
            # "Finished" comes with rows still pending when compaction has merged segments
            # meanwhile: the merged ones are indexed anew.
            indexed = info["indexed_rows"] >= info["total_rows"]
            if info.get("state") == "Finished" and indexed and not info["pending_index_rows"]:
                return time.perf_counter() - started
            if info.get("state") == "Failed":
                raise RuntimeError(f"Milvus failed to index {collection}: {info}")
            if time.perf_counter() - started > INDEX_TIMEOUT:
                raise RuntimeError(f"Milvus did not index {collection} in {INDEX_TIMEOUT} s")
            time.sleep(0.05)
    finally:
        client.close()


# -- Milvus at scale ---------------------------------------------------------------------------


def measure_milvus(
    milvus: MilvusServer,
    spec: str,
    vectors: Matrix,
    queries: Matrix,
    truth: np.ndarray[Any, np.dtype[np.int64]],
    *,
    consistency: Consistency = "Session",
    k: int = 10,
) -> list[dict[str, Any]]:
    """Insert ``vectors`` (keyed by row number) into a new collection, flush, build the
    index ``spec`` names, load it, then time single-query searches under each setting."""
    from pymilvus import DataType, MilvusClient

    index_type, build, searches = parse_milvus_spec(spec)
    name = f"scale_{index_type.lower()}"
    client = MilvusClient(uri=milvus.uri, timeout=600)
    try:
        rss_idle = milvus_rss_mb(milvus)
        schema = client.create_schema(auto_id=False)
        schema.add_field("id", DataType.INT64, is_primary=True)
        schema.add_field("vector", DataType.FLOAT_VECTOR, dim=int(vectors.shape[1]))
        client.create_collection(name, schema=schema)
        started = time.perf_counter()
        for start in range(0, len(vectors), SCALE_INSERT_BATCH):
            stop = min(start + SCALE_INSERT_BATCH, len(vectors))
            rows = [
                {"id": i, "vector": vector}
                for i, vector in zip(range(start, stop), vectors[start:stop], strict=True)
            ]
            client.insert(name, rows)
        client.flush(name)
        inserted = time.perf_counter() - started
        index = client.prepare_index_params()
        index.add_index("vector", index_type=index_type, metric_type="IP", params=build)
        client.create_index(name, index, sync=False)
        wait_indexed(milvus.uri, name)
        indexed = time.perf_counter() - started
        client.load_collection(name)
        loaded = time.perf_counter() - started
        rss_loaded = milvus_rss_mb(milvus)
        segments = len(client.list_loaded_segments(name))  # a search visits each
        out = []
        for search in searches:
            params = {"metric_type": "IP", "params": search}

            def one(query: np.ndarray[Any, np.dtype[np.float32]], p: Any = params) -> list[int]:
                [hits] = client.search(
                    name,
                    data=[query.tolist()],
                    limit=k,
                    search_params=p,
                    consistency_level=consistency,
                )
                return [int(hit.id) for hit in hits]

            for query in queries[:20]:  # warm-up
                one(query)
            seconds, found = [], []
            for query in queries:
                began = time.perf_counter()
                found.append(one(query))
                seconds.append(time.perf_counter() - began)
            out.append(
                {
                    "index": f"Milvus {index_type} ({_describe(build)})",
                    "search_params": f"{_describe(search)}, {consistency}",
                    "build_s": round(loaded, 1),
                    "insert_s": round(inserted, 1),
                    "index_s": round(indexed - inserted, 1),
                    "load_s": round(loaded - indexed, 1),
                    "segments": segments,
                    "size_mb": None,
                    "server_rss_mb": rss_loaded,
                    "server_rss_idle_mb": rss_idle,
                    f"recall_at_{k}": round(recall_at(found, truth, k), 4),
                    **percentiles_ms(seconds),
                }
            )
        # Compaction merges small segments in the background and indexes the merged ones
        # anew: rows pending here mean the searches shared the CPU with that.
        pending = client.describe_index(name, "vector")["pending_index_rows"]
        for row in out:
            row["server_rss_after_search_mb"] = milvus_rss_mb(milvus)
            row["pending_index_rows_after_search"] = pending
        client.drop_collection(name)
        return out
    finally:
        client.close()


__all__ = [
    "STORE_COLUMNS",
    "agreement_at",
    "measure_milvus",
    "milvus_missing",
    "milvus_spec",
    "parse_milvus_spec",
    "running_milvus",
    "store_comparison",
    "store_ratios",
    "total_rss_mb",
]
