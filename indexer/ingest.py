"""Turning documents into what a store keeps: passages, their representations and vectors.

The one path for both the offline build and writes over HTTP, with the index's recorded
settings, so a document written live and the same document built offline get identical
passages and vectors.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from indexer.chunking import Chunker, ChunkingParams
from indexer.embedding import DEFAULT_BATCH_SIZE, Embedder, Vectors
from indexer.types import Document, IndexedDocument, Passage


def passage_representation(passage: Passage, title: str, title_prefix: bool) -> str:
    """The text that is embedded and keyword-indexed for a passage: with its document's title
    first, so that a passage that never names its subject still carries it."""
    if title_prefix and title and not passage.text.startswith(title):
        return f"{title}\n\n{passage.text}"
    return passage.text


class Preparer:
    """Chunks and embeds documents the way one index was built."""

    def __init__(self, embedder: Embedder, chunking: ChunkingParams, title_prefix: bool) -> None:
        self.embedder = embedder
        self.title_prefix = title_prefix
        self.chunker = Chunker(embedder.tokenizer(), chunking)

    def prepare(
        self,
        documents: Sequence[Document],
        *,
        batch_size: int = DEFAULT_BATCH_SIZE,
        progress: bool = False,
    ) -> list[IndexedDocument]:
        """Every document's passages and vectors; all passages embedded in shared batches."""
        chunked = self.chunk(documents)
        vectors = self.embedder.encode(chunked.texts, batch_size=batch_size, progress=progress)
        return chunked.with_vectors(vectors)

    def chunk(self, documents: Sequence[Document]) -> Chunked:
        """Every document's passages and the texts to embed for them, in order."""
        return chunk_documents(self.chunker, self.title_prefix, documents)


def chunk_documents(chunker: Chunker, title_prefix: bool, documents: Sequence[Document]) -> Chunked:
    """``Preparer.chunk``, for an engine that chunks elsewhere (a Ray task) with the
    preparer's ``chunker``."""
    passages = [tuple(chunker.chunk(document)) for document in documents]
    texts = [
        passage_representation(p, document.title, title_prefix)
        for document, own in zip(documents, passages, strict=True)
        for p in own
    ]
    return Chunked(documents, passages, texts)


@dataclass(frozen=True, slots=True)
class Chunked:
    """Documents split into passages, before their vectors: what a build embeds."""

    documents: Sequence[Document]
    passages: list[tuple[Passage, ...]]
    texts: list[str]
    """What is embedded for each passage, every document's in turn."""

    @classmethod
    def joined(cls, parts: Sequence[Chunked]) -> Chunked:
        """The parts, one after the other, as if chunked at once."""
        return cls(
            [d for part in parts for d in part.documents],
            [own for part in parts for own in part.passages],
            [text for part in parts for text in part.texts],
        )

    def with_vectors(self, vectors: Vectors) -> list[IndexedDocument]:
        """The documents with their passages' vectors (``vectors``: one row per text)."""
        bounds = np.cumsum([0, *(len(own) for own in self.passages)])
        return [
            IndexedDocument(document, own, vectors[start:end])
            for document, own, start, end in zip(
                self.documents, self.passages, bounds[:-1], bounds[1:], strict=True
            )
        ]
