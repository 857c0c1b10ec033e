"""Answer queries with ranked passages: semantic, keyword (BM25) or hybrid (fused)."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import Literal, get_args

from indexer.embedding import Embedder, Vectors
from indexer.fusion import FusionParams, Ranking
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


@dataclass(slots=True)
class _Candidate:
    row: int
    score: float
    evidence: Evidence


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
        candidates = self._rank(query, vector, allowed, depth)
        if query.min_score is not None:
            floor = query.min_score
            candidates = [c for c in candidates if c.score >= floor]
        other_matches: dict[int, int] = {}
        if query.group_by_document:
            candidates, other_matches = self._best_per_document(candidates)
        page = candidates[query.offset : wanted]
        terms = frozenset(self.index.keyword.analyzer.terms(query.text)) if page else frozenset()
        return [
            self._hit(
                query.offset + position + 1, candidate, terms, other_matches.get(candidate.row)
            )
            for position, candidate in enumerate(page)
        ]

    def _rank(
        self, query: Query, vector: Vectors | None, allowed: list[int] | None, depth: int
    ) -> list[_Candidate]:
        semantic = keyword = Ranking([], [])
        if vector is not None:
            scores, rows = self.index.store.search(vector, depth, allowed=allowed)
            found = rows[0] >= 0
            semantic = Ranking(rows[0][found].tolist(), scores[0][found].tolist())
        if query.mode != "semantic":
            scores_kw, rows_kw = self.index.keyword.search(query.text, depth, allowed=allowed)
            keyword = Ranking(rows_kw.tolist(), scores_kw.tolist())

        fused = self.fusion.fuse(semantic, keyword) if query.mode == "hybrid" else {}
        semantic_at = _positions(semantic)
        keyword_at = _positions(keyword)
        candidates: list[_Candidate] = []
        for row in semantic_at.keys() | keyword_at.keys():
            evidence = Evidence(
                semantic_score=semantic_at[row][1] if row in semantic_at else None,
                semantic_rank=semantic_at[row][0] if row in semantic_at else None,
                keyword_score=keyword_at[row][1] if row in keyword_at else None,
                keyword_rank=keyword_at[row][0] if row in keyword_at else None,
                fused_score=fused.get(row),
            )
            score = {
                "semantic": evidence.semantic_score,
                "keyword": evidence.keyword_score,
                "hybrid": evidence.fused_score,
            }[query.mode]
            if score is not None:
                candidates.append(_Candidate(row, score, evidence))
        # Best first; ties broken by index order so that rankings, and pages, are stable.
        candidates.sort(key=lambda c: (-c.score, c.row))
        return candidates

    def _best_per_document(
        self, candidates: list[_Candidate]
    ) -> tuple[list[_Candidate], dict[int, int]]:
        best: dict[str, _Candidate] = {}
        counts: dict[str, int] = {}
        for candidate in candidates:
            doc_id = self.index.passages[candidate.row].doc_id
            best.setdefault(doc_id, candidate)
            counts[doc_id] = counts.get(doc_id, 0) + 1
        grouped = list(best.values())
        return grouped, {c.row: counts[self.index.passages[c.row].doc_id] - 1 for c in grouped}

    def _hit(
        self, rank: int, candidate: _Candidate, terms: frozenset[str], others: int | None
    ) -> Hit:
        passage = self.index.passages[candidate.row]
        return Hit(
            rank=rank,
            score=candidate.score,
            passage=passage,
            title=self.index.documents[passage.doc_id].title,
            evidence=candidate.evidence,
            highlights=tuple(self.index.keyword.analyzer.spans(passage.text, terms)),
            other_matches=others,
        )


def _positions(ranking: Ranking) -> dict[int, tuple[int, float]]:
    """Row -> (1-based rank, score)."""
    return {
        row: (rank, score)
        for rank, (row, score) in enumerate(zip(ranking.rows, ranking.scores, strict=True), 1)
    }
