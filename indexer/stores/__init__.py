"""Stores: the protocol (``base``), the implementations, and the registry below.

A store is chosen by the kind recorded in an index's manifest. Every registered store runs
the same contract suite (``tests/contract``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from indexer.stores.base import Reader, Store
from indexer.stores.faiss.store import FaissStore, read_current_manifest
from indexer.stores.milvus.store import MilvusStore

STORES: dict[str, type[Store]] = {FaissStore.kind: FaissStore, MilvusStore.kind: MilvusStore}


def store_class(kind: str) -> type[Store]:
    """The store implementation registered under ``kind`` (as recorded in a manifest)."""
    if kind not in STORES:
        raise ValueError(f"unknown store {kind!r}; known: {', '.join(sorted(STORES))}")
    return STORES[kind]


def open_store(location: Path, *, writable: bool = True, **options: Any) -> Store:
    """The store at ``location``, of the kind its manifest records."""
    kind = read_current_manifest(location).store.kind
    opened: Store = store_class(kind).open(location, writable=writable, **options)
    return opened


__all__ = ["STORES", "FaissStore", "MilvusStore", "Reader", "Store", "open_store", "store_class"]
