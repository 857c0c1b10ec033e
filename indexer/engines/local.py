"""The default engine: the model in this process."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np

from indexer.embedding import DEFAULT_BATCH_SIZE, Embedder, Vectors
from indexer.engines.base import Positions

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
