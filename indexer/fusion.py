"""Merging the semantic and keyword rankings into one (hybrid search).

Both functions take rankings best-first and return a fused score per row; higher is better.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

FusionMethod = Literal["rrf", "convex"]


@dataclass(frozen=True, slots=True)
class Ranking:
    rows: Sequence[int]
    scores: Sequence[float]


@dataclass(frozen=True, slots=True)
class FusionParams:
    # Equal-weight convex fusion won the CISI evaluation (docs/relevance.md) and needs no tuning.
    method: FusionMethod = "convex"
    rrf_k: int = 60
    """RRF's damping constant: larger flattens the advantage of the very top ranks."""
    semantic_weight: float = 0.5
    """For ``convex``: weight of the normalised semantic score (keyword gets the rest)."""

    def fuse(self, semantic: Ranking, keyword: Ranking) -> dict[int, float]:
        if self.method == "rrf":
            return reciprocal_rank_fusion([semantic, keyword], self.rrf_k)
        return convex_combination(
            [(self.semantic_weight, semantic), (1.0 - self.semantic_weight, keyword)]
        )


def reciprocal_rank_fusion(rankings: Sequence[Ranking], k: int = 60) -> dict[int, float]:
    """Cormack et al. (2009): sum of 1 / (k + rank) over the rankings a row appears in."""
    fused: dict[int, float] = {}
    for ranking in rankings:
        for rank, row in enumerate(ranking.rows, start=1):
            fused[row] = fused.get(row, 0.0) + 1.0 / (k + rank)
    return fused


def convex_combination(weighted: Sequence[tuple[float, Ranking]]) -> dict[int, float]:
    """Weighted sum of min-max normalised scores; a row missing from a ranking scores 0 there."""
    fused: dict[int, float] = {}
    for weight, ranking in weighted:
        if not ranking.rows:
            continue
        low, high = min(ranking.scores), max(ranking.scores)
        spread = high - low
        for row, score in zip(ranking.rows, ranking.scores, strict=True):
            normalised = (score - low) / spread if spread > 0 else 1.0
            fused[row] = fused.get(row, 0.0) + weight * normalised
    return fused
