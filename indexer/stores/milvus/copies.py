"""Documents left with two copies, and which rows to remove.

Two ways to get there. Two replicas writing one document at the same moment can each miss the
other's rows (a write reads Milvus as of a moment ago), so both copies stay: the old one's
passages stay searchable. And a replica killed between a write's insert and its delete (Milvus
has no transactions) leaves its new copy beside the old one.

A replica therefore reads the documents it wrote again ``RECHECK_SECONDS`` later, and at every
refresh the documents of every replica's writes under way or cut short (the ``pending`` ranges
of the replica rows, ``numbering``: ``written_in`` finds them by number, a bounded query), all at
``Strong`` (``MilvusStore._check_copies``), and removes every complete copy but the newest, the
one readers already show (``MilvusReads.latest``: the highest sequence number, then the one
inserted last). An incomplete copy is removed only when its write is known to be over
(``abandoned``: its replica's row went stale, or its round failed): before, it may be a write
still in flight, whose own delete of the older rows is to come. Deletes by key are idempotent,
so replicas repairing one document at once do no harm.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from indexer.stores.milvus.reads import MilvusReads
    from indexer.stores.milvus.versions import Version

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
    documents: Iterable[Mapping[str, Any]],
    passages: Iterable[Mapping[str, Any]],
    abandoned: Callable[[int], bool] = lambda seq: False,
) -> tuple[list[int], list[int]]:
    """The keys of the rows to remove, (document rows, passage rows): per document, those of
    every complete copy but the newest, and those of ``abandoned`` writes (by number) but
    the newest complete copy. ``documents``: rows with ``pk``, ``doc_id``, ``seq``, ``part``
    and ``parts``; ``passages``: rows with ``pk``, ``doc_id``, ``seq``, ``chunk_id``."""
    by_document: dict[str, list[Mapping[str, Any]]] = {}
    for row in documents:
        by_document.setdefault(row["doc_id"], []).append(row)
    passages_of: dict[str, list[Mapping[str, Any]]] = {}
    for row in passages:
        passages_of.setdefault(row["doc_id"], []).append(row)
    document_keys: list[int] = []
    passage_keys: list[int] = []
    for doc_id in sorted(by_document.keys() | passages_of.keys()):
        document_copies = _copies(by_document.get(doc_id, []), "part")
        complete = sorted(
            (c for c in document_copies if c.complete()), key=lambda c: (c.seq, c.first)
        )
        newest = complete[-1] if complete else None
        older = complete[:-1] + [
            c for c in document_copies if not c.complete() and abandoned(c.seq)
        ]
        document_keys.extend(int(r["pk"]) for c in older for r in c.rows)
        passage_copies = _copies(passages_of.get(doc_id, []), "chunk_id")
        # Where an older copy has the newest one's number, the newest's passages are the
        # last set with it (as readers take them).
        kept = [c for c in passage_copies if newest is not None and c.seq == newest.seq][-1:]
        older_seqs = {c.seq for c in older}
        passage_keys.extend(
            int(r["pk"])
            for c in passage_copies
            if (c.seq in older_seqs or abandoned(c.seq)) and all(c is not k for k in kept)
            for r in c.rows
        )
    return document_keys, passage_keys


def written_in(reads: MilvusReads, version: Version, ranges: Sequence[tuple[int, int]]) -> set[str]:
    """The documents with rows numbered within ``ranges`` (first, last), at ``Strong``: the
    rows of those writes, in either collection (a write inserts the passages first)."""
    if not ranges:
        return set()
    where = " or ".join(f"(seq >= {first} and seq <= {last})" for first, last in ranges)
    found: set[str] = set()
    for collection in (version.passages, version.documents):
        rows = reads.query_all(collection, where, ["doc_id"], consistency_level="Strong")
        found.update(row["doc_id"] for row in rows)
    return found


__all__ = ["RECHECK_SECONDS", "older_copies", "written_in"]
