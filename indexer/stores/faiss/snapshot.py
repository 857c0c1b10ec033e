"""Snapshots of a live index, and restoring them (``python -m indexer snapshot|restore``).

A snapshot is a tar archive of what opening the index needs: ``CURRENT``, the version it
names (manifest, documents, passages, vectors, keyword index) and the translog generations
after that version's sequence number, cut at the last whole record; then ``snapshot.json``
(the archive's format, the index's format, the sequence number covered, when, and the
sha256 of every file). Restoring extracts it and opening replays the translog up to that
sequence number.

**Consistency without pausing anyone, and without the writer's lock.** Version directories
are immutable and the translog is append-only, so a snapshot only has to keep what it reads
from being deleted by a merge. It does that by *opening* every file before reading any: an
open file descriptor keeps the file's data even after a merge unlinks its name (POSIX), so
the pin is the descriptors themselves, held by the snapshotting process, with no writes to
the index directory (it works on a read-only mount, and from another process while the
service holds ``LOCK``). The one race is between reading ``CURRENT`` and opening the files:
a merge deletes a version only *after* switching ``CURRENT`` away from it, and trims the
translog generations a version needs only after that switch too, and version names are
never reused. So: read ``CURRENT``, open the version's files, open the translog
generations, then read ``CURRENT`` again. If it still names the same version, no merge
switched in between, so nothing opened was deleted before it was opened, and everything
the version needs from the translog was there; otherwise close everything and start over.

The translog files are cut at their size when opened (taken oldest generation first, so
the cut is a prefix of the write stream: a writer appends only to the newest generation),
then at the last record whose checksum holds: every write acknowledged before the snapshot
started was fsynced before its acknowledgement, so it is in, and a half-written record is
not.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import struct
import tarfile
import tempfile
import threading
import time
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from indexer.durable import fsync_tree, replace_directory
from indexer.manifest import FORMAT_VERSION, ManifestError, read_manifest
from indexer.stores.base import (
    IncompatibleSnapshotError,
    SnapshotError,
    StoreMissingError,
    StoreOpenError,
)
from indexer.stores.faiss.layout import (
    CURRENT_FILE,
    TRANSLOG_DIR,
    current_version,
    is_index,
)
from indexer.stores.faiss.translog import MAGIC, MAX_PAYLOAD, generation_path, generations

SNAPSHOT_FILE = "snapshot.json"
# 1: CURRENT, one version directory, the translog generations after it, snapshot.json last.
SNAPSHOT_FORMAT = 1

_FRAME = struct.Struct("<II")
_SEQ = struct.Struct("<Q")
_CHUNK = 1024 * 1024
_BLOCK = tarfile.BLOCKSIZE
_RECORD = tarfile.RECORDSIZE
_ATTEMPTS = 20


@dataclass
class _Pinned:
    """An open file of the snapshot: its name in the archive and how much of it to take."""

    name: str
    fd: int
    size: int


@dataclass
class PinnedSnapshot:
    """Open descriptors for everything a snapshot holds: merges may unlink the names, the
    data stays until ``close``. Write it once with ``chunks`` (``save_snapshot`` in
    ``indexer.stores.base``)."""

    root: Path
    version: str
    version_seq: int
    seq: int
    files: list[_Pinned] = field(default_factory=list)
    _closing: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    @property
    def size(self) -> int:
        return sum(f.size for f in self.files)

    @property
    def label(self) -> str:
        return self.version

    def close(self) -> None:
        """Idempotent: the archive's end and a server's disconnect handling may both call it,
        from two threads; a descriptor number closed twice could be another file's by then."""
        with self._closing:
            files, self.files = self.files, []
        for pinned in files:
            with contextlib.suppress(OSError):
                os.close(pinned.fd)

    def __enter__(self) -> PinnedSnapshot:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def chunks(self) -> Iterator[bytes]:
        """The tar archive, piece by piece (streamed: no copy is made), closing the files at
        the end."""
        written = 0
        try:
            for chunk in self._members():
                written += len(chunk)
                yield chunk
            # The end-of-archive marker, and padding to tar's record size.
            yield b"\0" * (2 * _BLOCK + -(written + 2 * _BLOCK) % _RECORD)
        finally:
            self.close()

    def _members(self) -> Iterator[bytes]:
        checksums: dict[str, str] = {}
        now = int(time.time())
        for pinned in self.files:
            digest = hashlib.sha256()
            yield _header(pinned.name, pinned.size, now)
            offset = 0
            while offset < pinned.size:
                data = os.pread(pinned.fd, min(_CHUNK, pinned.size - offset), offset)
                if not data:
                    raise SnapshotError(f"{pinned.name} shrank while being read")
                digest.update(data)
                offset += len(data)
                yield data
            yield b"\0" * (-pinned.size % _BLOCK)
            checksums[pinned.name] = digest.hexdigest()
        description = {
            "snapshot_format": SNAPSHOT_FORMAT,
            "index_format_version": FORMAT_VERSION,
            "version": self.version,
            "version_seq": self.version_seq,
            "seq": self.seq,
            "created_at": datetime.now(UTC).isoformat(),
            "files": checksums,
        }
        body = (json.dumps(description, indent=2) + "\n").encode()
        yield _header(SNAPSHOT_FILE, len(body), now)
        yield body + b"\0" * (-len(body) % _BLOCK)


def _header(name: str, size: int, mtime: int) -> bytes:
    info = tarfile.TarInfo(name)
    info.size = size
    info.mtime = mtime
    info.mode = 0o644
    return info.tobuf(tarfile.PAX_FORMAT, "utf-8", "surrogateescape")


def pin(root: Path) -> PinnedSnapshot:
    """Open (pin) a consistent snapshot of the index at ``root``: see the module docstring.
    Takes no lock and writes nothing; safe beside a running service."""
    if not is_index(root):
        raise SnapshotError(f"{root} is not an index directory")
    for _ in range(_ATTEMPTS):
        pinned = _try_pin(root)
        if pinned is not None:
            return pinned
        time.sleep(0.01)
    raise SnapshotError(f"the index at {root} changed version {_ATTEMPTS} times while pinning")


def _current(root: Path) -> Path:
    try:
        return current_version(root)
    except (StoreMissingError, StoreOpenError) as error:
        raise SnapshotError(str(error)) from error


def _try_pin(root: Path) -> PinnedSnapshot | None:
    version = _current(root)
    files: list[_Pinned] = []
    snapshot = PinnedSnapshot(root, version.name, 0, 0, files)
    try:
        try:
            manifest = read_manifest(version)
            files.append(_open(root / CURRENT_FILE, CURRENT_FILE))
            for path in sorted(p for p in version.rglob("*") if p.is_file()):
                files.append(_open(path, path.relative_to(root).as_posix()))
        except (FileNotFoundError, ManifestError) as error:
            if _current(root) != version:  # replaced and deleted meanwhile: again
                snapshot.close()
                return None
            raise SnapshotError(f"the index at {root} is damaged: {error}") from error
        if os.pread(files[0].fd, 4096, 0).decode().strip() != version.name:
            snapshot.close()
            return None  # CURRENT was replaced between reading and opening it
        log: list[_Pinned] = []
        for generation in generations(root / TRANSLOG_DIR):  # oldest first: a prefix
            path = generation_path(root / TRANSLOG_DIR, generation)
            try:
                log.append(_open(path, f"{TRANSLOG_DIR}/{path.name}"))
            except FileNotFoundError:
                continue  # trimmed by the merge that made this version: it covers them
        files.extend(log)
        if _current(root) != version:
            snapshot.close()
            return None
        snapshot.version_seq = snapshot.seq = manifest.seq
        kept = [pinned for pinned in log if _cut(pinned, snapshot)]
        files[len(files) - len(log) :] = kept
    except BaseException:
        snapshot.close()
        raise
    return snapshot


def _open(path: Path, name: str) -> _Pinned:
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    return _Pinned(name, fd, os.fstat(fd).st_size)


def _cut(pinned: _Pinned, snapshot: PinnedSnapshot) -> bool:
    """Cut a translog generation at its last whole record, and advance ``snapshot.seq`` over
    its records. False (and closed) if it holds nothing after the version."""
    if os.pread(pinned.fd, len(MAGIC), 0) != MAGIC:
        os.close(pinned.fd)
        return False  # a file whose header was never finished holds no record
    offset, newest = len(MAGIC), 0
    while offset + _FRAME.size <= pinned.size:
        length, crc = _FRAME.unpack(os.pread(pinned.fd, _FRAME.size, offset))
        end = offset + _FRAME.size + length
        if length < _SEQ.size or length > MAX_PAYLOAD or end > pinned.size:
            break
        payload = os.pread(pinned.fd, length, offset + _FRAME.size)
        if len(payload) < length or zlib.crc32(payload) != crc:
            break
        seq = _SEQ.unpack_from(payload)[0]
        if seq > snapshot.version_seq:
            if seq != snapshot.seq + 1:
                raise SnapshotError(
                    f"the index log at {snapshot.root / TRANSLOG_DIR} skips from write "
                    f"{snapshot.seq} to {seq}: writes are missing"
                )
            snapshot.seq = seq
        newest = max(newest, seq)
        offset = end
    pinned.size = offset
    if newest <= snapshot.version_seq:
        os.close(pinned.fd)
        return False
    return True


# -- restoring ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Restored:
    out: Path
    seq: int
    files: int


def read_description(archive: tarfile.TarFile, source: Path) -> dict[str, object]:
    """``snapshot.json`` of an open archive, its format versions checked."""
    try:
        member = archive.getmember(SNAPSHOT_FILE)
    except KeyError:
        raise SnapshotError(f"{source} is not an index snapshot (no {SNAPSHOT_FILE})") from None
    handle = archive.extractfile(member)
    try:
        assert handle is not None
        description = json.loads(handle.read())
        snapshot_format = description["snapshot_format"]
        index_format = description["index_format_version"]
    except (AssertionError, ValueError, KeyError, TypeError):
        raise SnapshotError(f"{source} has an unreadable {SNAPSHOT_FILE}") from None
    if snapshot_format != SNAPSHOT_FORMAT or index_format != FORMAT_VERSION:
        raise IncompatibleSnapshotError(
            f"{source} is a snapshot of index format {index_format} (snapshot format "
            f"{snapshot_format}); this version restores only index format {FORMAT_VERSION} "
            f"(snapshot format {SNAPSHOT_FORMAT})"
        )
    if not isinstance(description, dict):
        raise SnapshotError(f"{source} has an unreadable {SNAPSHOT_FILE}")
    return description


def restore(source: Path, out: Path, *, force: bool = False) -> Restored:
    """Extract the snapshot ``source`` into ``out`` (which must be empty unless ``force``),
    checking its format and every file's checksum first; ``out`` is replaced only once the
    whole index is written and synced."""
    if out.exists() and (not out.is_dir() or any(out.iterdir())) and not force:
        raise SnapshotError(f"{out} exists and is not empty (--force replaces it)")
    try:
        archive = tarfile.open(source, "r:")  # noqa: SIM115 (closed by the with below)
    except FileNotFoundError:
        raise SnapshotError(f"{source} does not exist") from None
    except (tarfile.TarError, OSError) as error:
        raise SnapshotError(f"{source} is not a tar archive: {error}") from None
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.restoring-", dir=out.parent))
    try:
        with archive:
            description = read_description(archive, source)
            files = description.get("files")
            if not isinstance(files, dict):
                raise SnapshotError(f"{source} has an unreadable {SNAPSHOT_FILE}")
            members = [m for m in archive.getmembers() if m.name != SNAPSHOT_FILE]
            for member in members:
                if not (member.isfile() or member.isdir()):
                    raise SnapshotError(f"{source} holds {member.name!r}, which is not a file")
            names = [m.name for m in members if m.isfile()]
            unexpected = sorted(set(names) - set(files))
            if unexpected:
                raise SnapshotError(f"{source} holds {unexpected[0]!r}, which no checksum covers")
            try:
                archive.extractall(staging, members=_members(archive), filter="data")
            except tarfile.FilterError as error:
                raise SnapshotError(f"{source} holds an unsafe member: {error}") from None
        for name, expected in files.items():
            path = staging / name
            if not path.is_file():
                raise SnapshotError(f"{source} is incomplete: {name} is missing")
            if _sha256(path) != expected:
                raise SnapshotError(f"{source} is damaged: the checksum of {name} does not match")
        (staging / TRANSLOG_DIR).mkdir(exist_ok=True)
        try:
            current_version(staging)
        except (StoreMissingError, StoreOpenError) as error:
            raise SnapshotError(f"{source} holds no usable index: {error}") from None
        fsync_tree(staging)
        staging.chmod(0o755)
        replace_directory(staging, out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    seq = description.get("seq")
    return Restored(out, seq if isinstance(seq, int) else 0, len(files))


def _members(archive: tarfile.TarFile) -> Iterator[tarfile.TarInfo]:
    for member in archive.getmembers():
        if member.name != SNAPSHOT_FILE:
            yield member


def _sha256(path: Path) -> str:
    with path.open("rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


__all__ = [
    "SNAPSHOT_FILE",
    "SNAPSHOT_FORMAT",
    "IncompatibleSnapshotError",
    "PinnedSnapshot",
    "Restored",
    "SnapshotError",
    "pin",
    "read_description",
    "restore",
]
