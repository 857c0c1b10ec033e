"""``python -m bench.soak`` (``make soak``): the real server under a long mixed load, on loopback.

For a bounded time (10 minutes by default) at concurrency 32: searches in every mode, with and
without filters, batches, document reads, replacements and deletes. It reports errors (goal 0),
latency percentiles, and resident memory sampled along the way (goal: under 5 % growth from
the end of a 2-minute warm-up to the end), and writes bench/results/soak-<time>.json.
"""

from __future__ import annotations

import itertools
import json
import random
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer

from bench.service import ensure_index, load_queries
from bench.stats import percentiles_ms, rss_mb, table
from harness.load import LoadResult, Request, run_requests
from harness.service import REPO, copy_index, free_port, server
from indexer.backends import load_embedder, onnx_variant
from indexer.build import BuildParams
from indexer.loading import load_corpus
from indexer.settings import IndexSettings
from indexer.types import Document

app = typer.Typer(add_completion=False)
CISI = REPO.parent / "shared" / "benchmarks" / "cisi"
KEY = "soak-write-key"
# Long enough for the first merges (one every ~1000 changed rows, about a minute of this mix)
# and for the caches to fill: growth after it is what would keep growing.
WARM_UP_SECONDS = 120
SAMPLE_SECONDS = 30


def mixed_requests(
    documents: Sequence[Document], queries: Sequence[str], seed: int = 7
) -> Iterator[Request]:
    """An endless, reproducible mix. Writes go to a pool of 200 soak documents, so replaces and
    deletes race with each other and with reads, as they do in production."""
    rng = random.Random(seed)
    modes = ["hybrid", "semantic", "keyword"]
    for n in itertools.count():
        query = queries[n % len(queries)]
        roll = rng.random()
        doc_id = f"soak-{rng.randrange(200)}"
        if roll < 0.45:
            yield Request("GET", "/search", {"q": query, "mode": rng.choice(modes), "k": "10"})
        elif roll < 0.60:
            body = {"query": query, "k": 5, "filter": {"doc_id": {"in": [doc_id, "1", "2"]}}}
            yield Request("POST", "/search", json=body)
        elif roll < 0.70:
            searches = [{"query": q, "k": 5} for q in rng.sample(list(queries), 4)]
            yield Request("POST", "/search/batch", json={"searches": searches})
        elif roll < 0.80:
            yield Request("GET", f"/documents/{doc_id}", ok=(200, 404))
        elif roll < 0.82:
            yield Request("GET", "/documents", {"limit": "20"})
        elif roll < 0.93:
            source = documents[rng.randrange(len(documents))]
            body = {
                "title": source.title[:200] or "untitled",
                "text": source.text[:600] + f" (revision {n})",
                "metadata": {"round": n, "kind": rng.choice(["a", "b"])},
            }
            yield Request("PUT", f"/documents/{doc_id}", json=body, ok=(200, 201))
        else:
            yield Request("DELETE", f"/documents/{doc_id}", ok=(204, 404))


def _until(deadline: float, requests: Iterator[Request]) -> Iterator[Request]:
    for request in requests:
        if time.monotonic() >= deadline:
            return
        yield request


@app.command()
def main(
    seconds: Annotated[int, typer.Option(help="How long the load runs.")] = 600,
    concurrency: Annotated[int, typer.Option(help="Requests in flight.")] = 32,
    collection: Annotated[Path, typer.Option(help="BEIR-layout collection to serve.")] = CISI,
    out: Annotated[Path, typer.Option(help="Where results go.")] = REPO / "bench" / "results",
) -> None:
    """Soak the service on COLLECTION and write bench/results/soak-<time>.json."""
    settings = IndexSettings()
    if onnx_variant(settings.backend) is not None:
        from indexer.onnx_embedding import ensure_export

        ensure_export(settings.model, settings.onnx_dir, announce=typer.echo)
    embedder = load_embedder(settings.model, settings.backend, settings.onnx_dir)
    corpus = load_corpus(collection / "corpus.jsonl")
    queries = load_queries(collection)
    out.mkdir(parents=True, exist_ok=True)
    built = ensure_index(corpus, out / f".index-{collection.name}", embedder, BuildParams())
    env = {
        "SEARCH_API_KEY": KEY,
        "SEARCH_BACKEND": settings.backend,
        "SEARCH_ONNX_DIR": str(settings.onnx_dir.resolve()),
    }
    with tempfile.TemporaryDirectory(prefix="soak-") as scratch:
        index_dir = copy_index(built, Path(scratch) / "index")
        log = Path(scratch) / "service.log"
        port = free_port()
        with server(index_dir, port, env, log) as (process, _):
            base = f"http://127.0.0.1:{port}"
            samples: list[tuple[float, float]] = []
            stop = threading.Event()

            def sample() -> None:
                started = time.monotonic()
                while not stop.wait(SAMPLE_SECONDS):
                    samples.append((round(time.monotonic() - started), rss_mb(process.pid)))

            requests = mixed_requests(corpus.documents, queries)

            def run_for(seconds: float) -> LoadResult:
                """The mix, continued, for ``seconds``."""
                deadline = time.monotonic() + seconds
                return run_requests(
                    base,
                    _until(deadline, requests),
                    concurrency=concurrency,
                    headers={"X-API-Key": KEY},
                )

            typer.echo(f"warm-up {WARM_UP_SECONDS} s ...")
            warm = run_for(WARM_UP_SECONDS)
            rss_start = rss_mb(process.pid)
            sampler = threading.Thread(target=sample, daemon=True)
            sampler.start()
            typer.echo(f"soak {seconds} s at concurrency {concurrency} ...")
            load = run_for(seconds)
            stop.set()
            rss_end = rss_mb(process.pid)
        service_log = log.read_text()
    results: dict[str, Any] = {
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "collection": str(collection),
        "seconds": seconds,
        "concurrency": concurrency,
        "warm_up": {"requests": warm.requests, "errors": warm.errors},
        "requests": load.requests,
        "errors": load.errors,
        "failures": {**warm.failures, **load.failures},
        "requests_per_s": round(load.requests_per_second, 1),
        **percentiles_ms(load.latencies),
        "rss_after_warm_up_mb": rss_start,
        "rss_end_mb": rss_end,
        "rss_growth_percent": round(100 * (rss_end - rss_start) / rss_start, 1),
        "rss_samples_mb": samples,
        "tracebacks_in_log": service_log.count("Traceback"),
        "log_warnings": [
            line for line in service_log.splitlines() if "WARNING" in line or "ERROR" in line
        ][:50],
    }
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    path = out / f"soak-{stamp}.json"
    path.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    columns = ["requests", "errors", "requests_per_s", "p50_ms", "p90_ms", "p99_ms"]
    columns += ["rss_after_warm_up_mb", "rss_end_mb", "rss_growth_percent", "tracebacks_in_log"]
    typer.echo(table([results], columns))
    typer.echo(f"\nwritten: {path}")
    failed = load.errors or warm.errors or results["tracebacks_in_log"]
    if failed or results["rss_growth_percent"] >= 5:
        raise typer.Exit(1)


if __name__ == "__main__":
    app()
