"""The FAISS side of the local store: a saved base index plus the vectors written since.

The base is whatever FAISS index the build asked for (``Flat``, ``HNSW32``, ``IVF1024,Flat``, ...)
and is never modified once made: searches run on it from many threads, and HNSW graphs cannot
remove vectors anyway. Vectors written since the last merge go to an append-only *delta*,
searched exactly. Removed rows are not removed from either: every search gets the mask of
rows it may return (live, and passing the query's filter), and the next merge builds a new
base from the live rows only.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import faiss
import numpy as np
import numpy.typing as npt

from indexer.stores.faiss.arrays import AppendOnlyArray
from indexer.types import Ids, Matrix, Scores

VECTORS_FILE = "vectors.faiss"
# With a filter that leaves at most this many base rows, an approximate index (HNSW, IVF) is
# bypassed for an exact scan of just those rows: graph and cluster searches can miss most of a
# small allowed set, and scanning a few thousand vectors costs less than a millisecond.
EXACT_SCAN_LIMIT = 20_000

Mask = npt.NDArray[np.bool_]
# Factory strings with parameters, exact to approximate: a graph and partitions, which filtered
# searches must search as well as the exact index (the store contract runs every one).
INDEX_EXAMPLES = (("Flat", ""), ("HNSW32", "efSearch=200"), ("IVF4,Flat", "nprobe=4"))


def make_index(dimension: int, spec: str, params: str) -> faiss.Index:
    """An empty FAISS index from a factory string, with its parameters applied (``efSearch``,
    ``nprobe``; set before vectors are added, ``efConstruction`` also shapes an HNSW build)."""
    factory = spec or "Flat"
    try:
        index = faiss.index_factory(dimension, factory, faiss.METRIC_INNER_PRODUCT)
    except RuntimeError as error:
        raise ValueError(f"FAISS cannot make index {factory!r}: {_reason(error)}") from None
    _tune(index, params)
    return index


def _tune(index: faiss.Index, params: str) -> None:
    if not params:
        return
    try:
        faiss.ParameterSpace().set_index_parameters(index, params)  # type: ignore[arg-type]
    except RuntimeError as error:
        raise ValueError(f"FAISS parameters {params!r}: {_reason(error)}") from None


def _reason(error: RuntimeError) -> str:
    """FAISS's own words, without the C++ function signature and source line before them."""
    return re.sub(r"(?s)^Error in .*?:\d+: ", "", str(error)).strip()


def _flat_part(index: faiss.Index) -> faiss.Index | None:
    """An exact (flat) index over the same rows, if ``index`` holds one: itself for Flat, the
    storage of HNSW. Searching it with a selector scans exactly the allowed rows."""
    index = faiss.downcast_index(index)
    if isinstance(index, faiss.IndexFlat):
        return index
    storage = getattr(index, "storage", None)
    if storage is not None:
        flat = faiss.downcast_index(storage)
        if isinstance(flat, faiss.IndexFlat):
            return flat
    return None


@dataclass(frozen=True, slots=True)
class VectorView:
    """An immutable view: the base index and the first rows of the delta."""

    base: faiss.Index
    delta: Matrix
    dimension: int
    exact: bool
    """The base is exact (Flat): a masked search of it is a scan of the allowed rows."""

    @property
    def rows(self) -> int:
        return int(self.base.ntotal) + len(self.delta)

    def search(self, query: Matrix, k: int, allowed: Mask | None = None) -> tuple[Scores, Ids]:
        """The ``k`` rows most similar to ``query`` (one vector) among ``allowed``, best first.

        ``allowed`` has one flag per row of this view; every search of a live index passes
        one, since removed rows are only masked out.
        """
        query = np.ascontiguousarray(query, dtype=np.float32).reshape(1, self.dimension)
        base_rows = int(self.base.ntotal)
        found = [self._search_base(query, k, None if allowed is None else allowed[:base_rows])]
        if len(self.delta):
            delta_allowed = None if allowed is None else allowed[base_rows : self.rows]
            scores, rows = _scan(query, self.delta, k, delta_allowed)
            found.append((scores, rows + base_rows))
        scores = np.concatenate([f[0] for f in found])
        rows = np.concatenate([f[1] for f in found])
        # Best first; equal scores by row, as in one exact index.
        order = np.lexsort((rows, -scores))[:k]
        return scores[order], rows[order]

    def _search_base(self, query: Matrix, k: int, allowed: Mask | None) -> tuple[Scores, Ids]:
        total = int(self.base.ntotal)
        if total == 0 or k <= 0:
            return _NONE
        if allowed is None:
            scores, rows = self.base.search(query, min(k, total))
            return _found(scores[0], rows[0])
        count = int(np.count_nonzero(allowed))
        if count == 0:
            return _NONE
        if not self.exact and count <= EXACT_SCAN_LIMIT:
            flat = _flat_part(self.base)
            if flat is None:  # IVF: read the allowed vectors back and scan them
                rows = np.flatnonzero(allowed).astype(np.int64)
                scores, at = _scan(query, _reconstruct(self.base, rows), k, None)
                return scores, rows[at]
            return _masked_search(flat, query, min(k, count), allowed)
        return _masked_search(self.base, query, min(k, count), allowed)

    def vectors(self, rows: Ids) -> Matrix:
        """The stored vectors of these rows (for merges)."""
        base_rows = int(self.base.ntotal)
        out = np.empty((len(rows), self.dimension), dtype=np.float32)
        in_base = rows < base_rows
        if in_base.any():
            out[in_base] = _reconstruct(self.base, rows[in_base])
        out[~in_base] = self.delta[rows[~in_base] - base_rows]
        return out


_NONE: tuple[Scores, Ids] = (np.empty(0, dtype=np.float32), np.empty(0, dtype=np.int64))


def _found(scores: Scores, rows: Ids) -> tuple[Scores, Ids]:
    hits = rows >= 0
    return scores[hits].astype(np.float32), rows[hits].astype(np.int64)


def _scan(query: Matrix, vectors: Matrix, k: int, allowed: Mask | None) -> tuple[Scores, Ids]:
    """Exact search of a small matrix, with FAISS's own kernel so that a vector scores the
    same here as in a Flat index (numpy's matmul rounds differently)."""
    if allowed is not None:
        rows = np.flatnonzero(allowed).astype(np.int64)
        vectors = vectors[rows]
    else:
        rows = np.arange(len(vectors), dtype=np.int64)
    if not len(rows) or k <= 0:
        return _NONE
    scores, at = faiss.knn(
        query, np.ascontiguousarray(vectors), min(k, len(rows)), faiss.METRIC_INNER_PRODUCT
    )
    scores, at = _found(scores[0], at[0])
    return scores, rows[at]


def _masked_search(index: faiss.Index, query: Matrix, k: int, allowed: Mask) -> tuple[Scores, Ids]:
    """FAISS's search restricted to the allowed rows (a bitmap selector)."""
    bitmap = np.packbits(allowed, bitorder="little")
    params = _search_parameters(index)
    params.sel = faiss.IDSelectorBitmap(len(allowed), faiss.swig_ptr(bitmap))
    scores, rows = index.search(query, k, params=params)
    return _found(scores[0], rows[0])


def _search_parameters(index: faiss.Index) -> Any:
    """Search parameters of the index's own kind, so that its tuning (efSearch, nprobe) holds
    when a selector is passed (plain SearchParameters would reset them to defaults)."""
    index = faiss.downcast_index(index)
    if isinstance(index, faiss.IndexHNSW):
        params = faiss.SearchParametersHNSW()  # type: ignore[attr-defined]
        params.efSearch = index.hnsw.efSearch
        return params
    if isinstance(index, faiss.IndexIVF):
        params = faiss.SearchParametersIVF()
        params.nprobe = index.nprobe
        return params
    return faiss.SearchParameters()


def _reconstruct(index: faiss.Index, rows: Ids) -> Matrix:
    flat = _flat_part(index)
    source = flat if flat is not None else index
    return np.asarray(source.reconstruct_batch(rows), dtype=np.float32)


class VectorIndex:
    """The writer's side: a base index and the delta that vectors are appended to."""

    def __init__(self, base: faiss.Index, spec: str, params: str) -> None:
        self.spec = spec
        self.params = params
        self.dimension = int(base.d)
        self._base = base
        self._exact = isinstance(faiss.downcast_index(base), faiss.IndexFlat)
        ivf = faiss.try_extract_index_ivf(base)
        if ivf is not None:  # so that merges can read its vectors back
            ivf.make_direct_map()
        self._delta: AppendOnlyArray[np.float32] = AppendOnlyArray(np.float32, (self.dimension,))

    @classmethod
    def build(cls, dimension: int, spec: str, params: str, vectors: Matrix) -> VectorIndex:
        """A base index of ``vectors`` (rows 0, 1, 2, ...)."""
        index = make_index(dimension, spec, params)
        vectors = np.ascontiguousarray(vectors, dtype=np.float32).reshape(-1, dimension)
        try:
            if len(vectors) and not index.is_trained:  # IVF and PQ learn their partitions first
                index.train(vectors)
            if len(vectors):
                index.add(vectors)
        except RuntimeError as error:  # e.g. fewer vectors than IVF partitions to train
            raise ValueError(f"FAISS cannot index these vectors: {_reason(error)}") from None
        return cls(index, spec, params)

    def __len__(self) -> int:
        return int(self._base.ntotal) + len(self._delta)

    def add(self, vectors: Matrix) -> None:
        """Append vectors as the next rows; searchable once published."""
        vectors = np.asarray(vectors, dtype=np.float32)
        if vectors.ndim != 2 or vectors.shape[1] != self.dimension:
            raise ValueError(
                f"expected vectors of shape (n, {self.dimension}), got {vectors.shape}"
            )
        self._delta.extend(vectors)

    def publish(self) -> VectorView:
        return VectorView(self._base, self._delta.head(), self.dimension, self._exact)

    @staticmethod
    def compact(view: VectorView, keep: Ids, spec: str, params: str) -> VectorIndex:
        """A new base index of just the rows ``keep`` of ``view``, renumbered from 0."""
        return VectorIndex.build(view.dimension, spec, params, view.vectors(keep))

    def save(self, directory: Path) -> None:
        if len(self._delta):
            raise ValueError("only a merged vector index (no delta) can be saved")
        faiss.write_index(self._base, str(directory / VECTORS_FILE))

    @classmethod
    def load(cls, directory: Path, spec: str, params: str) -> VectorIndex:
        index = faiss.read_index(str(directory / VECTORS_FILE))
        _tune(index, params)
        return cls(index, spec, params)
