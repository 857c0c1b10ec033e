"""The vector store protocol.

The service and the index builder talk only to this protocol, so another engine can be
added without touching either. Every store must pass ``tests/contract/test_store_contract.py``.
"""

from __future__ import annotations

from collections.abc import Collection
from pathlib import Path
from typing import ClassVar, Protocol, Self

from indexer.types import Ids, Matrix, Scores


class VectorStore(Protocol):
    """Vectors keyed by int64 ids, searched by inner product (cosine on unit vectors)."""

    kind: ClassVar[str]
    dimension: int

    @classmethod
    def create(cls, dimension: int, spec: str = "") -> Self:
        """An empty store; ``spec`` is the engine's own description of the index to make."""
        ...

    def tune(self, params: str) -> None:
        """Apply search-time parameters (engine-specific, e.g. ``nprobe=32``); "" for none."""
        ...

    def add(self, ids: Ids, vectors: Matrix) -> None: ...

    def search(
        self, queries: Matrix, k: int, *, allowed: Collection[int] | None = None
    ) -> tuple[Scores, Ids]:
        """Best ``k`` per query row, best first; missing slots have id -1.

        ``allowed`` restricts the search to those ids.
        """
        ...

    def remove(self, ids: Ids) -> int:
        """Remove these ids; returns how many were present."""
        ...

    def save(self, directory: Path) -> None: ...

    @classmethod
    def load(cls, directory: Path) -> Self: ...

    def __len__(self) -> int: ...
