"""The FAISS implementation of the vector store: exact inner-product search by default."""

from __future__ import annotations

import re
from collections.abc import Collection
from pathlib import Path
from typing import ClassVar, Self

import faiss
import numpy as np

from indexer.types import Ids, Matrix, Scores

VECTORS_FILE = "vectors.faiss"


class FaissStore:
    kind: ClassVar[str] = "faiss"

    def __init__(self, index: faiss.Index) -> None:
        self._index = index
        self.dimension = int(index.d)

    @classmethod
    def create(cls, dimension: int, spec: str = "") -> Self:
        """``spec`` is a FAISS index factory string: "Flat" (exact, the default), "HNSW32",
        "IVF1024,Flat", ... IDMap2 around it keeps our own ids (passage rows)."""
        factory = spec or "Flat"
        try:
            index = faiss.index_factory(dimension, f"IDMap2,{factory}", faiss.METRIC_INNER_PRODUCT)
        except RuntimeError as error:
            raise ValueError(f"FAISS cannot make index {factory!r}: {_reason(error)}") from None
        return cls(index)

    def tune(self, params: str) -> None:
        """FAISS ParameterSpace settings, e.g. "efSearch=128" or "nprobe=16,efSearch=64".
        Set before vectors are added, "efConstruction=200" also deepens an HNSW build."""
        if not params:
            return
        try:
            faiss.ParameterSpace().set_index_parameters(self._index, params)  # type: ignore[arg-type]
        except RuntimeError as error:
            raise ValueError(f"FAISS parameters {params!r}: {_reason(error)}") from None

    def add(self, ids: Ids, vectors: Matrix) -> None:
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        if vectors.ndim != 2 or vectors.shape[1] != self.dimension:
            raise ValueError(
                f"expected vectors of shape (n, {self.dimension}), got {vectors.shape}"
            )
        if len(ids) != len(vectors):
            raise ValueError(f"{len(ids)} ids for {len(vectors)} vectors")
        try:
            if not self._index.is_trained:  # IVF and PQ indexes learn their partitions first
                self._index.train(vectors)
            self._index.add_with_ids(vectors, np.ascontiguousarray(ids, dtype=np.int64))
        except RuntimeError as error:  # e.g. fewer vectors than IVF partitions to train
            raise ValueError(f"FAISS cannot index these vectors: {_reason(error)}") from None

    def search(
        self, queries: Matrix, k: int, *, allowed: Collection[int] | None = None
    ) -> tuple[Scores, Ids]:
        queries = np.ascontiguousarray(queries, dtype=np.float32).reshape(-1, self.dimension)
        if k <= 0 or len(self) == 0 or (allowed is not None and len(allowed) == 0):
            return (
                np.full((len(queries), max(k, 0)), -np.inf, dtype=np.float32),
                np.full((len(queries), max(k, 0)), -1, dtype=np.int64),
            )
        params = None
        if allowed is not None:
            params = faiss.SearchParameters()
            params.sel = faiss.IDSelectorBatch(np.fromiter(allowed, dtype=np.int64))
        scores, ids = self._index.search(queries, k, params=params)
        return scores.astype(np.float32, copy=False), ids.astype(np.int64, copy=False)

    def remove(self, ids: Ids) -> int:
        inner = faiss.downcast_index(self._index.index)  # type: ignore[attr-defined]
        if "HNSW" in type(inner).__name__:
            raise NotImplementedError("FAISS HNSW indexes cannot remove vectors; rebuild instead")
        selector = faiss.IDSelectorBatch(np.ascontiguousarray(ids, dtype=np.int64))
        return int(self._index.remove_ids(selector))

    def save(self, directory: Path) -> None:
        faiss.write_index(self._index, str(directory / VECTORS_FILE))

    @classmethod
    def load(cls, directory: Path) -> Self:
        return cls(faiss.read_index(str(directory / VECTORS_FILE)))

    def __len__(self) -> int:
        return int(self._index.ntotal)


def _reason(error: RuntimeError) -> str:
    """FAISS's own words, without the C++ function signature and source line before them."""
    return re.sub(r"(?s)^Error in .*?:\d+: ", "", str(error)).strip()
