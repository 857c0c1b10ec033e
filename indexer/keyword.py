"""The keyword side: BM25 (bm25s) over stemmed, stop-worded passage text.

Queries and passages go through the same analyzer, which also finds the character spans of
query terms inside a passage, so clients can highlight matches without re-tokenising.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import bm25s
import numpy as np
import Stemmer
from bm25s.stopwords import STOPWORDS_EN

from indexer.types import Ids, Scores

KEYWORD_DIR = "bm25"
# bm25s' default token pattern: words of two or more word characters.
_WORD = re.compile(r"(?u)\b\w\w+\b")


@dataclass(frozen=True, slots=True)
class KeywordParams:
    k1: float = 1.2
    b: float = 0.75
    method: str = "lucene"
    stemmer: str = "english"


class Analyzer:
    """Lower-case, split into words, drop English stop words, Snowball-stem."""

    def __init__(self, language: str = "english") -> None:
        self._stemmer = Stemmer.Stemmer(language)
        self._stopwords = frozenset(STOPWORDS_EN)
        self._lock = threading.Lock()  # PyStemmer objects are not thread-safe

    def terms(self, text: str) -> list[str]:
        return [stem for _, stem in self._words(text)]

    def spans(self, text: str, terms: Collection[str]) -> list[tuple[int, int]]:
        """Character spans of the words in ``text`` whose stem is one of ``terms``."""
        if not terms:
            return []
        return [span for span, stem in self._words(text) if stem in terms]

    def _words(self, text: str) -> list[tuple[tuple[int, int], str]]:
        """Each non-stop word of ``text``: its span and its stem. Words are lower-cased one by
        one, not the text, since lower-casing can change a string's length and so the spans."""
        matches = [m for m in _WORD.finditer(text) if m.group().lower() not in self._stopwords]
        with self._lock:
            stems = self._stemmer.stemWords([m.group().lower() for m in matches])
        return [(m.span(), stem) for m, stem in zip(matches, stems, strict=True)]


class KeywordIndex:
    def __init__(self, retriever: bm25s.BM25, params: KeywordParams) -> None:
        self._retriever = retriever
        self.params = params
        self.analyzer = Analyzer(params.stemmer)
        self._vocabulary: dict[str, int] = retriever.vocab_dict

    @classmethod
    def build(cls, texts: list[str], params: KeywordParams | None = None) -> KeywordIndex:
        params = params or KeywordParams()
        analyzer = Analyzer(params.stemmer)
        retriever = bm25s.BM25(k1=params.k1, b=params.b, method=params.method, backend="numpy")
        retriever.index([analyzer.terms(text) for text in texts], show_progress=False)
        return cls(retriever, params)

    def save(self, directory: Path) -> None:
        self._retriever.save(str(directory / KEYWORD_DIR), show_progress=False)

    @classmethod
    def load(cls, directory: Path, params: KeywordParams) -> KeywordIndex:
        retriever = bm25s.BM25.load(str(directory / KEYWORD_DIR), show_progress=False)
        return cls(retriever, params)

    def search(
        self, query: str, k: int, *, allowed: Collection[int] | None = None
    ) -> tuple[Scores, Ids]:
        """Best ``k`` rows for ``query`` with a positive BM25 score, best first."""
        terms = [t for t in self.analyzer.terms(query) if t in self._vocabulary]
        if not terms or k <= 0:
            return np.empty(0, dtype=np.float32), np.empty(0, dtype=np.int64)
        scores: np.ndarray[Any, np.dtype[np.float32]] = np.asarray(
            self._retriever.get_scores(terms), dtype=np.float32
        )
        if allowed is not None:
            mask = np.zeros(len(scores), dtype=bool)
            mask[np.fromiter(allowed, dtype=np.int64)] = True
            scores = np.where(mask, scores, 0.0).astype(np.float32)
        matching = np.flatnonzero(scores > 0)
        if len(matching) > k:
            matching = matching[np.argpartition(-scores[matching], k - 1)[:k]]
        # Ties broken by row so rankings (and pages) are stable.
        order = np.lexsort((matching, -scores[matching]))
        rows = matching[order].astype(np.int64)
        return scores[rows], rows

    def __len__(self) -> int:
        return int(self._retriever.scores["num_docs"])
