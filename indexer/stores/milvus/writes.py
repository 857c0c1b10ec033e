"""What the store's writer keeps between Milvus calls: the rows its writes of the last second
left (``RecentWrites``, so that a write need not wait for Milvus's time tick to read the one
before), and the puts queued for the next group commit (``PendingPut``).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from indexer.filters import Filter
from indexer.stores.base import (
    IndexedDocument,
    OutOfScopeError,
    StoredDocument,
    Written,
    refuse_outside,
)

# How long a replica answers for its own writes from memory (RecentWrites): Milvus has applied
# a write within a tick or two (200 ms each), so reads as of writes this old do not wait.
_RECENT_SECONDS = 1.0


@dataclass
class OldRows:
    """A document's rows before a write, as (primary key, seq) pairs."""

    exists: bool = False
    """It has a first text piece: the document is there (not only a failed write's rows)."""
    documents: list[tuple[int, int]] = field(default_factory=list)
    passages: list[tuple[int, int]] = field(default_factory=list)


class RecentWrites:
    """What this replica's writes of the last ``_RECENT_SECONDS`` left of each document, and
    the Milvus timestamps up to which reads need not wait (see ``MilvusStore._read_for_write``).

    Used by the writer alone, under the store's write lock."""

    def __init__(self, collections: Sequence[str]) -> None:
        self.collections = collections
        # Per document: when, the rows this replica's write left, and the keys it deleted
        # (Milvus allocates auto ids across collections, so one set serves both).
        self._documents: dict[str, tuple[float, OldRows, set[int]]] = {}
        # (when, each collection's last-write timestamp then), oldest first.
        self._marks: list[tuple[float, dict[str, int]]] = []
        self._settled: dict[str, int] = {}
        """Per collection: a timestamp past every write no longer in ``_documents``."""

    def rows(self, doc_ids: Sequence[str]) -> dict[str, tuple[OldRows, set[int]]]:
        self._expire()
        found = {d: self._documents[d] for d in doc_ids if d in self._documents}
        return {d: (rows, deleted) for d, (_, rows, deleted) in found.items()}

    def read_options(self, collection: str, latest: int) -> dict[str, Any]:
        """How to read ``collection`` so as to see every write of this client older than
        those remembered, without waiting for the newer ones."""
        settled = self._settled.get(collection)
        if latest <= 0 or settled is None:  # nothing to go by: wait for this client's writes
            return {"consistency_level": "Session"}
        # At Customized, pymilvus and Milvus keep an explicit guarantee timestamp (at
        # Eventually Milvus 2.3.5 ignores it).
        return {"consistency_level": "Customized", "guarantee_timestamp": max(settled, 1)}

    def record(
        self,
        documents: Mapping[str, OldRows],
        deleted: Mapping[str, OldRows],
        stamps: Mapping[str, int],
    ) -> None:
        """This replica's write left ``documents`` with those rows, having deleted the rows
        ``deleted`` names; ``stamps``: each collection's last-write timestamp after it."""
        now = time.monotonic()
        for doc_id, rows in documents.items():
            _, _, before = self._documents.pop(doc_id, (now, rows, set()))
            gone = deleted.get(doc_id)
            if gone is not None:
                before |= {pk for pk, _ in gone.documents} | {pk for pk, _ in gone.passages}
            self._documents[doc_id] = (now, rows, before)  # insertion order: oldest first
        self._marks.append((now, dict(stamps)))

    def reset(self) -> None:
        """Remember nothing: reads wait as at ``Session`` until new writes have settled."""
        self._documents.clear()
        self._marks.clear()
        self._settled.clear()

    def _expire(self) -> None:
        horizon = time.monotonic() - _RECENT_SECONDS
        while self._marks and self._marks[0][0] <= horizon:
            self._settled.update(self._marks.pop(0)[1])
        for doc_id, (when, _, _) in list(self._documents.items()):
            if when > horizon:
                break
            del self._documents[doc_id]


@dataclass
class PendingPut:
    """A put waiting for its group's round; ``outcome`` is set once the round is over."""

    documents: tuple[IndexedDocument, ...]
    epoch: int | None = None
    guard: Filter | None = None
    outcome: Written | BaseException | None = None


def check_guards(
    group: Sequence[PendingPut], stored: Callable[[str], StoredDocument | None]
) -> None:
    """Refuse (set the outcome of) each guarded put of a group that would replace a document
    outside its guard, as ``stored`` has it or as an earlier put of the group leaves it."""
    if all(pending.guard is None for pending in group):
        return
    ahead: dict[str, StoredDocument] = {}
    for pending in group:
        ids = [item.document.doc_id for item in pending.documents]
        try:
            refuse_outside(pending.guard, ids, lambda d: ahead.get(d) or stored(d))
        except OutOfScopeError as error:
            pending.outcome = error
            continue
        for item in pending.documents:
            ahead[item.document.doc_id] = StoredDocument(item.document, item.passages)
