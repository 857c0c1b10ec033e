"""How a replica numbers its writes, so that no two writes anywhere share a number, and the
row each replica keeps in the store's meta (``ReplicaRow``).

Milvus has no compare-and-set, so replicas cannot take numbers from one shared counter
without two of them reading the same value. Instead each writing replica of a server's store
holds a slot (``claims.claim_slot``: the earliest live claim collection of a slot holds it),
and numbers its writes ``c * STRIDE + slot``, where ``c`` counts on from the highest number it
knows of (its own and the store's counter). Two replicas' numbers differ in their slot, one
replica's in ``c``, which only grows; and a write that follows another it has seen still gets
the higher number (``c`` is past the other's), which is what "the newest copy wins" needs.
Numbers grow by ``STRIDE`` a document, not one.

A Milvus Lite file is held by one process: the stores of one file in a process share one
counter in memory, and number 1, 2, 3...

Each replica's row (``replica/<slot>`` in the store's first meta collection, whichever version
is served) holds the highest number it has given, including the write under way: the store's
counter is the highest of these rows (and of the ``seq`` row a build or a reindex leaves). It
also holds the ranges of the writes under way (``pending``: each written from its pre-write
upsert until the write has deleted the rows it replaces), which ``copies`` uses to find a
crashed write's second copies; and when the replica last beat (every ``HEARTBEAT_SECONDS``),
which keeps its slot's claim alive.

Limit: a slot is known dead from its heartbeat, so a replica frozen for longer than
``claims.SLOT_CLAIM_SECONDS`` can lose its slot to a new replica; it checks its claim before
writing once half that time has passed without a beat, but a freeze between that check and
the write's insert could still give one number twice.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from indexer.stores.milvus.claims import SLOT_CLAIM_SECONDS, claim_slot, holds_slot
from indexer.stores.milvus.client import MilvusTarget, drop_quietly

if TYPE_CHECKING:
    from pymilvus import MilvusClient

STRIDE = 64
"""Slots of a server's store: at most this many replicas write to it at once."""
HEARTBEAT_SECONDS = 10.0
ROW_PREFIX = "replica/"


@dataclass(frozen=True)
class ReplicaRow:
    """A replica's row in the store's meta."""

    slot: int
    seq: int
    """The highest number this replica has given (its write under way included)."""
    pending: tuple[tuple[int, int], ...] = ()
    """The (first, last) numbers of its writes under way, or left unfinished by a failure."""
    claim: str = ""
    at: float = 0.0
    """When it last wrote this row (wall-clock seconds: rows are compared across hosts)."""

    def stale(self, now: float | None = None) -> bool:
        return (time.time() if now is None else now) - self.at > SLOT_CLAIM_SECONDS

    def meta_value(self) -> str:
        return json.dumps(
            {"seq": self.seq, "pending": self.pending, "claim": self.claim, "at": self.at}
        )

    @classmethod
    def parse(cls, key: str, value: str) -> ReplicaRow:
        found = json.loads(value)
        return cls(
            int(key[len(ROW_PREFIX) :]),
            int(found["seq"]),
            tuple((int(a), int(b)) for a, b in found.get("pending") or ()),
            str(found.get("claim", "")),
            float(found.get("at", 0.0)),
        )


@dataclass
class _LiteFile:
    """The stores of one Milvus Lite collection in this process."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    high: int = 0
    slots: set[int] = field(default_factory=set)


_lite_files: dict[tuple[str, str], _LiteFile] = {}
_lite_lock = threading.Lock()


class Numbering:
    """This replica's slot, and the numbers of its next writes."""

    def __init__(self, client: MilvusClient, target: MilvusTarget) -> None:
        self._client = client
        self._target = target
        self.claim = ""
        self.slot = 0
        self._beat = 0.0  # monotonic: when this replica's row was last written
        self._lite: _LiteFile | None = None
        if target.is_lite:
            with _lite_lock:
                self._lite = _lite_files.setdefault(self._lite_key(), _LiteFile())
                self.slot = min(set(range(len(self._lite.slots) + 1)) - self._lite.slots)
                self._lite.slots.add(self.slot)

    def _lite_key(self) -> tuple[str, str]:
        # One file by any name (a relative path, a symlink).
        return str(Path(self._target.uri).resolve()), self._target.collection

    def claim_slot(self, rows: Sequence[ReplicaRow]) -> None:
        """Claim a slot (a server's store), given the replica rows as they are now."""
        if self._lite is not None:
            return
        beats: Mapping[str, float] = {row.claim: row.at for row in rows}
        self.slot, self.claim = claim_slot(self._client, self._target, STRIDE, beats)
        self._beat = time.monotonic()

    def numbers(self, current: int, count: int) -> list[int]:
        """The numbers of this replica's next ``count`` writes, all above ``current`` (the
        highest this replica knows of, its own included)."""
        if self._lite is not None:
            with self._lite.lock:
                first = max(current, self._lite.high) + 1
                self._lite.high = first + count - 1
            return list(range(first, first + count))
        first = current // STRIDE + 1
        return [(first + n) * STRIDE + self.slot for n in range(count)]

    def row(self, seq: int, pending: Sequence[tuple[int, int]]) -> ReplicaRow:
        return ReplicaRow(self.slot, seq, tuple(pending), self.claim, time.time())

    def beaten(self) -> None:
        """This replica's row was just written."""
        self._beat = time.monotonic()

    def beat_due(self) -> bool:
        return time.monotonic() - self._beat >= HEARTBEAT_SECONDS

    def still_held(self) -> bool:
        """Before a write: is the slot still this replica's? Checked only once half the time
        that makes a claim stale has passed without a beat (a frozen replica's)."""
        if self._lite is not None or time.monotonic() - self._beat < SLOT_CLAIM_SECONDS / 2:
            return True
        return holds_slot(self._client, self.claim)

    def release(self) -> None:
        if self._lite is not None:
            with _lite_lock:
                self._lite.slots.discard(self.slot)
                if not self._lite.slots:  # the counter is in Milvus: a new store starts anew
                    _lite_files.pop(self._lite_key(), None)
        elif self.claim:
            drop_quietly(self._client, self.claim)


def replica_rows(rows: Sequence[Mapping[str, Any]]) -> list[ReplicaRow]:
    """The replica rows among meta rows (``key``, ``value``)."""
    return [
        ReplicaRow.parse(row["key"], row["value"])
        for row in rows
        if str(row["key"]).startswith(ROW_PREFIX)
    ]


__all__ = ["HEARTBEAT_SECONDS", "ROW_PREFIX", "STRIDE", "Numbering", "ReplicaRow", "replica_rows"]
