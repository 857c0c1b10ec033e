"""The build engines on one corpus: the local engine against Ray with one and two actors, the
driver's chunking rate, and what resuming costs (``python -m bench.engines``; ``make bench``
runs it too). Ratios are measured in one run; absolute rates drift with the machine's load.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer

from bench.stats import table
from harness.service import REPO
from indexer.backends import load_embedder, onnx_variant
from indexer.build import BuildParams, build_index
from indexer.build_progress import BuildMeter
from indexer.embedding import Embedder, Vectors
from indexer.embedding_cache import EmbeddingCache
from indexer.engines.base import Engine, Positions
from indexer.engines.local import LocalEngine
from indexer.ingest import Chunked, Preparer
from indexer.loading import Corpus, load_corpus
from indexer.settings import IndexSettings
from indexer.types import Document

CISI = REPO.parent / "shared" / "benchmarks" / "cisi"
ENGINE_COLUMNS = [
    "engine",
    "actors",
    "threads_each",
    "passages",
    "start_s",
    "total_s",
    "passages_per_s",
    "steady_per_s",
    "vs_local",
]
RESUME_COLUMNS = ["build", "embedded", "cached", "seconds", "vs_full"]

app = typer.Typer(add_completion=False)


@dataclass(slots=True)
class _Timed:
    """An engine whose first and last batches are timed: the start (actors loading the model)
    apart from the steady rate."""

    inner: Engine
    first: float = 0.0
    first_size: int = 0
    last: float = 0.0

    @property
    def name(self) -> str:
        return self.inner.name

    def chunk(
        self, preparer: Preparer, documents: Sequence[Document], meter: BuildMeter
    ) -> Chunked:
        return self.inner.chunk(preparer, documents, meter)

    def embed(self, texts: Sequence[str]) -> Iterator[tuple[Positions, Vectors]]:
        for positions, vectors in self.inner.embed(texts):
            now = time.perf_counter()
            if not self.first:
                self.first, self.first_size = now, len(positions)
            self.last = now
            yield positions, vectors

    def describe(self) -> str:
        return self.inner.describe()

    def close(self) -> None:
        self.inner.close()


def _embed_row(
    label: str, actors: int, threads: int, engine: Engine, texts: list[str]
) -> dict[str, Any]:
    timed = _Timed(engine)
    started = time.perf_counter()
    try:
        count = sum(len(positions) for positions, _ in timed.embed(texts))
    finally:
        timed.close()
    total = time.perf_counter() - started
    steady = (
        (count - timed.first_size) / (timed.last - timed.first) if timed.last > timed.first else 0.0
    )
    return {
        "engine": label,
        "actors": actors,
        "threads_each": threads,
        "passages": count,
        "start_s": round(timed.first - started, 1),
        "total_s": round(total, 1),
        "passages_per_s": round(count / total, 1),
        "steady_per_s": round(steady, 1),
    }


def engine_rows(
    settings: IndexSettings, embedder: Embedder, texts: list[str]
) -> list[dict[str, Any]]:
    """The same texts through the local engine and Ray's (1 actor on all cores, then one actor
    per core); Ray's rows only where the ray extra is installed."""
    cores = os.cpu_count() or 1
    rows = [_embed_row("local", 1, cores, LocalEngine(embedder), texts)]
    try:
        import ray

        from indexer.engines.ray import ModelSpec, RayEngine
    except ImportError:  # pragma: no cover: the ray extra is part of the test install
        return rows
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    # One local Ray for every row (as a cluster would be): each row's start is its actors'.
    with tempfile.TemporaryDirectory(prefix="ray-", dir="/tmp", ignore_cleanup_errors=True) as tmp:
        ray.init(num_cpus=cores, include_dashboard=False, log_to_driver=False, _temp_dir=tmp)
        try:
            for actors, threads in ((1, cores), (cores, 1)):
                spec = ModelSpec(
                    settings.model, settings.backend, settings.onnx_dir.resolve(), threads
                )
                engine = RayEngine(spec, actors=actors)
                rows.append(_embed_row("ray", actors, threads, engine, texts))
        finally:
            ray.shutdown()
    local = rows[0]["passages_per_s"]
    for row in rows:
        row["vs_local"] = round(row["passages_per_s"] / local, 2) if local else None
    return rows


def resume_rows(corpus: Corpus, embedder: Embedder, scratch: Path) -> list[dict[str, Any]]:
    """A full build, then the same from a cache holding half the vectors (a build killed at
    half, resumed) and from a full cache (a rebuild with new BM25 parameters): what resuming
    costs beyond the embedding it saves."""
    rows: list[dict[str, Any]] = []
    with EmbeddingCache(scratch / "cache.sqlite", "bench") as cache:
        half = Corpus(list(corpus.documents)[: len(corpus.documents) // 2])
        build_index(half, scratch / "half", embedder, BuildParams(), source_label="b", cache=cache)
        builds = (("full, no cache", None), ("half cached", cache), ("all cached", cache))
        for number, (label, used) in enumerate(builds):
            report = build_index(
                corpus,
                scratch / f"i{number}",
                embedder,
                BuildParams(),
                source_label="b",
                cache=used,
            )
            stats = report.embedding
            assert stats is not None
            rows.append(
                {
                    "build": label,
                    "embedded": stats.embedded,
                    "cached": stats.cached,
                    "seconds": round(report.seconds, 2),
                }
            )
        count = cache.count()
    # Closed: the write-ahead log is checkpointed into the file.
    size = (scratch / "cache.sqlite").stat().st_size
    rows.append(
        {
            "build": "cache bytes per passage",
            "embedded": None,
            "cached": count,
            "seconds": round(size / count),
        }
    )
    for row in rows[:3]:
        row["vs_full"] = round(row["seconds"] / rows[0]["seconds"], 3)
    return rows


def chunk_rate(corpus: Corpus, embedder: Embedder) -> dict[str, float]:
    """Chunking in the driver: passages a second on one core (the build's other serial part)."""
    preparer = Preparer(embedder, BuildParams().chunking, True)
    started = time.perf_counter()
    chunked = preparer.chunk(corpus.documents)
    seconds = time.perf_counter() - started
    return {"passages": len(chunked.texts), "passages_per_s": round(len(chunked.texts) / seconds)}


def measure(collection: Path, settings: IndexSettings) -> dict[str, Any]:
    if onnx_variant(settings.backend) is not None:
        from indexer.onnx_embedding import ensure_export

        ensure_export(settings.model, settings.onnx_dir, announce=typer.echo)
    embedder = load_embedder(settings.model, settings.backend, settings.onnx_dir)
    corpus = load_corpus(collection)
    texts = Preparer(embedder, BuildParams().chunking, True).chunk(corpus.documents).texts
    typer.echo(f"build engines: {len(texts)} passages of {collection} ...")
    results: dict[str, Any] = {"chunking": chunk_rate(corpus, embedder)}
    results["engines"] = engine_rows(settings, embedder, texts)
    typer.echo(table(results["engines"], ENGINE_COLUMNS))
    with tempfile.TemporaryDirectory(prefix="bench-resume-") as scratch:
        results["resume"] = resume_rows(corpus, embedder, Path(scratch))
    typer.echo(table(results["resume"], RESUME_COLUMNS))
    typer.echo(f"chunking in the driver: {results['chunking']['passages_per_s']} passages/s")
    return results


@app.command()
def main(
    collection: Annotated[Path, typer.Option(help="A corpus (or BEIR collection).")] = CISI,
    out: Annotated[Path, typer.Option(help="Where the JSON goes.")] = REPO / "bench" / "results",
) -> None:
    """Measure the build engines and resuming; print tables, write bench/results/engines-*.json."""
    results = {"when": datetime.now(UTC).isoformat(timespec="seconds"), "cpus": os.cpu_count()}
    results.update(measure(collection, IndexSettings()))
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"engines-{datetime.now(UTC):%Y%m%dT%H%M%S}.json"
    path.write_text(json.dumps(results, indent=2) + "\n")
    typer.echo(f"wrote {path}")


if __name__ == "__main__":
    app()
