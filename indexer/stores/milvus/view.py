"""A published view of a Milvus store (``MilvusView``, the ``Reader`` a search holds): the
version and the sequence number it was published at, which every query it makes filters by.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from indexer.filters import Filter
from indexer.manifest import Manifest
from indexer.stores.base import SearchUnsupportedError, StoredDocument
from indexer.stores.milvus.client import FULL_TEXT_SINCE
from indexer.stores.milvus.filters import expression
from indexer.stores.milvus.reads import MilvusReads, no_hits
from indexer.stores.milvus.versions import Version
from indexer.types import DocumentInfo, Ids, Matrix, Passage, Scores


def keyword_problem(version: Version, server_version: str) -> str | None:
    """Why keyword (and so hybrid) search is unavailable on ``version``, or None."""
    if version.full_text:
        return None
    return (
        f"keyword and hybrid search need Milvus {'.'.join(map(str, FULL_TEXT_SINCE))} or "
        f"later (full-text search); this Milvus is {server_version} and "
        f"{version.passages} has no BM25 field: use mode=semantic"
    )


@dataclass(frozen=True)
class MilvusView:
    """A published view of a Milvus store (implements ``Reader``): rows up to ``seq``."""

    reads: MilvusReads = field(repr=False)
    version: Version = field(repr=False)
    server_version: str
    seq: int
    document_count: int
    passage_count: int

    @property
    def manifest(self) -> Manifest:
        return self.version.manifest

    def vector_search(
        self, vector: Matrix, k: int, filter: Filter | None = None
    ) -> tuple[Scores, Ids]:
        search = dict(self.version.search_params)
        if "ef" in search:
            search["ef"] = max(int(search["ef"]), k)  # Milvus refuses an ef below the limit
        return self.reads.search(
            self.version,
            np.asarray(vector, dtype=np.float32).reshape(-1).tolist(),
            "vector",
            {"metric_type": "IP", "params": search},
            k,
            self._where(filter),
        )

    def keyword_search(
        self, query: str, k: int, filter: Filter | None = None
    ) -> tuple[Scores, Ids]:
        problem = keyword_problem(self.version, self.server_version)
        if problem is not None:
            raise SearchUnsupportedError(problem)
        # As the passages were stored: our analyser's terms (a store made before: the text).
        text = self.version.keyword.text(self.version.analyzer, query)
        if not text.strip():
            return no_hits()
        scores, ids = self.reads.search(
            self.version,
            text,
            "sparse",
            {"metric_type": "BM25", "params": {}},
            k,
            self._where(filter),
        )
        # Milvus Lite returns BM25 scores negated; BM25 itself is never negative.
        scores = np.abs(scores)
        keep = scores > 0
        return scores[keep], ids[keep]

    def passage(self, passage_id: int) -> Passage:
        return self.reads.payload(self.version, passage_id)[0]

    def document_info(self, passage_id: int) -> DocumentInfo:
        return self.reads.payload(self.version, passage_id)[1]

    def documents(
        self, offset: int, limit: int, filter: Filter | None = None
    ) -> list[StoredDocument]:
        collection, where = self._document_rows(filter)
        rows = self.reads.query_all(collection, where, ["doc_id"], skip=offset, limit=limit)
        # Once, should two replicas' writes of a moment have left two copies (see
        # MilvusReads.latest).
        ids = list(dict.fromkeys(row["doc_id"] for row in rows))
        return self.reads.stored(self.version, ids, self.seq)

    def document_ids(self, filter: Filter | None = None) -> list[str]:
        collection, where = self._document_rows(filter)
        rows = self.reads.query_all(collection, where, ["doc_id"])
        return list(dict.fromkeys(row["doc_id"] for row in rows))

    def count_documents(self, filter: Filter | None = None) -> int:
        if filter is None:
            return self.document_count
        return self.reads.count(*self._document_rows(filter))

    def _document_rows(self, filter: Filter | None) -> tuple[str, str]:
        """Where one row per visible document is, in write order: a document's first piece,
        or (filtered: the typed metadata is on the passages) its first passage."""
        if filter is None:
            return self.version.documents, f"part == 0 and seq <= {self.seq}"
        return self.version.passages, f"chunk_id == 0 and {self._where(filter)}"

    def _where(self, filter: Filter | None) -> str:
        condition = expression(filter)
        visible = f"seq <= {self.seq}"
        return f"{visible} and {condition}" if condition else visible


__all__ = ["MilvusView", "keyword_problem"]
