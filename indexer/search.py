"""Answer a query with ranked passages from a loaded index."""

from __future__ import annotations

from collections.abc import Collection

from indexer.embedding import Embedder
from indexer.index import IndexLoadError, SearchIndex
from indexer.types import Hit


class UnknownDocumentError(KeyError):
    def __init__(self, doc_ids: Collection[str]) -> None:
        super().__init__(", ".join(sorted(doc_ids)))
        self.doc_ids = sorted(doc_ids)


class Searcher:
    def __init__(self, index: SearchIndex, embedder: Embedder) -> None:
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

    def search(
        self,
        query: str,
        *,
        k: int = 5,
        offset: int = 0,
        sources: Collection[str] | None = None,
        min_score: float | None = None,
    ) -> list[Hit]:
        """The passages ranked ``offset + 1`` to ``offset + k`` for ``query``.

        ``sources`` restricts the search to those document ids; ``min_score`` drops passages
        whose cosine similarity is below it.
        """
        allowed: list[int] | None = None
        if sources:
            unknown = set(sources) - self.index.documents.keys()
            if unknown:
                raise UnknownDocumentError(unknown)
            allowed = self.index.rows_of(set(sources))
        vector = self.embedder.encode([query])
        scores, rows = self.index.store.search(vector, offset + k, allowed=allowed)
        hits: list[Hit] = []
        for score, row in zip(scores[0], rows[0], strict=True):
            if row < 0 or (min_score is not None and score < min_score):
                break  # results are sorted, so nothing after this qualifies either
            hits.append(self._hit(len(hits) + 1, float(score), int(row)))
        return hits[offset:]

    def _hit(self, rank: int, score: float, row: int) -> Hit:
        passage = self.index.passages[row]
        return Hit(
            rank=rank,
            score=score,
            passage=passage,
            title=self.index.documents[passage.doc_id].title,
        )
