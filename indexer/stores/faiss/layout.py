"""The on-disk layout of a local index, and writing it the way databases do.

    data/index/              SEARCH_INDEX_DIR
      CURRENT                the name of the serving version (replaced atomically)
      v000003/               an immutable version: manifest.json (written last), documents,
                             passages, vectors, keyword index
      translog/              writes since that version (see translog.py)
      LOCK                   held by the one process that may write (flock)

A version is written into a temporary sibling, fsynced file by file, renamed into place and
the directory fsynced; only then does CURRENT point at it. A crash at any moment leaves
CURRENT naming a complete version, and the translog holding every write after it. A build
(``write_index``) writes a whole index directory the same way, beside the one it replaces.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import re
import shutil
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING

from indexer.durable import fsync_directory, fsync_tree, replace_directory, write_atomically
from indexer.manifest import MANIFEST_FILE, Manifest, ManifestError, read_manifest
from indexer.stores.base import StoreLockedError, StoreMissingError, StoreOpenError

if TYPE_CHECKING:
    from indexer.stores.faiss.state import LocalIndex

CURRENT_FILE = "CURRENT"
TRANSLOG_DIR = "translog"
LOCK_FILE = "LOCK"
_VERSION = re.compile(r"v(\d{6,})")
_TEMPORARY_PREFIX = ".tmp-"


class LayoutError(StoreOpenError):
    """The directory is not an index this version can open; the message says why."""


def version_name(number: int) -> str:
    return f"v{number:06d}"


def version_number(name: str) -> int:
    match = _VERSION.fullmatch(name)
    if match is None:
        raise LayoutError(f"{name!r} is not an index version name")
    return int(match.group(1))


def current_version(root: Path) -> Path:
    """The directory of the version that CURRENT names; StoreMissingError where there is no
    index at all, LayoutError where it is not one this version reads."""
    pointer = root / CURRENT_FILE
    try:
        name = pointer.read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        if (root / MANIFEST_FILE).exists():  # an index of format 2 or older: no versions
            raise LayoutError(f"{root} holds an index of an older format") from None
        if not root.exists():
            raise StoreMissingError(f"{root} does not exist") from None
        raise StoreMissingError(f"{root} is not an index directory (no {CURRENT_FILE})") from None
    except OSError as error:
        raise LayoutError(f"{pointer} is unreadable: {error.strerror or error}") from error
    version_number(name)
    return root / name


def is_index(root: Path) -> bool:
    return (root / CURRENT_FILE).is_file() or (root / MANIFEST_FILE).is_file()


def versions(root: Path) -> list[Path]:
    found = [p for p in root.iterdir() if p.is_dir() and _VERSION.fullmatch(p.name)]
    return sorted(found, key=lambda p: version_number(p.name))


def new_version_dir(root: Path) -> tuple[Path, Path]:
    """A temporary directory to write the next version into, and its final name."""
    existing = [version_number(p.name) for p in versions(root)]
    final = root / version_name(max(existing, default=0) + 1)
    temporary = root / f"{_TEMPORARY_PREFIX}{final.name}"
    shutil.rmtree(temporary, ignore_errors=True)
    temporary.mkdir()
    return temporary, final


def commit_version(temporary: Path, final: Path) -> None:
    """Make a fully written version directory durable under its final name."""
    fsync_tree(temporary)
    temporary.rename(final)
    fsync_directory(final.parent)


def set_current(root: Path, version: Path) -> None:
    write_atomically(root / CURRENT_FILE, [f"{version.name}\n".encode()])


def remove_unused(root: Path) -> None:
    """Delete versions other than the current one, and temporary leftovers of a crash."""
    current = current_version(root)
    for path in root.iterdir():
        leftover = path.name.startswith(_TEMPORARY_PREFIX)
        if path.is_dir() and (leftover or (_VERSION.fullmatch(path.name) and path != current)):
            shutil.rmtree(path, ignore_errors=True)


class IndexLock:
    """An exclusive advisory lock on the index (``flock`` on LOCK, like Lucene's write.lock):
    one process writes; a second writer, or a rebuild of a served index, is refused. The
    kernel drops it when the process dies, even by ``kill -9``."""

    def __init__(self, root: Path) -> None:
        self.path = root / LOCK_FILE
        self._descriptor: int | None = None

    def acquire(self) -> None:
        descriptor = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as error:
            holder = os.pread(descriptor, 32, 0).decode(errors="replace").strip()
            os.close(descriptor)
            if error.errno in (errno.EWOULDBLOCK, errno.EAGAIN):
                who = f" (process {holder})" if holder else ""
                message = f"{self.path.parent} is in use by another process{who}"
                raise StoreLockedError(message) from None
            raise
        os.ftruncate(descriptor, 0)
        os.pwrite(descriptor, f"{os.getpid()}\n".encode(), 0)
        self._descriptor = descriptor

    def held_elsewhere(self) -> str | None:
        """Who holds the lock, if another process does (for refusing a rebuild)."""
        try:
            self.acquire()
        except StoreLockedError as error:
            return str(error)
        except OSError:
            return None  # cannot even create the lock file: nobody writes here either
        self.release()
        return None

    def release(self) -> None:
        if self._descriptor is not None:
            with contextlib.suppress(OSError):
                fcntl.flock(self._descriptor, fcntl.LOCK_UN)
            os.close(self._descriptor)
            self._descriptor = None


# A build writes ``.<name>.building-<random>`` beside the index, then renames it into place.
STAGING_MARK = ".building-"


def write_index(location: Path, index: LocalIndex, *, started: float) -> Manifest:
    """Write a complete index directory (version 1, an empty translog) at ``location``: built
    in a temporary sibling and renamed into place, replacing what is there."""
    location.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{location.name}{STAGING_MARK}", dir=location.parent))
    try:
        version = staging / version_name(1)
        version.mkdir()
        manifest = index.save(version, started=started, now=time.perf_counter())
        (staging / TRANSLOG_DIR).mkdir()
        fsync_tree(version)
        set_current(staging, version)
        staging.chmod(0o755)  # mkdtemp makes it private; the server may run as another user
        replace_directory(staging, location)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return manifest


def read_current_manifest(location: Path) -> Manifest:
    """The manifest of the version being served (cheap: no data is loaded); StoreMissingError
    where there is no index, StoreOpenError where it cannot be read."""
    version = current_version(location)
    try:
        return read_manifest(version)
    except ManifestError as error:
        raise StoreOpenError(str(error)) from error
