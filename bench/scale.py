"""The vector-index benchmark at scale: build time, memory, latency and recall against exact.

Vectors are random mixtures of two real passage embeddings plus Gaussian noise (normalised),
so a million distinct points spread over the region real text embeddings occupy. (Plain noisy
copies of a few thousand vectors would make clusters of hundreds of near-duplicates, whose
exact top 10 is decided by the noise alone: no index recalls that, and no corpus looks like
it.) Queries are real query embeddings with noise. Ground truth is an exact (Flat) search.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import faiss
import numpy as np
import numpy.typing as npt

from bench.stats import percentiles_ms

Matrix = npt.NDArray[np.float32]


def replicate(base: Matrix, count: int, noise: float, seed: int = 0, mix: bool = False) -> Matrix:
    """``count`` unit vectors: rows of ``base`` in turn (or, with ``mix``, random mixtures of
    two random rows), each with its own Gaussian noise."""
    rng = np.random.default_rng(seed)
    out = np.empty((count, base.shape[1]), dtype=np.float32)
    for start in range(0, count, 100_000):  # chunks keep the temporaries small
        stop = min(start + 100_000, count)
        rows = base[np.arange(start, stop) % len(base)]
        if mix:
            weight = rng.random((stop - start, 1), dtype=np.float32)
            rows = (
                weight * base[rng.integers(len(base), size=stop - start)]
                + (1 - weight) * (base[rng.integers(len(base), size=stop - start)])
            )
        chunk = rows + rng.normal(0, noise, rows.shape).astype(np.float32)
        out[start:stop] = chunk / np.linalg.norm(chunk, axis=1, keepdims=True)
    return out


def exact_top(vectors: Matrix, queries: Matrix, k: int) -> npt.NDArray[np.int64]:
    index = faiss.IndexFlatIP(vectors.shape[1])
    index.add(vectors)
    ids: npt.NDArray[np.int64] = index.search(queries, k)[1]
    return ids


def recall_at(found: Sequence[Sequence[int]], truth: npt.NDArray[np.int64], k: int) -> float:
    """Mean share of each query's true top ``k`` among the ids found for it."""
    return float(
        np.mean([len(set(f[:k]) & set(t[:k])) / k for f, t in zip(found, truth, strict=True)])
    )


def measure(
    factory: str,
    vectors: Matrix,
    queries: Matrix,
    truth: npt.NDArray[np.int64],
    search_params: Sequence[str],
    k: int = 10,
    build_params: str = "",
) -> list[dict[str, Any]]:
    """Build one index type (``build_params`` set before adding, e.g. "efConstruction=200"),
    then time single-query searches under each search parameter setting."""
    started = time.perf_counter()
    index = faiss.index_factory(vectors.shape[1], factory, faiss.METRIC_INNER_PRODUCT)
    if build_params:
        faiss.ParameterSpace().set_index_parameters(index, build_params)  # type: ignore[arg-type]
    if not index.is_trained:
        sample = vectors[
            np.random.default_rng(1).choice(len(vectors), min(len(vectors), 200_000), replace=False)
        ]
        index.train(sample)
    index.add(vectors)
    build_seconds = time.perf_counter() - started
    size_mb = len(faiss.serialize_index(index)) / 2**20
    rows = []
    for params in search_params or [""]:
        if params:
            faiss.ParameterSpace().set_index_parameters(index, params)  # type: ignore[arg-type]
        index.search(queries[:20], k)  # warm-up
        seconds, found = [], []
        for query in queries:
            begun = time.perf_counter()
            found.append(index.search(query[None, :], k)[1][0])
            seconds.append(time.perf_counter() - begun)
        recall = recall_at(found, truth, k)
        rows.append(
            {
                "index": f"{factory} ({build_params})" if build_params else factory,
                "search_params": params or "-",
                "build_s": round(build_seconds, 1),
                "size_mb": round(size_mb, 1),
                f"recall_at_{k}": round(recall, 4),
                **percentiles_ms(seconds),
            }
        )
    return rows
