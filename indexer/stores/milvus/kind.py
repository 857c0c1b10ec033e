"""The Milvus store as the registry offers it (``MILVUS``): from settings to a ``MilvusTarget``,
and the build policy of a shared store: one that exists holds the live corpus of every replica,
so a build only makes a missing one (and waits for another process's build under way rather
than start a second); ``--force`` drops and rebuilds it.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path

from indexer.manifest import Manifest
from indexer.stores.base import (
    IndexedDocument,
    Kept,
    Snapshot,
    SnapshotUnsupportedError,
    Store,
    StoreExistsError,
)
from indexer.stores.milvus import claims
from indexer.stores.milvus.client import (
    INDEX_EXAMPLES,
    MilvusTarget,
    connect,
    parse_index_params,
)
from indexer.stores.milvus.settings import MilvusSettings
from indexer.stores.milvus.store import MilvusStore
from indexer.stores.milvus.versions import read_manifest

_NO_SNAPSHOTS = (
    "snapshots are of the FAISS store; back a Milvus store up with Milvus's own tools "
    "(milvus-backup), or copy its live documents into another store with python -m indexer "
    "build --from-collection"
)
# How often a build waiting for another process's checks whether it has finished.
_BUILD_POLL_SECONDS = 2.0


class MilvusKind:
    """A store in Milvus: Milvus Lite (a local file, one process) or a server or cluster."""

    name = "milvus"
    summary = "the collection SEARCH_MILVUS_COLLECTION at SEARCH_MILVUS_URI"
    store: type[Store] = MilvusStore
    settings_model = MilvusSettings
    exact_index = "FLAT"  # Milvus's names are upper case (client.INDEX_TYPES)
    index_examples: Sequence[tuple[str, str]] = INDEX_EXAMPLES

    def location(self, settings: MilvusSettings) -> MilvusTarget:
        return settings.milvus_target

    def location_in(self, directory: Path, name: str) -> MilvusTarget:
        # One Milvus Lite file for every store there: starting Milvus Lite on a file takes
        # seconds, a collection in it milliseconds.
        return MilvusTarget(uri=str(directory / "milvus.db"), collection=name)

    def describe(self, location: MilvusTarget) -> str:
        return str(location)

    def index_settings(self, settings: MilvusSettings) -> tuple[str, str]:
        return settings.milvus_index_type, settings.milvus_index_params

    def check_index(self, spec: str, params: str, dimension: int) -> None:
        parse_index_params(spec, params)

    def read_manifest(self, location: MilvusTarget) -> Manifest:
        client = connect(location)
        try:
            return read_manifest(client, location)
        finally:
            client.close()

    def open(
        self, location: MilvusTarget, *, writable: bool = True, refresh_interval: float = 1.0
    ) -> MilvusStore:
        return MilvusStore.open(location, writable=writable, refresh_interval=refresh_interval)

    def create(
        self,
        location: MilvusTarget,
        manifest: Manifest,
        documents: Sequence[IndexedDocument],
        *,
        force: bool,
        started: float,
    ) -> Manifest:
        if force:
            MilvusStore.drop(location)
        store = MilvusStore.create(location, manifest, documents, started=started)
        store.close()
        return store.manifest

    def discard_unfinished(self, location: MilvusTarget) -> bool:
        if MilvusStore.exists(location) or not MilvusStore.being_built(location):
            return False
        MilvusStore.drop(location)  # its collections and its claims, the dead build's too
        return True

    def check_replaceable(self, location: MilvusTarget, *, force: bool) -> None:
        if not force and MilvusStore.exists(location):
            raise StoreExistsError(
                f"{location} already holds an index; refusing to replace it (pass --force to "
                "rebuild it from files, losing every document written to it)"
            )

    def kept(self, location: MilvusTarget) -> Kept | None:
        """A store that exists is served as it is. If another process is building it now (its
        claim or its collections exist, its manifest not yet), this waits for that build, as
        long as a claim holds, rather than start a second."""
        seconds = claims.BUILD_CLAIM_SECONDS
        deadline = time.monotonic() + seconds
        while not MilvusStore.exists(location):
            if not MilvusStore.being_built(location):
                return None
            if time.monotonic() > deadline:
                raise StoreExistsError(
                    f"{location} has been half-built for {seconds:.0f} s; drop it or --force"
                )
            time.sleep(_BUILD_POLL_SECONDS)
        return Kept("holds an index", "the documents written to it")

    def check_servable(self, location: MilvusTarget) -> None:
        """Replicas share a Milvus store: any number may serve and write it."""

    def build_options(self, settings: MilvusSettings) -> str:
        return "--store milvus"

    def drop(self, location: MilvusTarget) -> None:
        MilvusStore.drop(location)

    def snapshot(self, location: MilvusTarget) -> Snapshot:
        raise SnapshotUnsupportedError(_NO_SNAPSHOTS)

    def restore(self, archive: Path, location: MilvusTarget, *, force: bool) -> int:
        raise SnapshotUnsupportedError(_NO_SNAPSHOTS)


MILVUS = MilvusKind()
