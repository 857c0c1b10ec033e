"""How far Milvus Lite's keyword ranking drifts from the FAISS store's as writes add segments.

Milvus Lite 3.2 scores each segment with that segment's own document frequencies and average
length (a server keeps corpus-wide statistics), so the same corpus ranks a little differently
depending on how it was written. This builds one collection the way ``eval`` does (the
project's chunker and title prefix, one store per scenario) and scores keyword mode against
the FAISS store built from the same passages: nDCG@10 as ``eval`` computes it, how many
queries keep the same top 10 in the same order, and the mean overlap of the two top 10s.
Vectors are not used (keyword mode only), so the model only chunks.

    python -m bench.bm25_segments ../shared/benchmarks/cisi [ONNX_DIR [SCENARIO ...]]

docs/relevance.md has the numbers.
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from indexer.backends import load_embedder
from indexer.build import BuildParams, new_manifest
from indexer.evaluation import DOCUMENT_DEPTH, Collection, load_collection, trec_eval
from indexer.ingest import Preparer
from indexer.loading import load_corpus
from indexer.manifest import Manifest
from indexer.search import Query, Searcher
from indexer.stores import KINDS, Store
from indexer.stores.milvus.client import MilvusTarget, connect
from indexer.stores.milvus.store import MilvusStore
from indexer.types import IndexedDocument

FAISS = KINDS["faiss"]
DIMENSION = 4  # vectors are not searched here
MODEL = "bench/none"


def prepared(source: Path, onnx_dir: Path) -> list[IndexedDocument]:
    """The collection's documents chunked as ``eval`` chunks them, with placeholder vectors."""
    embedder = load_embedder("sentence-transformers/all-MiniLM-L6-v2", onnx_dir=onnx_dir)
    params = BuildParams()
    preparer = Preparer(embedder, params.chunking, params.title_prefix)
    chunked = preparer.chunk(load_corpus(source / "corpus.jsonl").documents)
    return chunked.with_vectors(np.ones((len(chunked.texts), DIMENSION), "f4"))


def written(
    target: MilvusTarget,
    parts: Sequence[Sequence[IndexedDocument]],
    *,
    size: int = 100,
    flush: bool = False,
    reopen: bool = False,
) -> MilvusStore:
    """A store created empty, then each part written ``size`` documents a put (live writes),
    and after each part flushed (sealed into a segment of its own) with ``flush``, or the
    store closed and opened again (a restart) with ``reopen``."""
    store = MilvusStore.create(target, manifest("milvus", "FLAT"), [])
    for part in parts:
        for start in range(0, len(part), size):
            store.put(part[start : start + size])
        if flush:
            client = connect(target)
            try:
                client.flush(store.version.passages)
            finally:
                client.close()
        if reopen:
            store.close()
            store = MilvusStore.open(target)
    store.refresh()
    return store


def split(items: Sequence[IndexedDocument], count: int) -> list[Sequence[IndexedDocument]]:
    """``items`` in ``count`` parts, the last maybe smaller."""
    return every(items, -(-len(items) // count))


def every(items: Sequence[IndexedDocument], size: int) -> list[Sequence[IndexedDocument]]:
    return [items[start : start + size] for start in range(0, len(items), size)]


def manifest(kind: str, spec: str) -> Manifest:
    return new_manifest(MODEL, DIMENSION, BuildParams(store=kind, index_factory=spec), "b")


def ranked(store: Store, queries: dict[str, str]) -> dict[str, list[str]]:
    """Each query's 100 best documents in keyword mode, as ``eval`` ranks them."""
    searcher = Searcher(store, _NoEmbedder())  # type: ignore[arg-type]
    return {
        q: [
            hit.passage.doc_id
            for hit in searcher.search(
                Query(text, mode="keyword", k=DOCUMENT_DEPTH, group_by_document=True)
            )
        ]
        for q, text in queries.items()
    }


def ndcg_at_10(collection: Collection, run: dict[str, list[str]]) -> float:
    """As ``eval`` scores it (trec_eval, document level, missing queries count 0)."""
    scored = {
        q: {d: float(DOCUMENT_DEPTH - i) for i, d in enumerate(docs)} for q, docs in run.items()
    }
    measures = trec_eval().RelevanceEvaluator(collection.qrels, {"ndcg_cut.10"}).evaluate(scored)
    return statistics.fmean(measures.get(q, {}).get("ndcg_cut_10", 0.0) for q in collection.queries)


class _NoEmbedder:
    """Keyword mode never encodes a query."""

    dimension = DIMENSION
    model_name = MODEL


def main(source: Path, onnx_dir: Path, only: Sequence[str] = ()) -> None:
    collection = load_collection(source)
    items = prepared(source, onnx_dir)
    passages = sum(len(i.passages) for i in items)
    print(f"{source.name}: {len(items)} documents, {passages} passages", file=sys.stderr)
    with tempfile.TemporaryDirectory(prefix="bm25-segments-") as scratch:
        where = Path(scratch)
        reference = FAISS.store.create(
            FAISS.location_in(where, "faiss"), manifest("faiss", "Flat"), items
        )

        def lite(name: str) -> MilvusTarget:
            return MilvusTarget(uri=str(where / "milvus.db"), collection=name)

        scenarios: list[tuple[str, Callable[[], Store]]] = [
            (
                "one batch (a build)",
                lambda: MilvusStore.create(lite("one"), manifest("milvus", "FLAT"), items),
            ),
            ("puts of 100 documents", lambda: written(lite("p100"), [items])),
            ("puts of 1 document", lambda: written(lite("p1"), [items], size=1)),
            ("reopened halfway", lambda: written(lite("r2"), split(items, 2), reopen=True)),
            ("2 flushed parts", lambda: written(lite("f2"), split(items, 2), flush=True)),
            ("5 flushed parts", lambda: written(lite("f5"), split(items, 5), flush=True)),
            ("15 flushed parts", lambda: written(lite("f15"), every(items, 100), flush=True)),
        ]
        if only:
            scenarios = [(label, make) for label, make in scenarios if label in only]
        expected: dict[str, list[str]] = {}
        rows: list[tuple[str, float, int, float]] = []
        measured: list[tuple[str, Callable[[], Store]]] = [("FAISS", lambda: reference)]
        for label, make in [*measured, *scenarios]:
            started = time.perf_counter()
            store = make()
            run = ranked(store, collection.queries)
            expected = expected or run
            same = sum(run[q][:10] == expected[q][:10] for q in expected)
            overlap = statistics.fmean(
                len(set(run[q][:10]) & set(expected[q][:10])) for q in expected
            )
            rows.append((label, ndcg_at_10(collection, run), same, overlap))
            print(f"{label}: {time.perf_counter() - started:.0f} s", file=sys.stderr)
            if store is not reference:
                store.close()
        reference.close()
    print(f"{'written as':<24} {'nDCG@10':>8} {'same top 10':>12} {'overlap@10':>11}")
    for label, ndcg, same, overlap in rows:
        print(f"{label:<24} {ndcg:>8.4f} {same:>8}/{len(expected)} {overlap:>11.2f}")


if __name__ == "__main__":
    # python -m bench.bm25_segments DIR [ONNX_DIR [SCENARIO ...]]: the scenarios named, or all.
    arguments = sys.argv[1:]
    main(
        Path(arguments[0]),
        Path(arguments[1]) if len(arguments) > 1 else Path("data/onnx"),
        arguments[2:],
    )
