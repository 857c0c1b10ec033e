"""Stores: the protocols and errors every store shares (``base``), one subpackage per kind
(``faiss``, ``milvus``), and the registry that picks a kind from settings (``registry``).

Every registered kind runs the same contract suite (``tests/contract``).
"""

from __future__ import annotations

from indexer.stores.base import Reader, Store, StoreKind
from indexer.stores.registry import KINDS, StoreSettings, open_store, store_kind

__all__ = ["KINDS", "Reader", "Store", "StoreKind", "StoreSettings", "open_store", "store_kind"]
