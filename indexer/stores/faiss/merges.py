"""Merging a local index: when to (``MergePolicy``), and replaying writes onto the index a merge
or a reindex builds (the writes that arrive while it builds, from the translog's records).
``FaissStore`` runs merges in a background thread; the module docstring of ``store`` says how.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from indexer.stores.base import Prepare
from indexer.stores.faiss.operations import Delete, Operation, Put
from indexer.stores.faiss.state import LocalIndex


@dataclass(frozen=True, slots=True)
class MergePolicy:
    """Merge once the rows added or removed since the last version reach ``ratio`` of the
    live rows (and at least ``min_rows``): merging rewrites everything, so geometric growth
    keeps its total cost linear, and replaying the translog at start-up stays short."""

    min_rows: int = 1000
    ratio: float = 0.25

    def due(self, base_rows: int, added: int, removed: int) -> bool:
        changed = added + removed
        return changed >= max(self.min_rows, self.ratio * (base_rows + added - removed))


def apply_writes(index: LocalIndex, operations: Sequence[Operation]) -> None:
    for operation in operations:
        if isinstance(operation, Put):
            index.put(operation.item, operation.seq)
        else:
            index.delete(operation.doc_id, operation.seq)


def apply_prepared(index: LocalIndex, operations: Sequence[Operation], prepare: Prepare) -> None:
    """Apply writes to a reindexed index: each put prepared again from its document (its
    vectors came from the old settings), consecutive puts in one batch, in order."""
    at = 0
    while at < len(operations):
        operation = operations[at]
        if isinstance(operation, Delete):
            index.delete(operation.doc_id, operation.seq)
            at += 1
            continue
        puts: list[Put] = []
        while at < len(operations) and isinstance(operations[at], Put):
            puts.append(operations[at])  # type: ignore[arg-type]
            at += 1
        items = prepare([put.item.document for put in puts])
        for put, item in zip(puts, items, strict=True):
            index.put(item, put.seq)
