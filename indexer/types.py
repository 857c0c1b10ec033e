"""The core's value types: what a corpus, a passage and a search hit are."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Document:
    """One source document. Passage offsets index into ``text``."""

    doc_id: str
    title: str
    text: str


@dataclass(frozen=True, slots=True)
class Passage:
    """A span of a document: ``document.text[start:end] == text`` always holds."""

    doc_id: str
    chunk_id: int
    start: int
    end: int
    text: str


@dataclass(frozen=True, slots=True)
class Hit:
    """A passage retrieved for a query, with its similarity and 1-based rank."""

    rank: int
    score: float
    passage: Passage
    title: str
