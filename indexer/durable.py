"""Writing files the way databases do: into a temporary sibling, fsynced, renamed into place,
and the directory fsynced so that the rename survives a crash too. A reader (or a crash) sees
the old file or directory or the new one, never a part.

The FAISS store's versions and builds, restored snapshots and snapshot archives are all written
through these.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterable
from pathlib import Path


def write_atomically(path: Path, chunks: Iterable[bytes]) -> None:
    """Replace ``path`` with the bytes of ``chunks`` (written as they come: an archive is never
    held in memory); on any failure the temporary file goes and ``path`` is as it was."""
    temporary = path.with_name(f".{path.name}.partial")
    try:
        with temporary.open("wb") as handle:
            for chunk in chunks:
                handle.write(chunk)
            handle.flush()
            os.fsync(handle.fileno())
        temporary.replace(path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    fsync_directory(path.parent)


def replace_directory(staging: Path, out: Path) -> None:
    """Put the fully written and fsynced directory ``staging`` in the place of ``out`` (which
    may not exist): each is a single rename, and what ``out`` held goes only after."""
    if out.exists():
        retired = Path(tempfile.mkdtemp(prefix=f".{out.name}.old-", dir=out.parent))
        retired.rmdir()
        out.rename(retired)
        staging.rename(out)
        shutil.rmtree(retired, ignore_errors=True)
    else:
        staging.rename(out)
    fsync_directory(out.parent)


def fsync_tree(directory: Path) -> None:
    """fsync every file and directory under ``directory``, then itself."""
    for path in sorted(directory.rglob("*"), reverse=True):
        if path.is_file():
            with path.open("rb") as handle:
                os.fsync(handle.fileno())
        else:
            fsync_directory(path)
    fsync_directory(directory)


def fsync_directory(directory: Path) -> None:
    """So that a rename or a new file in it survives a crash."""
    descriptor = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)
