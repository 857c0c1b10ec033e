"""``python -m bench``: the service benchmark (or ``--scale N`` for the vector-index benchmark)."""

from __future__ import annotations

import json
import os
import platform
import time
from dataclasses import asdict, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import faiss
import typer

from bench.engines import measure as measure_engines
from bench.micro import encoder_sharing, filter_mask
from bench.milvus import (
    STORE_COLUMNS,
    measure_milvus,
    milvus_missing,
    milvus_spec,
    running_milvus,
    store_comparison,
)
from bench.scale import Matrix, exact_top, measure, replicate
from bench.service import (
    ensure_index,
    http_levels,
    in_process_floor,
    indexing_rate,
    load_queries,
    seed_start_to_ready,
)
from bench.stats import table
from bench.writes import write_benchmarks
from harness.service import REPO, free_port
from indexer.backends import load_embedder, onnx_variant
from indexer.build import BuildParams
from indexer.loading import load_corpus
from indexer.search import DEFAULT_MODE, Searcher
from indexer.settings import IndexSettings
from indexer.stores.faiss.layout import current_version
from indexer.stores.faiss.store import FaissStore
from indexer.stores.faiss.vectors import VECTORS_FILE
from indexer.stores.milvus.client import CONSISTENCY_LEVELS, Consistency

app = typer.Typer(add_completion=False)
CISI = REPO.parent / "shared" / "benchmarks" / "cisi"
LEVEL_COLUMNS = [
    "concurrency",
    "requests",
    "errors",
    "requests_per_s",
    "p50_ms",
    "p90_ms",
    "p99_ms",
]


@app.command()
def main(
    collection: Annotated[
        Path, typer.Option(help="BEIR-layout collection to index and query.")
    ] = CISI,
    out: Annotated[Path, typer.Option(help="Where results (and the bench index) go.")] = REPO
    / "bench"
    / "results",
    model: Annotated[str | None, typer.Option(help="Default: SEARCH_MODEL's.")] = None,
    backend: Annotated[
        str | None, typer.Option(help="torch, onnx or onnx-int8. Default: SEARCH_BACKEND's.")
    ] = None,
    onnx_dir: Annotated[Path | None, typer.Option(help="Default: SEARCH_ONNX_DIR's.")] = None,
    concurrency: Annotated[list[int], typer.Option(help="Concurrency levels.")] = [1, 4, 16],  # noqa: B006
    requests: Annotated[int, typer.Option(help="Requests per concurrency level.")] = 300,
    skip_indexing: Annotated[
        bool, typer.Option(help="Skip the indexing-rate measurement.")
    ] = False,
    skip_writes: Annotated[bool, typer.Option(help="Skip the write benchmarks.")] = False,
    skip_engines: Annotated[
        bool,
        typer.Option(help="Skip the build engines (local against Ray) and the resume cost."),
    ] = False,
    churn_cycles: Annotated[
        int, typer.Option(help="Replace/delete cycles for the memory measurement.")
    ] = 10_000,
    log_writes: Annotated[
        int, typer.Option(help="Translog length for the start-up-with-replay measurement.")
    ] = 10_000,
    label: Annotated[str, typer.Option(help="A name for this run in the JSON file.")] = "",
    env: Annotated[
        list[str] | None,
        typer.Option(help="KEY=VALUE setting for the server, e.g. SEARCH_QUERY_BATCHING=false."),
    ] = None,
    scale: Annotated[
        int, typer.Option(help="Instead: benchmark vector indexes on this many vectors.")
    ] = 0,
    factory: Annotated[
        list[str] | None,
        typer.Option(
            help='With --scale: "INDEX[@BUILD_PARAMS]|PARAMS;PARAMS" to try, '
            'e.g. "HNSW32@efConstruction=200|efSearch=64;efSearch=128".'
        ),
    ] = None,
    skip_milvus: Annotated[
        bool,
        typer.Option(
            help="Skip the Milvus rows: the service on a real Milvus server against FAISS "
            "(with --scale: Milvus's rows). Skipped anyway where the server is not installed."
        ),
    ] = False,
    milvus_consistency: Annotated[
        list[str] | None,
        typer.Option(
            help="Milvus consistency levels to measure. Default: Session and Strong (with "
            "--scale, only the first: Session)."
        ),
    ] = None,
    milvus_index: Annotated[
        str | None,
        typer.Option(
            help='With --scale: Milvus\'s "INDEX_TYPE@BUILD_PARAMS|PARAMS;PARAMS", e.g. '
            '"HNSW@M=16,efConstruction=200|ef=64;ef=128". Default: the store settings\' index, '
            "searched with their ef, half of it and twice it."
        ),
    ] = None,
    skip_faiss: Annotated[
        bool, typer.Option(help="With --scale: only Milvus's rows, no FAISS index.")
    ] = False,
) -> None:
    """Measure the service on COLLECTION and write bench/results/service-<time>.json."""
    out.mkdir(parents=True, exist_ok=True)
    given = {"model": model, "backend": backend, "onnx_dir": onnx_dir}
    settings = IndexSettings(**{k: v for k, v in given.items() if v is not None})  # type: ignore[arg-type]
    model, backend, onnx_dir = settings.model, settings.backend, settings.onnx_dir
    if onnx_variant(backend) is not None:
        from indexer.onnx_embedding import ensure_export

        ensure_export(model, onnx_dir, announce=typer.echo)
    embedder = load_embedder(model, backend, onnx_dir)
    corpus = load_corpus(collection / "corpus.jsonl")
    queries = load_queries(collection)
    params = BuildParams()
    consistencies = _consistencies(milvus_consistency or ["Session", "Strong"])
    milvus = None if skip_milvus else milvus_missing()
    if skip_milvus:
        typer.echo("Milvus: skipped (--skip-milvus)")
    elif milvus is not None:
        typer.echo(f"Milvus: skipped, no server to run: {milvus}")
    with_milvus = not skip_milvus and milvus is None
    if scale:
        index_dir = ensure_index(corpus, out / f".index-{collection.name}", embedder, params)
        _scale(
            index_dir,
            embedder.encode(queries),
            scale,
            [] if skip_faiss else factory or DEFAULT_FACTORIES,
            (milvus_index or milvus_spec(settings.milvus_index_type, settings.milvus_index_params))
            if with_milvus
            else None,
            consistencies[0],
            out,
        )
        return
    results: dict[str, object] = {
        "label": label,
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "collection": str(collection),
        "documents": len(corpus.documents),
        "queries": len(queries),
        "mode": DEFAULT_MODE,
        "backend": backend,
    }
    typer.echo("micro: a filter over 200 000 documents, the encoder shared with a write ...")
    results["micro"] = {"filter_mask": filter_mask(), "encoder_sharing": encoder_sharing(embedder)}
    if not skip_indexing:
        typer.echo("indexing rate ...")
        results["indexing"] = indexing_rate(corpus, embedder, params)
    index_dir = ensure_index(corpus, out / f".index-{collection.name}", embedder, params)
    store = FaissStore.open(index_dir, writable=False)
    searcher = Searcher(store, embedder)
    typer.echo("in-process floor ...")
    floor = in_process_floor(searcher, queries, DEFAULT_MODE)
    results["in_process"] = floor
    store.close()
    typer.echo("HTTP load ...")
    # Cache off: the load cycles through the queries, and repeats would only measure the cache.
    server_env = {
        "SEARCH_QUERY_CACHE_SIZE": "0",
        "SEARCH_BACKEND": backend,
        "SEARCH_ONNX_DIR": str(onnx_dir.resolve()),
        **dict(item.split("=", 1) for item in env or []),
    }
    results["server_env"] = server_env
    run = http_levels(index_dir, free_port(), queries, concurrency, requests, server_env)
    results["http"] = asdict(run)
    results["seed_index"] = seed_start_to_ready(embedder, free_port(), server_env)
    if not skip_writes:
        typer.echo("writes ...")
        results["writes"] = write_benchmarks(
            corpus.documents,
            queries,
            index_dir,
            embedder,
            free_port(),
            server_env,
            churn_cycles=churn_cycles,
            log_writes=log_writes,
            offline_passages_per_s=(
                results["indexing"]["build_passages_per_s"]  # type: ignore[index]
                if "indexing" in results
                else None
            ),
        )
    if not skip_engines:
        results["build_engines"] = measure_engines(collection, settings)
    if with_milvus:
        typer.echo("stores: FAISS against Milvus, mode=semantic ...")
        milvus_params = replace(
            params,
            index_factory=settings.milvus_index_type,
            search_params=settings.milvus_index_params,
            store="milvus",
        )
        results["stores"] = store_comparison(
            corpus,
            queries,
            embedder,
            params,
            milvus_params,
            free_port(),
            server_env,
            levels=sorted({min(concurrency), max(concurrency)}),
            requests=requests,
            consistencies=consistencies,
        )
    by_level = {level["concurrency"]: level for level in run.levels}
    first, last = by_level[min(by_level)], by_level[max(by_level)]
    results["ratios"] = {
        "http_p50_over_in_process_p50": round(first["p50_ms"] / floor["p50_ms"], 2),
        f"rps_at_{max(by_level)}_over_rps_at_{min(by_level)}": round(
            last["requests_per_s"] / first["requests_per_s"], 2
        ),
    }

    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    path = out / f"service-{stamp}.json"
    path.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    (out / "service-latest.json").write_text(path.read_text(), encoding="utf-8")
    typer.echo(_report(results))
    typer.echo(f"\nwritten: {path}")


DEFAULT_FACTORIES = [
    "Flat",
    "HNSW32|efSearch=32;efSearch=64;efSearch=128",
    "IVF1024,Flat|nprobe=8;nprobe=16;nprobe=32;nprobe=64",
]


def _consistencies(levels: list[str]) -> list[Consistency]:
    """The levels as given, once each; the first is --scale's."""
    known: dict[str, Consistency] = {level: level for level in CONSISTENCY_LEVELS}
    unknown = [level for level in levels if level not in known]
    if unknown:
        raise typer.BadParameter(f"{unknown}: not among {', '.join(CONSISTENCY_LEVELS)}")
    return list(dict.fromkeys(known[level] for level in levels))


def _scale(
    index_dir: Path,
    query_vectors: Matrix,
    count: int,
    factories: list[str],
    milvus: str | None,
    consistency: Consistency,
    out: Path,
) -> None:
    flat = faiss.read_index(str(current_version(index_dir) / VECTORS_FILE))
    base = flat.reconstruct_n(0, flat.ntotal)
    typer.echo(f"{count} vectors from {len(base)} passage embeddings, 1000 queries ...")
    vectors = replicate(base, count, noise=0.02, mix=True)
    queries = replicate(query_vectors, 1000, noise=0.02, seed=1)
    started = time.perf_counter()
    truth = exact_top(vectors, queries, 10)
    typer.echo(f"exact top-10 for 1000 queries: {time.perf_counter() - started:.1f} s")
    rows = []
    for spec in factories:
        index, _, settings = spec.partition("|")
        name, _, build_params = index.partition("@")
        typer.echo(f"building {index} ...")
        searches = [s for s in settings.split(";") if s]
        rows += measure(name, vectors, queries, truth, searches, build_params=build_params)
        typer.echo(table(rows[-len(searches or [""]) :], SCALE_COLUMNS))
    results: dict[str, object] = {
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "vectors": count,
        "dimension": int(vectors.shape[1]),
        "queries": len(queries),
        "noise": 0.02,
    }
    if milvus is not None:
        typer.echo(f"Milvus {milvus} ...")
        with running_milvus() as server:
            results["milvus_server"] = {"seconds_to_ready": round(server.seconds_to_ready, 1)}
            added = measure_milvus(server, milvus, vectors, queries, truth, consistency=consistency)
        rows += added
        typer.echo(table(added, SCALE_COLUMNS))
    results["rows"] = rows
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    path = out / f"scale-{count}-{stamp}.json"
    path.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    typer.echo("\n" + table(rows, SCALE_COLUMNS) + f"\n\nwritten: {path}")


SCALE_COLUMNS = [
    "index",
    "search_params",
    "build_s",
    "size_mb",
    "recall_at_10",
    "p50_ms",
    "p90_ms",
    "p99_ms",
    "server_rss_mb",
]


def _report(results: dict[str, object]) -> str:
    floor: dict[str, object] = results["in_process"]  # type: ignore[assignment]
    http: dict[str, object] = results["http"]  # type: ignore[assignment]
    lines = [
        f"in-process floor ({floor['mode']}, encode + search, one query at a time): "
        f"p50 {floor['p50_ms']} ms, p90 {floor['p90_ms']} ms",
        "",
        table(http["levels"], LEVEL_COLUMNS),  # type: ignore[arg-type]
        "",
        f"ratios: {results['ratios']}",
        f"service (bench index): {http['seconds_to_ready']} s to ready, "
        f"RSS {http['rss_after_start_mb']} MB after start, "
        f"{http['rss_after_load_mb']} MB after load",
        f"service (seed index): {results['seed_index']}",
    ]
    if "indexing" in results:
        lines.append(f"indexing: {results['indexing']}")
    micro: dict[str, object] = results["micro"]  # type: ignore[assignment]
    lines += [
        f"filter mask over 200 000 documents: {micro['filter_mask']}",
        f"the encoder shared by a write and two querying clients: {micro['encoder_sharing']}",
    ]
    if "writes" in results:
        writes: dict[str, dict[str, object]] = results["writes"]  # type: ignore[assignment]
        search = writes["search_c16"]
        lines += [
            "",
            f"PUT at concurrency 4: {writes['put_c4']}",
            f"bulk ingest: {writes['bulk']}",
            "searches at concurrency 16, idle and while writing 10 documents/s:",
            table(
                [
                    {"while": "idle", **search["idle"]},  # type: ignore[dict-item]
                    {"while": "10 docs/s", **search["writing_10_docs_per_s"]},  # type: ignore[dict-item]
                ],
                ["while", "requests", "errors", "requests_per_s", "p50_ms", "p90_ms", "p99_ms"],
            ),
            f"ratios: p50 {search['p50_ratio']}, requests/s {search['rps_ratio']} (goal <= 1.5)",
            f"churn: {writes['churn']}",
            f"start-up with a translog: {writes['replay']}",
        ]
    if "stores" in results:
        stores: dict[str, object] = results["stores"]  # type: ignore[assignment]
        lines += [
            "",
            f"stores, mode=semantic, {stores['passages']} passages "
            f"(FAISS {stores['faiss_index']}, Milvus {stores['milvus_index']}; "
            f"Milvus server {stores.get('milvus_server')}):",
            table(stores["rows"], STORE_COLUMNS),  # type: ignore[arg-type]
            f"Milvus over FAISS: {stores['ratios']}",
        ]
    return "\n".join(lines)


if __name__ == "__main__":
    app()
