"""Answer queries with ranked passages: semantic, keyword (BM25) or hybrid (fused)."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import Literal, get_args

import numpy as np
import numpy.typing as npt

from indexer.embedding import Embedder, Vectors
from indexer.fusion import FusionParams, Ranking, union
from indexer.index import IndexLoadError, SearchIndex
from indexer.types import Evidence, Hit

Mode = Literal["semantic", "keyword", "hybrid"]
MODES: tuple[Mode, ...] = get_args(Mode)
DEFAULT_MODE: Mode = "hybrid"
# Hybrid fusion and grouping rank a fixed-depth candidate pool, so every page of a result
# list is cut from the same ranking; deeper pages than this are not served.
CANDIDATE_POOL = 1000


class UnknownDocumentError(KeyError):
    def __init__(self, doc_ids: Collection[str]) -> None:
        super().__init__(", ".join(sorted(doc_ids)))
        self.doc_ids = sorted(doc_ids)


@dataclass(frozen=True, slots=True)
class Query:
    text: str
    mode: Mode = DEFAULT_MODE
    k: int = 5
    offset: int = 0
    sources: Collection[str] | None = None
    """Only search these document ids."""
    min_score: float | None = None
    """Drop results whose score (the mode's: cosine, BM25 or fused) is below this."""
    group_by_document: bool = False
    """At most one passage per document (its best), counting the others that matched."""


class _Ranked:
    """Every candidate row of one query, with its evidence, and the ranking order over them."""

    def __init__(self, rows: npt.NDArray[np.int64]) -> None:
        self.rows = rows
        self.semantic_score = np.full(len(rows), np.nan)
        self.semantic_rank = np.zeros(len(rows), dtype=np.int64)  # 0: not in that list
        self.keyword_score = np.full(len(rows), np.nan)
        self.keyword_rank = np.zeros(len(rows), dtype=np.int64)
        self.fused_score = np.full(len(rows), np.nan)
        self.score = self.fused_score
        self.order = np.empty(0, dtype=np.intp)

    def evidence(self, at: int) -> Evidence:
        return Evidence(
            semantic_score=_optional(self.semantic_score[at]),
            semantic_rank=int(self.semantic_rank[at]) or None,
            keyword_score=_optional(self.keyword_score[at]),
            keyword_rank=int(self.keyword_rank[at]) or None,
            fused_score=_optional(self.fused_score[at]),
        )


def _optional(value: np.floating) -> float | None:
    return None if np.isnan(value) else float(value)


class Searcher:
    def __init__(
        self,
        index: SearchIndex,
        embedder: Embedder,
        fusion: FusionParams | None = None,
        candidate_pool: int = CANDIDATE_POOL,
    ) -> None:
        if embedder.model_name != index.manifest.model.name:
            raise IndexLoadError(
                f"the index was built with model {index.manifest.model.name!r}, "
                f"but the configured model is {embedder.model_name!r}"
            )
        if embedder.dimension != index.manifest.model.dimension:
            raise IndexLoadError(
                f"the index holds {index.manifest.model.dimension}-dimensional vectors, "
                f"but model {embedder.model_name!r} makes {embedder.dimension}-dimensional ones"
            )
        self.index = index
        self.embedder = embedder
        self.fusion = fusion or FusionParams()
        self.candidate_pool = candidate_pool

    def search(self, query: Query) -> list[Hit]:
        return self.search_many([query])[0]

    def search_many(self, queries: Sequence[Query]) -> list[list[Hit]]:
        """Answer several queries, embedding all their texts in one batch."""
        allowed = [self._allowed_rows(q.sources) for q in queries]
        semantic = [i for i, q in enumerate(queries) if q.mode != "keyword"]
        vectors: dict[int, Vectors] = {}
        if semantic:
            encoded = self.embedder.encode([queries[i].text for i in semantic])
            vectors = {i: encoded[position : position + 1] for position, i in enumerate(semantic)}
        return [
            self._search_one(query, vectors.get(i), allowed[i]) for i, query in enumerate(queries)
        ]

    def _allowed_rows(self, sources: Collection[str] | None) -> list[int] | None:
        if not sources:
            return None
        unknown = set(sources) - self.index.documents.keys()
        if unknown:
            raise UnknownDocumentError(unknown)
        return self.index.rows_of(set(sources))

    def _search_one(
        self, query: Query, vector: Vectors | None, allowed: list[int] | None
    ) -> list[Hit]:
        wanted = query.offset + query.k
        pooled = query.mode == "hybrid" or query.group_by_document
        depth = max(self.candidate_pool, wanted) if pooled else wanted
        ranked = self._rank(query, vector, allowed, depth)
        order, other_matches = ranked.order, None
        if query.group_by_document:
            order, other_matches = self._best_per_document(ranked.rows, order)
        page = order[query.offset : wanted]
        if not len(page):
            return []
        terms = frozenset(self.index.keyword.analyzer.terms(query.text))
        return [
            self._hit(
                query.offset + position + 1,
                ranked,
                int(at),
                terms,
                None if other_matches is None else int(other_matches[query.offset + position]),
            )
            for position, at in enumerate(page)
        ]

    def _rank(
        self, query: Query, vector: Vectors | None, allowed: list[int] | None, depth: int
    ) -> _Ranked:
        semantic = keyword = Ranking.of([], [])
        if vector is not None:
            scores, rows = self.index.store.search(vector, depth, allowed=allowed)
            found = rows[0] >= 0
            semantic = Ranking.of(rows[0][found], scores[0][found])
        if query.mode != "semantic":
            keyword_scores, keyword_rows = self.index.keyword.search(
                query.text, depth, allowed=allowed
            )
            keyword = Ranking.of(keyword_rows, keyword_scores)

        rows, (semantic_at, keyword_at) = union([semantic, keyword])
        ranked = _Ranked(rows)
        ranked.semantic_score[semantic_at] = semantic.scores
        ranked.semantic_rank[semantic_at] = np.arange(1, len(semantic_at) + 1)
        ranked.keyword_score[keyword_at] = keyword.scores
        ranked.keyword_rank[keyword_at] = np.arange(1, len(keyword_at) + 1)
        if query.mode == "hybrid":
            fused = self.fusion.fuse(semantic, keyword)  # over the same union, in row order
            ranked.fused_score[:] = fused.scores
        score = {
            "semantic": ranked.semantic_score,
            "keyword": ranked.keyword_score,
            "hybrid": ranked.fused_score,
        }[query.mode]
        eligible = ~np.isnan(score)
        if query.min_score is not None:
            eligible &= score >= query.min_score
        candidates = np.flatnonzero(eligible)
        # Best first; ties broken by index order so that rankings, and pages, are stable.
        ranked.score = score
        ranked.order = candidates[np.lexsort((rows[candidates], -score[candidates]))]
        return ranked

    def _best_per_document(
        self, rows: npt.NDArray[np.int64], order: npt.NDArray[np.intp]
    ) -> tuple[npt.NDArray[np.intp], npt.NDArray[np.intp]]:
        """Each document's first (best) candidate, in ranking order, and how many more it had."""
        documents = self.index.document_numbers[rows[order]]
        _, first, counts = np.unique(documents, return_index=True, return_counts=True)
        by_rank = np.argsort(first)
        return order[first[by_rank]], counts[by_rank] - 1

    def _hit(
        self, rank: int, ranked: _Ranked, at: int, terms: frozenset[str], others: int | None
    ) -> Hit:
        row = int(ranked.rows[at])
        passage = self.index.passages[row]
        return Hit(
            rank=rank,
            score=float(ranked.score[at]),
            passage=passage,
            title=self.index.documents[passage.doc_id].title,
            evidence=ranked.evidence(at),
            highlights=tuple(self.index.keyword.analyzer.spans(passage.text, terms)),
            other_matches=others,
        )
