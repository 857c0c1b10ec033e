"""The FAISS store as the registry offers it (``FAISS``): from settings to a directory, and the
build policy of a local index: never replace one a service holds, nor (without ``--force``)
one that has taken writes through the API since it was built from files.
"""

from __future__ import annotations

import shutil
from collections.abc import Sequence
from pathlib import Path

from indexer.manifest import Manifest
from indexer.stores.base import (
    IndexedDocument,
    Kept,
    Store,
    StoreExistsError,
    StoreLockedError,
    StoreMissingError,
    StoreOpenError,
)
from indexer.stores.faiss.layout import (
    STAGING_MARK,
    TRANSLOG_DIR,
    IndexLock,
    is_index,
    read_current_manifest,
    write_index,
)
from indexer.stores.faiss.operations import seq_of
from indexer.stores.faiss.settings import FaissSettings
from indexer.stores.faiss.snapshot import PinnedSnapshot, pin, restore
from indexer.stores.faiss.state import LocalIndex
from indexer.stores.faiss.store import DEFAULT_REFRESH_INTERVAL, FaissStore
from indexer.stores.faiss.translog import replay
from indexer.stores.faiss.vectors import INDEX_EXAMPLES, make_index


class FaissKind:
    name = "faiss"
    summary = "the directory SEARCH_INDEX_DIR"
    store: type[Store] = FaissStore
    settings_model = FaissSettings
    exact_index = "Flat"
    """FAISS's brute-force inner-product index, what a build uses unless told otherwise."""
    index_examples: Sequence[tuple[str, str]] = INDEX_EXAMPLES

    def location(self, settings: FaissSettings) -> Path:
        return settings.index_dir

    def location_in(self, directory: Path, name: str) -> Path:
        return directory / name

    def describe(self, location: Path) -> str:
        return f"the index at {location}"

    def index_settings(self, settings: FaissSettings) -> tuple[str, str]:
        return settings.index_factory, settings.search_params

    def check_index(self, spec: str, params: str, dimension: int) -> None:
        make_index(dimension, spec, params)

    def read_manifest(self, location: Path) -> Manifest:
        return read_current_manifest(location)

    def open(
        self,
        location: Path,
        *,
        writable: bool = True,
        refresh_interval: float = DEFAULT_REFRESH_INTERVAL,
    ) -> FaissStore:
        return FaissStore.open(location, writable=writable, refresh_interval=refresh_interval)

    def create(
        self,
        location: Path,
        manifest: Manifest,
        documents: Sequence[IndexedDocument],
        *,
        force: bool,
        started: float,
    ) -> Manifest:
        index = LocalIndex.build(manifest, documents)
        self.check_replaceable(location, force=force)  # again: a service may have started
        return write_index(location, index, started=started)

    def discard_unfinished(self, location: Path) -> bool:
        leftovers = list(location.parent.glob(f".{location.name}{STAGING_MARK}*"))
        for staging in leftovers:
            shutil.rmtree(staging, ignore_errors=True)
        return bool(leftovers)

    def check_replaceable(self, location: Path, *, force: bool) -> None:
        if location.exists() and not location.is_dir():
            raise StoreOpenError(
                f"{location} exists and is not a directory; refusing to replace it"
            )
        if not location.exists() or not any(location.iterdir()):
            return
        if not is_index(location):
            raise StoreOpenError(
                f"{location} exists and is not an index directory; refusing to replace it"
            )
        holder = IndexLock(location).held_elsewhere()
        if holder is not None:
            raise StoreLockedError(f"{holder}: stop the service before rebuilding its index")
        writes = api_writes(location)
        if writes and not force:
            raise StoreExistsError(
                f"{location} holds {writes} write{'s' if writes != 1 else ''} made through the "
                "API since it was built; refusing to replace it (pass --force to rebuild it from "
                "files, losing them)"
            )

    def kept(self, location: Path) -> Kept | None:
        writes = api_writes(location)
        if not writes:
            return None
        noun = "write" if writes == 1 else "writes"
        return Kept(f"has taken {writes} {noun} through the API since it was built", "them")

    def check_servable(self, location: Path) -> None:
        holder = IndexLock(location).held_elsewhere()
        if holder is not None:
            raise StoreLockedError(
                f"{holder} (one service writes to an index; give each its own SEARCH_INDEX_DIR)"
            )

    def build_options(self, settings: FaissSettings) -> str:
        return f"--out {settings.index_dir}"

    def drop(self, location: Path) -> None:
        shutil.rmtree(location)

    def snapshot(self, location: Path) -> PinnedSnapshot:
        return pin(location)

    def restore(self, archive: Path, location: Path, *, force: bool) -> int:
        return restore(archive, location, force=force).seq


def api_writes(location: Path) -> int:
    """How many writes the index at ``location`` has taken since it was built from files: its
    last sequence number, in its version or its translog (0 for no index)."""
    try:
        last = read_current_manifest(location).seq
    except (StoreMissingError, StoreOpenError):
        return 0
    for payload in replay(location / TRANSLOG_DIR):
        last = max(last, seq_of(payload))
    return last


FAISS = FaissKind()
