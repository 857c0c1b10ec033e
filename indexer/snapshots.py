"""Saving a store's snapshot (``StoreKind.snapshot``) to a file, durably: written to a
temporary sibling, fsynced, then renamed into place, so that a crash never leaves a partial
archive under the name asked for."""

from __future__ import annotations

import os
from pathlib import Path

from indexer.stores.base import Snapshot


def save_snapshot(snapshot: Snapshot, out: Path) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    temporary = out.with_name(f".{out.name}.partial")
    try:
        with temporary.open("wb") as handle:
            for chunk in snapshot.chunks():
                handle.write(chunk)
            handle.flush()
            os.fsync(handle.fileno())
        temporary.replace(out)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
