"""Answer queries with ranked passages: semantic, keyword (BM25) or hybrid (fused)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, get_args

import numpy as np
import numpy.typing as npt

from indexer.embedding import Embedder, Vectors
from indexer.filters import Filter
from indexer.fusion import FusionParams, Ranking, union
from indexer.keyword import Analyzer
from indexer.stores.base import Reader, Store
from indexer.tracing import span
from indexer.types import Evidence, Hit

Mode = Literal["semantic", "keyword", "hybrid"]
MODES: tuple[Mode, ...] = get_args(Mode)
DEFAULT_MODE: Mode = "hybrid"
# Hybrid fusion and grouping rank a fixed-depth candidate pool, so every page of a result
# list is cut from the same ranking; deeper pages than this are not served.
CANDIDATE_POOL = 1000


class ModelMismatchError(ValueError):
    """The embedder is not the model the index was built with."""


@dataclass(frozen=True, slots=True)
class Query:
    text: str
    mode: Mode = DEFAULT_MODE
    k: int = 5
    offset: int = 0
    filter: Filter | None = None
    """Only passages of documents that pass it (applied before ranking, in every mode)."""
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
    """Answers queries from a store: each query reads one consistent view of it."""

    def __init__(
        self,
        store: Store,
        embedder: Embedder,
        fusion: FusionParams | None = None,
        candidate_pool: int = CANDIDATE_POOL,
    ) -> None:
        model = store.manifest.model
        if embedder.model_name != model.name:
            raise ModelMismatchError(
                f"the index was built with model {model.name!r}, "
                f"but the configured model is {embedder.model_name!r}"
            )
        if embedder.dimension != model.dimension:
            raise ModelMismatchError(
                f"the index holds {model.dimension}-dimensional vectors, "
                f"but model {embedder.model_name!r} makes {embedder.dimension}-dimensional ones"
            )
        self.store = store
        self.embedder = embedder
        # By model name: a query is embedded by the model of the view it searches, so a
        # reindex to another model never meets a query vector of the other one.
        self._embedders = {model.name: embedder}
        self.fusion = fusion or FusionParams()
        self.candidate_pool = candidate_pool
        # Highlights find the query's words the way the keyword index analyses them.
        self.analyzer = Analyzer(store.manifest.keyword.stemmer)

    def use_embedder(self, embedder: Embedder, stemmer: str) -> None:
        """Embed queries with ``embedder`` from now on (a reindex switched to its model); the
        previous one still answers queries that took the view before the switch."""
        self._embedders[embedder.model_name] = embedder
        self.embedder = embedder
        self.analyzer = Analyzer(stemmer)

    def search(self, query: Query) -> list[Hit]:
        return self.search_many([query])[0]

    def search_many(self, queries: Sequence[Query]) -> list[list[Hit]]:
        """Answer several queries, embedding all their texts in one batch."""
        return self.search_in(self.store.reader(), queries)

    def search_in(self, reader: Reader, queries: Sequence[Query]) -> list[list[Hit]]:
        """Answer queries from one view (taken before embedding: its model embeds them)."""
        semantic = [i for i, q in enumerate(queries) if q.mode != "keyword"]
        vectors: dict[int, Vectors] = {}
        if semantic:
            embedder = self._embedders.get(reader.manifest.model.name, self.embedder)
            with span("search.encode_queries") as current:
                current.set_attribute("search.queries", len(semantic))
                encoded = embedder.encode([queries[i].text for i in semantic])
            vectors = {i: encoded[position : position + 1] for position, i in enumerate(semantic)}
        return [self._search_one(reader, q, vectors.get(i)) for i, q in enumerate(queries)]

    def _search_one(self, reader: Reader, query: Query, vector: Vectors | None) -> list[Hit]:
        wanted = query.offset + query.k
        pooled = query.mode == "hybrid" or query.group_by_document
        depth = max(self.candidate_pool, wanted) if pooled else wanted
        ranked = self._rank(reader, query, vector, depth)
        order, other_matches = ranked.order, None
        if query.group_by_document:
            order, other_matches = self._best_per_document(reader, ranked.rows, order)
        page = order[query.offset : wanted]
        if not len(page):
            return []
        terms = frozenset(self.analyzer.terms(query.text))
        return [
            self._hit(
                reader,
                query.offset + position + 1,
                ranked,
                int(at),
                terms,
                None if other_matches is None else int(other_matches[query.offset + position]),
            )
            for position, at in enumerate(page)
        ]

    def _rank(self, reader: Reader, query: Query, vector: Vectors | None, depth: int) -> _Ranked:
        semantic = keyword = Ranking.of([], [])
        if vector is not None:
            with span("search.vector"):
                scores, rows = reader.vector_search(vector, depth, query.filter)
            semantic = Ranking.of(rows, scores)
        if query.mode != "semantic":
            with span("search.keyword"):
                keyword_scores, keyword_rows = reader.keyword_search(
                    query.text, depth, query.filter
                )
            keyword = Ranking.of(keyword_rows, keyword_scores)

        rows, (semantic_at, keyword_at) = union([semantic, keyword])
        ranked = _Ranked(rows)
        ranked.semantic_score[semantic_at] = semantic.scores
        ranked.semantic_rank[semantic_at] = np.arange(1, len(semantic_at) + 1)
        ranked.keyword_score[keyword_at] = keyword.scores
        ranked.keyword_rank[keyword_at] = np.arange(1, len(keyword_at) + 1)
        if query.mode == "hybrid":
            with span("search.fuse"):
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

    @staticmethod
    def _best_per_document(
        reader: Reader, rows: npt.NDArray[np.int64], order: npt.NDArray[np.intp]
    ) -> tuple[npt.NDArray[np.intp], npt.NDArray[np.intp]]:
        """Each document's first (best) candidate, in ranking order, and how many more it had."""
        documents = np.array([reader.passage(int(row)).doc_id for row in rows[order]], dtype=object)
        _, first, counts = np.unique(documents, return_index=True, return_counts=True)
        by_rank = np.argsort(first)
        return order[first[by_rank]], counts[by_rank] - 1

    def _hit(
        self,
        reader: Reader,
        rank: int,
        ranked: _Ranked,
        at: int,
        terms: frozenset[str],
        others: int | None,
    ) -> Hit:
        row = int(ranked.rows[at])
        passage = reader.passage(row)
        document = reader.document_info(row)
        return Hit(
            rank=rank,
            score=float(ranked.score[at]),
            passage=passage,
            title=document.title,
            metadata=document.metadata,
            evidence=ranked.evidence(at),
            highlights=tuple(self.analyzer.spans(passage.text, terms)),
            other_matches=others,
        )
