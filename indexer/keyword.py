"""Keyword analysis shared by every store: how text becomes BM25 terms, and BM25's parameters.

The FAISS store scores these terms itself (``indexer.stores.faiss.keyword``); the query side
(highlights) uses the same ``Analyzer`` whatever the store, so a highlighted word is one that
matched.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Collection
from dataclasses import dataclass

import Stemmer

# bm25s' token pattern: words of two or more word characters.
_WORD = re.compile(r"(?u)\b\w\w+\b")
# Lucene's English stop words (bm25s' list, which the tests check this against).
STOPWORDS_EN = frozenset(
    (  # noqa: SIM905 (a word list reads best as words)
        "a an and are as at be but by for if in into is it no not of on or such that the their "
        "then there these they this to was will with"
    ).split()
)


@dataclass(frozen=True, slots=True)
class KeywordParams:
    k1: float = 1.2
    b: float = 0.75
    stemmer: str = "english"


class Analyzer:
    """Lower-case, split into words, drop English stop words, Snowball-stem."""

    def __init__(self, language: str = "english") -> None:
        self._stemmer = Stemmer.Stemmer(language)
        self._stopwords = STOPWORDS_EN
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
