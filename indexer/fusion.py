"""Merging the semantic and keyword rankings into one (hybrid search).

Rankings are numpy arrays of rows and scores, best first; fusion returns the union of their
rows (sorted by row) with a fused score each, higher is better.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import numpy.typing as npt

FusionMethod = Literal["rrf", "convex"]
Rows = npt.NDArray[np.int64]
Floats = npt.NDArray[np.float64]


@dataclass(frozen=True, slots=True)
class Ranking:
    rows: Rows
    scores: Floats

    @classmethod
    def of(
        cls, rows: Sequence[int] | Rows, scores: Sequence[float] | npt.NDArray[np.floating]
    ) -> Ranking:
        return cls(np.asarray(rows, dtype=np.int64), np.asarray(scores, dtype=np.float64))

    def as_dict(self) -> dict[int, float]:
        return dict(zip(self.rows.tolist(), self.scores.tolist(), strict=True))


@dataclass(frozen=True, slots=True)
class FusionParams:
    # Equal-weight convex fusion won the CISI evaluation (docs/relevance.md) and needs no tuning.
    method: FusionMethod = "convex"
    rrf_k: int = 60
    """RRF's damping constant: larger flattens the advantage of the very top ranks."""
    semantic_weight: float = 0.5
    """For ``convex``: weight of the normalised semantic score (keyword gets the rest)."""

    def fuse(self, semantic: Ranking, keyword: Ranking) -> Ranking:
        if self.method == "rrf":
            return reciprocal_rank_fusion([semantic, keyword], self.rrf_k)
        return convex_combination(
            [(self.semantic_weight, semantic), (1.0 - self.semantic_weight, keyword)]
        )


def union(rankings: Sequence[Ranking]) -> tuple[Rows, list[npt.NDArray[np.intp]]]:
    """All rows of the rankings (sorted), and where each ranking's rows sit among them."""
    rows, inverse = np.unique(np.concatenate([r.rows for r in rankings]), return_inverse=True)
    bounds = np.cumsum([len(r.rows) for r in rankings])[:-1]
    return rows.astype(np.int64), np.split(inverse, bounds)


def reciprocal_rank_fusion(rankings: Sequence[Ranking], k: int = 60) -> Ranking:
    """Cormack et al. (2009): sum of 1 / (k + rank) over the rankings a row appears in."""
    rows, positions = union(rankings)
    fused = np.zeros(len(rows))
    for at in positions:
        fused[at] += 1.0 / (k + np.arange(1, len(at) + 1))
    return Ranking(rows, fused)


def convex_combination(weighted: Sequence[tuple[float, Ranking]]) -> Ranking:
    """Weighted sum of min-max normalised scores; a row missing from a ranking scores 0 there."""
    rows, positions = union([ranking for _, ranking in weighted])
    fused = np.zeros(len(rows))
    for (weight, ranking), at in zip(weighted, positions, strict=True):
        if not len(at):
            continue
        low, high = ranking.scores.min(), ranking.scores.max()
        spread = high - low
        normalised = (ranking.scores - low) / spread if spread > 0 else np.ones(len(at))
        fused[at] += weight * normalised
    return Ranking(rows, fused)
