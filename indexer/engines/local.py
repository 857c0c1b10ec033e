"""The default engine: the model in this process."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np

from indexer.build_progress import BuildMeter
from indexer.embedding import DEFAULT_BATCH_SIZE, Embedder, Vectors
from indexer.engines.base import Positions
from indexer.ingest import Chunked, Preparer
from indexer.types import Document

# Documents chunked between two progress reports.
CHUNK_DOCUMENTS = 256
# Texts per committed batch: a few seconds of work here, so a killed build loses little and
# the cache's transactions stay cheap.
COMMIT_TEXTS = 256


class LocalEngine:
    name = "local"

    def __init__(
        self,
        embedder: Embedder,
        *,
        batch_size: int = DEFAULT_BATCH_SIZE,
        commit_texts: int = COMMIT_TEXTS,
    ) -> None:
        self.embedder = embedder
        self.batch_size = batch_size
        self.commit_texts = commit_texts

    def chunk(
        self, preparer: Preparer, documents: Sequence[Document], meter: BuildMeter
    ) -> Chunked:
        meter.phase("chunking", total=len(documents), unit="document")
        parts = []
        for start in range(0, len(documents), CHUNK_DOCUMENTS):
            parts.append(preparer.chunk(documents[start : start + CHUNK_DOCUMENTS]))
            meter.advance(len(parts[-1].documents))
        meter.close()
        return Chunked.joined(parts)

    def embed(self, texts: Sequence[str]) -> Iterator[tuple[Positions, Vectors]]:
        for start in range(0, len(texts), self.commit_texts):
            end = min(start + self.commit_texts, len(texts))
            positions = np.arange(start, end, dtype=np.int64)
            chosen = [texts[i] for i in positions.tolist()]
            yield positions, self.embedder.encode(chosen, batch_size=self.batch_size)

    def describe(self) -> str:
        return f"{self.embedder.model_name} in this process"

    def close(self) -> None:
        pass
