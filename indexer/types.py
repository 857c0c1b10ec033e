"""The core's value types: what a corpus, a passage and a search hit are."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

Ids = npt.NDArray[np.int64]
"""Passage ids (rows of an index), best first in search results; -1 marks an empty slot."""
Scores = npt.NDArray[np.float32]
Matrix = npt.NDArray[np.float32]
"""Vectors, one per row."""


@dataclass(frozen=True, slots=True)
class Document:
    """One source document. Passage offsets index into ``text``."""

    doc_id: str
    title: str
    text: str
    metadata: Mapping[str, str | int | float | bool] = field(default_factory=dict)
    """Flat, validated by ``indexer.metadata``; filters apply to it."""


@dataclass(frozen=True, slots=True)
class DocumentInfo:
    """What goes with a search result about its document: everything but the text."""

    doc_id: str
    title: str
    metadata: Mapping[str, str | int | float | bool] = field(default_factory=dict)

    @classmethod
    def of(cls, document: Document) -> DocumentInfo:
        return cls(document.doc_id, document.title, document.metadata)


@dataclass(frozen=True, slots=True)
class Passage:
    """A span of a document: ``document.text[start:end] == text`` always holds."""

    doc_id: str
    chunk_id: int
    start: int
    end: int
    text: str


@dataclass(frozen=True, slots=True)
class Evidence:
    """Why a passage ranked where it did: its score and rank in each ranking (None: absent)."""

    semantic_score: float | None = None
    semantic_rank: int | None = None
    keyword_score: float | None = None
    keyword_rank: int | None = None
    fused_score: float | None = None


@dataclass(frozen=True, slots=True)
class Hit:
    """A passage retrieved for a query, with its 1-based rank in the whole result list."""

    rank: int
    score: float
    passage: Passage
    title: str
    metadata: Mapping[str, str | int | float | bool] = field(default_factory=dict)
    """The document's."""
    evidence: Evidence = field(default_factory=Evidence)
    highlights: tuple[tuple[int, int], ...] = ()
    """Character spans inside ``passage.text`` of words matching the query's (stemmed) terms."""
    other_matches: int | None = None
    """With grouping by document: how many more of this document's passages matched."""


@dataclass(frozen=True, slots=True)
class IndexedDocument:
    """A document ready to store: its passages and one unit vector per passage."""

    document: Document
    passages: tuple[Passage, ...]
    vectors: Matrix


@dataclass(frozen=True, slots=True)
class StoredDocument:
    """A document as a store holds it, with its passages."""

    document: Document
    passages: tuple[Passage, ...]
