"""Vector stores: the protocol (``base``), the implementations, and the registry below.

A store is chosen by the kind recorded in an index's manifest. Every registered store runs
the same contract suite (``tests/contract``).
"""

from __future__ import annotations

from indexer.stores.base import VectorStore
from indexer.stores.faiss_store import FaissStore

STORES: dict[str, type[VectorStore]] = {FaissStore.kind: FaissStore}


def store_class(kind: str) -> type[VectorStore]:
    """The store implementation registered under ``kind`` (as recorded in a manifest)."""
    if kind not in STORES:
        raise ValueError(f"unknown vector store {kind!r}; known: {', '.join(sorted(STORES))}")
    return STORES[kind]


__all__ = ["STORES", "FaissStore", "VectorStore", "store_class"]
