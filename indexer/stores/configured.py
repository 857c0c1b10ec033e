"""The store the settings name: a FAISS directory, or a collection in a Milvus."""

from __future__ import annotations

from typing import TYPE_CHECKING

from indexer.manifest import Manifest
from indexer.stores import Store, open_store
from indexer.stores.faiss.store import read_current_manifest
from indexer.stores.milvus.client import connect
from indexer.stores.milvus.store import MilvusStore
from indexer.stores.milvus.versions import read_manifest

if TYPE_CHECKING:
    from indexer.settings import IndexSettings


def open_configured(
    settings: IndexSettings, *, writable: bool = True, refresh_interval: float = 1.0
) -> Store:
    """Open the settings' store. Errors: ManifestError or StoreOpenError (FAISS: no index),
    MilvusStoreMissingError, StoreUnavailableError (Milvus cannot be reached)."""
    if settings.store == "milvus":
        return MilvusStore.open(
            settings.milvus_target, writable=writable, refresh_interval=refresh_interval
        )
    return open_store(settings.index_dir, writable=writable, refresh_interval=refresh_interval)


def configured_manifest(settings: IndexSettings) -> Manifest:
    """The manifest of the settings' store, without opening it for searches."""
    if settings.store == "milvus":
        client = connect(settings.milvus_target)
        try:
            return read_manifest(client, settings.milvus_target)
        finally:
            client.close()
    return read_current_manifest(settings.index_dir)
