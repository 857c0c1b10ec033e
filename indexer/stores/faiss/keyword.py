"""The FAISS store's keyword index: BM25 over stemmed, stop-worded passage text, for a corpus that
changes.

Scores are Lucene's BM25 variant (as bm25s computes it), but computed at query time from term
frequencies, like Lucene does, instead of being precomputed per passage: a precomputed score
bakes in corpus-wide statistics (document frequencies, average length) that every write
changes. So writes only append postings, and every published view carries the statistics of
exactly its live passages — a live index ranks like a fresh build of the same passages.

Layout in memory: immutable *segments* (term-major postings over some rows) plus per-view
statistics. A writer adds rows and removes rows, then ``publish()`` makes an immutable
``KeywordView`` of everything so far; searches run on views, never on the writer's state.
Terms come from the shared ``indexer.keyword.Analyzer``.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from indexer.keyword import Analyzer, KeywordParams
from indexer.stores.faiss.arrays import AppendOnlyArray
from indexer.types import Ids, Scores

KEYWORD_DIR = "keyword"
_POSTINGS_FILE = "postings.npz"
_VOCABULARY_FILE = "vocabulary.json"
# Delta segments are combined into one once there are this many (each refresh that carries
# writes adds one): query cost grows with the segment count, combining cost with their size.
MAX_DELTA_SEGMENTS = 8

Rows = npt.NDArray[np.int64]


@dataclass(frozen=True, slots=True)
class Segment:
    """Term-major postings over a set of rows: the rows containing term ``t`` and how often,
    are ``rows[indptr[t]:indptr[t + 1]]`` and ``frequencies[...]``, rows ascending."""

    indptr: npt.NDArray[np.int64]
    rows: npt.NDArray[np.int64]
    frequencies: npt.NDArray[np.float32]

    @classmethod
    def of(
        cls,
        terms: Rows,
        rows: Rows,
        frequencies: npt.NDArray[np.floating[Any] | np.integer[Any]],
        vocabulary: int,
    ) -> Segment:
        """Postings given as (term id, row, frequency) triples, in any order."""
        order = np.lexsort((rows, terms))  # by term, then row
        indptr = np.zeros(vocabulary + 1, dtype=np.int64)
        np.cumsum(np.bincount(terms, minlength=vocabulary), out=indptr[1:])
        return cls(indptr, rows[order].astype(np.int64), frequencies[order].astype(np.float32))

    @classmethod
    def build(cls, rows: Rows, terms: Sequence[npt.NDArray[np.int64]], vocabulary: int) -> Segment:
        """Postings of ``rows[i]`` holding term ids ``terms[i]``."""
        counts = np.fromiter((len(t) for t in terms), dtype=np.int64, count=len(terms))
        row_of_term = np.repeat(rows, counts)
        term_ids = np.concatenate(terms) if len(terms) else np.empty(0, dtype=np.int64)
        # One key per (row, term) pair: unique() counts the repeats.
        keys, frequencies = np.unique(row_of_term * vocabulary + term_ids, return_counts=True)
        return cls.of(keys % vocabulary, keys // vocabulary, frequencies, vocabulary)

    @classmethod
    def concatenate(cls, segments: Sequence[Segment], vocabulary: int) -> Segment:
        """One segment holding the postings of all (their rows must not overlap)."""
        return cls.of(*_expand_all(segments), vocabulary)

    def expand(self) -> tuple[Rows, Rows, npt.NDArray[np.float32]]:
        """Every posting as (term id, row, frequency) arrays."""
        terms = np.repeat(np.arange(len(self.indptr) - 1, dtype=np.int64), np.diff(self.indptr))
        return terms, self.rows, self.frequencies

    def postings(self, term: int) -> tuple[Rows, npt.NDArray[np.float32]]:
        if term + 1 >= len(self.indptr):  # a term this segment's vocabulary never had
            return _NO_ROWS, _NO_FREQUENCIES
        start, end = self.indptr[term], self.indptr[term + 1]
        return self.rows[start:end], self.frequencies[start:end]


_NO_ROWS = np.empty(0, dtype=np.int64)
_NO_FREQUENCIES = np.empty(0, dtype=np.float32)


def _expand_all(segments: Sequence[Segment]) -> tuple[Rows, Rows, npt.NDArray[np.float32]]:
    """Every posting of the segments as (term id, row, frequency) arrays."""
    terms, rows, frequencies = zip(*(segment.expand() for segment in segments), strict=True)
    return np.concatenate(terms), np.concatenate(rows), np.concatenate(frequencies)


@dataclass(frozen=True, slots=True)
class KeywordView:
    """An immutable view of the keyword index: what searches read."""

    params: KeywordParams
    analyzer: Analyzer
    vocabulary: dict[str, int]
    """Shared with the writer, which only ever adds terms; ids past ``len(df)`` are ignored."""
    words: list[str]
    """The terms by id (shared the same way): dictionaries cannot be iterated while written."""
    segments: tuple[Segment, ...]
    lengths: npt.NDArray[np.int64]
    """Terms per row, for every row this view knows (live or not)."""
    df: npt.NDArray[np.int64]
    """Live rows containing each term."""
    live_rows: int
    total_length: int

    def search(
        self, query: str, k: int, allowed: npt.NDArray[np.bool_] | None = None
    ) -> tuple[Scores, Ids]:
        """Best ``k`` rows for ``query`` with a positive score, best first (ties by row).

        ``allowed`` (one flag per row) must exclude removed rows: their postings stay in the
        segments until the next merge, only the statistics forget them.
        """
        terms = [self.vocabulary.get(t) for t in self.analyzer.terms(query)]
        known = [t for t in terms if t is not None and t < len(self.df) and self.df[t] > 0]
        if not known or k <= 0 or self.live_rows == 0:
            return np.empty(0, dtype=np.float32), np.empty(0, dtype=np.int64)
        scores = np.zeros(len(self.lengths), dtype=np.float32)
        k1, b = self.params.k1, self.params.b
        average = np.float64(self.total_length / self.live_rows)
        # Duplicated query terms count again, as in bm25s; the arithmetic mirrors bm25s'
        # (float64 per posting, float32 sums), so scores match its precomputed ones.
        for term in known:
            df = int(self.df[term])
            idf = np.float32(math.log(1 + (self.live_rows - df + 0.5) / (df + 0.5)))
            for segment in self.segments:
                rows, frequencies = segment.postings(term)
                if not len(rows):
                    continue
                norm = k1 * ((1 - b) + b * self.lengths[rows] / average)
                scores[rows] += (idf * (frequencies / (norm + frequencies))).astype(np.float32)
        if allowed is not None:
            scores[~allowed[: len(scores)]] = 0.0
        matching = np.flatnonzero(scores > 0)
        if len(matching) > k:
            matching = matching[np.argpartition(-scores[matching], k - 1)[:k]]
        order = np.lexsort((matching, -scores[matching]))
        rows_found = matching[order].astype(np.int64)
        return scores[rows_found], rows_found

    def compact(self, keep: Rows) -> KeywordIndex:
        """A new index of just the rows ``keep`` (ascending, live), renumbered 0, 1, 2, ...
        in that order, without the terms no longer used: what a merge saves."""
        renumber = np.full(len(self.lengths), -1, dtype=np.int64)
        renumber[keep] = np.arange(len(keep), dtype=np.int64)
        terms, rows, frequencies = _expand_all(self.segments)
        kept = renumber[rows] >= 0
        terms, rows, frequencies = terms[kept], renumber[rows[kept]], frequencies[kept]
        used = np.zeros(max(len(self.df), 1), dtype=bool)
        used[terms] = True
        new_id = np.cumsum(used) - 1
        # Only the terms this view knows: the writer may have appended more since.
        words = self.words[: len(used)]
        vocabulary = {word: int(new_id[i]) for i, word in enumerate(words) if used[i]}
        base = Segment.of(new_id[terms], rows, frequencies, max(len(vocabulary), 1))
        return KeywordIndex(self.params, vocabulary, base, self.lengths[keep])


class KeywordIndex:
    """The writer's side: rows are added and removed, then published as a ``KeywordView``.

    Rows are numbered by the caller: 0, 1, 2, ... in the order they are added. Statistics
    move at ``add`` and ``remove``; postings of added rows become a segment at ``publish``.
    One thread writes (and publishes); views are safe to read from any thread meanwhile.
    """

    def __init__(
        self,
        params: KeywordParams,
        vocabulary: dict[str, int],
        base: Segment,
        lengths: npt.NDArray[np.int64],
    ) -> None:
        self.params = params
        self.analyzer = Analyzer(params.stemmer)
        self._vocabulary = vocabulary
        self._words = sorted(vocabulary, key=vocabulary.__getitem__)
        self._segments: list[Segment] = [base]
        self._lengths = AppendOnlyArray.of(lengths.astype(np.int64))
        # A saved (base) segment holds live rows only, so its statistics are its own.
        self._df = np.diff(base.indptr).astype(np.int64)
        self._live_rows = len(lengths)
        self._total_length = int(lengths.sum())
        self._pending_rows: list[int] = []
        self._pending_terms: list[npt.NDArray[np.int64]] = []
        self._view: KeywordView | None = None

    @classmethod
    def empty(cls, params: KeywordParams) -> KeywordIndex:
        base = Segment(np.zeros(1, dtype=np.int64), _NO_ROWS, _NO_FREQUENCIES)
        return cls(params, {}, base, np.empty(0, dtype=np.int64))

    @classmethod
    def build(cls, texts: Sequence[str], params: KeywordParams | None = None) -> KeywordIndex:
        """An index of ``texts`` as rows 0, 1, 2, ..., in its saved form (one segment)."""
        params = params or KeywordParams()
        analyzer = Analyzer(params.stemmer)
        vocabulary: dict[str, int] = {}
        terms = [
            np.asarray(
                [vocabulary.setdefault(t, len(vocabulary)) for t in analyzer.terms(text)],
                dtype=np.int64,
            )
            for text in texts
        ]
        rows = np.arange(len(texts), dtype=np.int64)
        base = Segment.build(rows, terms, max(len(vocabulary), 1))
        lengths = np.fromiter((len(t) for t in terms), dtype=np.int64, count=len(terms))
        return cls(params, vocabulary, base, lengths)

    def __len__(self) -> int:
        """Rows added so far, live or removed."""
        return len(self._lengths)

    @property
    def live_rows(self) -> int:
        return self._live_rows

    def add(self, texts: Sequence[str]) -> None:
        """Index ``texts`` as the next rows; searchable once published."""
        first = len(self._lengths)
        terms = [self._term_ids(text, grow=True) for text in texts]
        for ids in terms:
            self._move_statistics(ids, +1)
        self._pending_rows.extend(range(first, first + len(texts)))
        self._pending_terms.extend(terms)
        self._lengths.extend([len(ids) for ids in terms])
        self._view = None

    def remove(self, texts: Sequence[str]) -> None:
        """Take live rows holding ``texts`` out of the statistics (the caller stops allowing
        the rows themselves). Re-analysing costs less than keeping every row's terms."""
        for text in texts:
            self._move_statistics(self._term_ids(text, grow=False), -1)
        self._view = None

    def publish(self) -> KeywordView:
        """A view of every row added and removed so far."""
        if self._pending_rows:
            rows = np.asarray(self._pending_rows, dtype=np.int64)
            vocabulary = max(len(self._vocabulary), 1)
            self._segments.append(Segment.build(rows, self._pending_terms, vocabulary))
            if len(self._segments) > 1 + MAX_DELTA_SEGMENTS:
                combined = Segment.concatenate(self._segments[1:], vocabulary)
                self._segments = [self._segments[0], combined]
            self._pending_rows, self._pending_terms = [], []
        if self._view is None:
            self._view = KeywordView(
                params=self.params,
                analyzer=self.analyzer,
                vocabulary=self._vocabulary,
                words=self._words,
                segments=tuple(self._segments),
                lengths=self._lengths.head(),
                df=self._df[: len(self._vocabulary)].copy(),
                live_rows=self._live_rows,
                total_length=self._total_length,
            )
        return self._view

    def save(self, directory: Path) -> None:
        """Write a compacted index (one segment, every row live) into ``directory``/keyword."""
        if len(self._segments) != 1 or self._pending_rows or self._live_rows != len(self):
            raise ValueError("only a compacted keyword index can be saved")
        out = directory / KEYWORD_DIR
        out.mkdir()
        base = self._segments[0]
        with (out / _POSTINGS_FILE).open("wb") as handle:
            np.savez(
                handle,
                indptr=base.indptr,
                rows=base.rows,
                frequencies=base.frequencies,
                lengths=self._lengths.head(),
            )
        (out / _VOCABULARY_FILE).write_text(json.dumps(self._words, ensure_ascii=False), "utf-8")

    @classmethod
    def load(cls, directory: Path, params: KeywordParams) -> KeywordIndex:
        source = directory / KEYWORD_DIR
        words = json.loads((source / _VOCABULARY_FILE).read_text("utf-8"))
        with np.load(source / _POSTINGS_FILE) as arrays:
            base = Segment(
                arrays["indptr"].astype(np.int64),
                arrays["rows"].astype(np.int64),
                arrays["frequencies"].astype(np.float32),
            )
            lengths = arrays["lengths"].astype(np.int64)
        if len(base.indptr) != max(len(words), 1) + 1 or base.indptr[-1] != len(base.rows):
            raise ValueError(f"{source} is inconsistent: postings do not match the vocabulary")
        return cls(params, {word: i for i, word in enumerate(words)}, base, lengths)

    def _term_ids(self, text: str, *, grow: bool) -> npt.NDArray[np.int64]:
        ids = []
        for term in self.analyzer.terms(text):
            term_id = self._vocabulary.get(term)
            if term_id is None:
                if not grow:
                    raise KeyError(f"term {term!r} of a removed row was never indexed")
                term_id = len(self._vocabulary)
                self._words.append(term)  # before the id: a reader may look up words[id]
                self._vocabulary[term] = term_id
            ids.append(term_id)
        return np.asarray(ids, dtype=np.int64)

    def _move_statistics(self, ids: npt.NDArray[np.int64], sign: int) -> None:
        """Count one row holding term ``ids`` in (+1) or out (-1) of the statistics."""
        if len(self._vocabulary) > len(self._df):
            grown = np.zeros(max(len(self._vocabulary), 2 * len(self._df)), dtype=np.int64)
            grown[: len(self._df)] = self._df
            self._df = grown
        self._df[np.unique(ids)] += sign
        self._live_rows += sign
        self._total_length += sign * len(ids)
