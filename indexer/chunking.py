"""Split documents into passages: sentence-aware windows of at most N model tokens.

Every passage is a slice of its document (``text[start:end]``), so results can always be
traced back to the exact characters they came from. Windows are built from whole sentences,
end at a paragraph boundary when one falls inside them, and overlap by whole sentences when a
window has to cut through running text (so no sentence loses its neighbour's context).
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Protocol

import nupunkt

from indexer.types import Document, Passage

_PARAGRAPH_BREAK = re.compile(r"\n[^\S\n]*\n")
DEFAULT_MAX_TOKENS = 128
DEFAULT_OVERLAP = 0.2


class Tokenizer(Protocol):
    """What the chunker needs of the embedding model's tokenizer."""

    def token_spans(self, text: str) -> list[tuple[int, int]]:
        """Character spans of the tokens of ``text``, without special tokens."""
        ...


@dataclass(frozen=True, slots=True)
class ChunkingParams:
    max_tokens: int = DEFAULT_MAX_TOKENS
    overlap: float = DEFAULT_OVERLAP
    """Fraction of ``max_tokens`` that consecutive windows inside one paragraph may share."""
    segmenter: str = "nupunkt"
    """The sentence segmenter, recorded so that changing it makes an index stale."""

    def __post_init__(self) -> None:
        if self.max_tokens < 8:
            raise ValueError("max_tokens must be at least 8")
        if not 0 <= self.overlap < 0.5:
            raise ValueError("overlap must be in [0, 0.5)")

    @property
    def overlap_tokens(self) -> int:
        return int(self.max_tokens * self.overlap)


@dataclass(frozen=True, slots=True)
class _Unit:
    """A sentence (or a piece of an over-long one), whitespace-trimmed."""

    start: int
    end: int
    tokens: int
    paragraph: int


class Chunker:
    def __init__(self, tokenizer: Tokenizer, params: ChunkingParams | None = None) -> None:
        self.tokenizer = tokenizer
        self.params = params or ChunkingParams()

    def chunk(self, document: Document) -> list[Passage]:
        text = document.text
        units = list(self._units(text))
        passages: list[Passage] = []
        first = 0
        while first < len(units):
            last = self._window_end(text, units, first)
            start, end = units[first].start, units[last].end
            passages.append(Passage(document.doc_id, len(passages), start, end, text[start:end]))
            first = self._next_window_start(units, first, last)
        return passages

    def chunk_all(self, documents: Iterable[Document]) -> list[Passage]:
        return [passage for document in documents for passage in self.chunk(document)]

    def count(self, text: str) -> int:
        return len(self.tokenizer.token_spans(text))

    def _units(self, text: str) -> Iterable[_Unit]:
        for paragraph, (p_start, p_end) in enumerate(_paragraph_spans(text)):
            # Only the sentence starts are taken from the segmenter; the units are rebuilt
            # from them so they always partition the paragraph, whatever it returns.
            starts = sorted(
                {p_start} | {p_start + s for s, _ in nupunkt.sent_spans(text[p_start:p_end])}
            )
            bounds = [s for s in starts if p_start <= s < p_end] + [p_end]
            for s, e in itertools.pairwise(bounds):
                s, e = _trim(text, s, e)
                if s < e:
                    yield from self._fit(text, s, e, paragraph)

    def _fit(self, text: str, start: int, end: int, paragraph: int) -> Iterable[_Unit]:
        """Yield the sentence as one unit, or as word-aligned pieces if it is too long."""
        limit = self.params.max_tokens
        while start < end:
            spans = self.tokenizer.token_spans(text[start:end])
            if len(spans) <= limit:
                yield _Unit(start, end, len(spans), paragraph)
                return
            cut = _piece_end(text, start, spans, limit)
            # Re-tokenising a slice can differ at its edge; shrink until it really fits.
            while (n := self.count(text[start:cut])) > limit and cut > start + 1:
                cut = max(start + 1, _trim(text, start, _previous_token_end(spans, start, cut))[1])
            piece_end = _trim(text, start, cut)[1]
            yield _Unit(start, piece_end, n, paragraph)
            start = _trim(text, piece_end, end)[0]

    def _window_end(self, text: str, units: list[_Unit], first: int) -> int:
        limit = self.params.max_tokens
        last, total = first, units[first].tokens
        while last + 1 < len(units) and total + units[last + 1].tokens <= limit:
            last += 1
            total += units[last].tokens
        # Token counts of neighbouring sentences almost always add up; verify the window anyway.
        while last > first and self.count(text[units[first].start : units[last].end]) > limit:
            last -= 1
        cut_mid_paragraph = (
            last + 1 < len(units) and units[last + 1].paragraph == units[last].paragraph
        )
        if cut_mid_paragraph and units[last].paragraph != units[first].paragraph:
            # Keep the unfinished paragraph together in the next window instead.
            while units[last].paragraph == units[last + 1].paragraph:
                last -= 1
        return last

    def _next_window_start(self, units: list[_Unit], first: int, last: int) -> int:
        following = last + 1
        if following >= len(units) or units[following].paragraph != units[last].paragraph:
            return following
        budget = min(self.params.overlap_tokens, self.params.max_tokens - units[following].tokens)
        start, shared = following, 0
        while (
            start - 1 > first
            and units[start - 1].paragraph == units[last].paragraph
            and shared + units[start - 1].tokens <= budget
        ):
            start -= 1
            shared += units[start].tokens
        return start


def _paragraph_spans(text: str) -> list[tuple[int, int]]:
    bounds = [0, *(m.end() for m in _PARAGRAPH_BREAK.finditer(text)), len(text)]
    return [(s, e) for s, e in itertools.pairwise(bounds) if s < e]


def _trim(text: str, start: int, end: int) -> tuple[int, int]:
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    return start, end


def _piece_end(text: str, start: int, spans: list[tuple[int, int]], limit: int) -> int:
    """End of the longest run of at most ``limit`` tokens, cut between words if possible."""
    for index in range(limit, 0, -1):
        token_start = start + spans[index][0]
        if token_start > start and text[token_start - 1].isspace():
            return token_start
    # No word boundary in reach: cut between tokens, but always make progress.
    return max(start + spans[limit][0], start + spans[0][1], start + 1)


def _previous_token_end(spans: list[tuple[int, int]], start: int, cut: int) -> int:
    ends = [start + e for _, e in spans if start + e < cut]
    return ends[-1] if ends else cut - 1
