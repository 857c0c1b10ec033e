"""Documents left with two copies, and which rows to remove.

Two replicas writing one document at the same moment can each miss the other's rows (a write
reads Milvus as of a moment ago, and the shared counter has no compare-and-set), so both
copies stay: the old one's passages stay searchable. A replica therefore reads the documents
it wrote again ``RECHECK_SECONDS`` later, at ``Strong`` (``MilvusStore._check_copies``), and
removes every complete copy but the newest, the one readers already show
(``MilvusReads.latest``: the highest sequence number, then the one inserted last). An
incomplete copy is never removed: it may be a write still in flight, whose own delete of the
older rows is to come.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

RECHECK_SECONDS = 1.0
"""After a write, when its replica looks for a second copy: by then Milvus has applied
another replica's write of the same moment (within a time tick or two, 200 ms each)."""


@dataclass
class _Copy:
    """One write's rows of a document in one collection, in key (insertion) order."""

    seq: int
    rows: list[Mapping[str, Any]] = field(default_factory=list)

    @property
    def first(self) -> int:
        return int(self.rows[0]["pk"])

    def complete(self) -> bool:
        """Every piece of the document's text is there (document rows only)."""
        return sorted(r["part"] for r in self.rows) == list(range(int(self.rows[0]["parts"])))


def _copies(rows: Iterable[Mapping[str, Any]], first_field: str) -> list[_Copy]:
    """One document's rows as copies: by sequence number and, where two writes share one,
    a new copy at each first piece (``first_field`` == 0), in key order."""
    copies: list[_Copy] = []
    current: dict[int, _Copy] = {}
    for row in sorted(rows, key=lambda r: int(r["pk"])):
        seq = int(row["seq"])
        if row[first_field] == 0 or seq not in current:
            current[seq] = _Copy(seq)
            copies.append(current[seq])
        current[seq].rows.append(row)
    return copies


def older_copies(
    documents: Iterable[Mapping[str, Any]], passages: Iterable[Mapping[str, Any]]
) -> tuple[list[int], list[int]]:
    """The keys of the rows to remove, (document rows, passage rows): per document, those of
    every complete copy but the newest. ``documents``: rows with ``pk``, ``doc_id``, ``seq``,
    ``part`` and ``parts``; ``passages``: rows with ``pk``, ``doc_id``, ``seq``, ``chunk_id``."""
    by_document: dict[str, list[Mapping[str, Any]]] = {}
    for row in documents:
        by_document.setdefault(row["doc_id"], []).append(row)
    passages_of: dict[str, list[Mapping[str, Any]]] = {}
    for row in passages:
        passages_of.setdefault(row["doc_id"], []).append(row)
    document_keys: list[int] = []
    passage_keys: list[int] = []
    for doc_id, rows in by_document.items():
        complete = sorted(
            (c for c in _copies(rows, "part") if c.complete()), key=lambda c: (c.seq, c.first)
        )
        if len(complete) < 2:
            continue
        newest, older = complete[-1], complete[:-1]
        document_keys.extend(int(r["pk"]) for c in older for r in c.rows)
        passage_copies = _copies(passages_of.get(doc_id, []), "chunk_id")
        # Where an older copy has the newest one's number, the newest's passages are the
        # last set with it (as readers take them).
        kept = [c for c in passage_copies if c.seq == newest.seq][-1:]
        older_seqs = {c.seq for c in older}
        passage_keys.extend(
            int(r["pk"])
            for c in passage_copies
            if c.seq in older_seqs and all(c is not k for k in kept)
            for r in c.rows
        )
    return document_keys, passage_keys


__all__ = ["RECHECK_SECONDS", "older_copies"]
