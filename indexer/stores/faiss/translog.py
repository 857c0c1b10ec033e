"""The write-ahead log of a live index, modelled on Elasticsearch's translog.

Every write to the index is appended here and fsynced before the client is told it
succeeded; at start-up the log is replayed on top of the last saved index version; once a
newer version has been saved, the generations it covers are trimmed. Payloads are opaque
bytes: the store encodes its own operations.

On disk: a directory of generation files ``translog-00000001.tlog``, ... Each starts with
``MAGIC`` (its last byte is the format version), then frames: payload length (u32 LE),
``zlib.crc32`` of the payload (u32 LE), the payload. A file is never appended to once its
writer has gone away, so a torn tail left by a crash is always the end of its file.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import logging
import os
import re
import struct
import zlib
from collections.abc import Iterator, Sequence
from pathlib import Path
from types import TracebackType

logger = logging.getLogger("indexer")

MAGIC = b"SSTLOG\x00\x01"
MAX_PAYLOAD = 256 * 1024 * 1024
_HEADER = struct.Struct("<II")
_NAME = re.compile(r"translog-(\d{8,})\.tlog")

_REASONS = {
    errno.ENOSPC: "the disk is full",
    errno.EDQUOT: "the disk quota is exceeded",
    errno.EROFS: "the file system is read-only",
    errno.EACCES: "permission denied",
    errno.EPERM: "operation not permitted",
}


class TranslogCorruptError(Exception):
    """A file in the log directory is not a log file this code can read (bad magic)."""


class TranslogLockedError(RuntimeError):
    """Another ``Translog`` (in this or another process) is writing to the directory."""


class TranslogWriteError(OSError):
    """An append (or trim) failed; nothing of the failed call will be replayed."""

    def __init__(self, directory: Path, reason: str, code: int | None = None) -> None:
        super().__init__(f"cannot write to the index log in {directory}: {reason}")
        self.errno = code
        self.directory = directory
        self.reason = reason


class DiskFullError(TranslogWriteError):
    """ENOSPC or EDQUOT."""


class ReadOnlyError(TranslogWriteError):
    """EROFS, EACCES or EPERM."""


def _write_error(directory: Path, error: OSError) -> TranslogWriteError:
    code = error.errno
    reason = _REASONS.get(code or 0) or (error.strerror or str(error)).lower()
    if code in (errno.ENOSPC, errno.EDQUOT):
        return DiskFullError(directory, reason, code)
    if code in (errno.EROFS, errno.EACCES, errno.EPERM):
        return ReadOnlyError(directory, reason, code)
    return TranslogWriteError(directory, reason, code)


def generation_path(directory: Path, generation: int) -> Path:
    """The file of ``generation`` in ``directory`` (whether or not it exists)."""
    return directory / f"translog-{generation:08d}.tlog"


def generations(directory: Path) -> list[int]:
    """Generation numbers present in ``directory``, ascending; [] if it does not exist."""
    try:
        names = os.listdir(directory)
    except FileNotFoundError:
        return []
    found = (_NAME.fullmatch(name) for name in names)
    return sorted(int(match.group(1)) for match in found if match)


def replay(directory: Path) -> Iterator[bytes]:
    """Every payload of every generation, oldest first.

    A file's first incomplete or corrupt frame (a torn write from a crash) ends that file,
    with a warning; replay goes on with the next generation. Opens files read-only.
    """
    for generation in generations(directory):
        yield from _replay_file(generation_path(directory, generation))


def _replay_file(path: Path) -> Iterator[bytes]:
    try:
        file = path.open("rb")
    except FileNotFoundError:  # trimmed since the listing
        return
    with file:
        size = os.fstat(file.fileno()).st_size
        head = file.read(len(MAGIC))
        if head != MAGIC:
            if MAGIC.startswith(head):
                # A crash while the file was being created: it never held a record.
                _warn_dropped(path, 0, size, "the file header is incomplete")
                return
            if head[:-1] == MAGIC[:-1]:
                raise TranslogCorruptError(
                    f"{path} is an index log of format version {head[-1]}, "
                    f"this code reads version {MAGIC[-1]}"
                )
            raise TranslogCorruptError(f"{path} is not an index log file (starts with {head!r})")
        offset = len(MAGIC)
        while offset < size:
            header = file.read(_HEADER.size)
            if len(header) < _HEADER.size:
                _warn_dropped(path, offset, size, "incomplete frame header")
                return
            length, crc = _HEADER.unpack(header)
            if length == 0:
                # Never written (append refuses empty payloads), but a tail of zeros left by a
                # crash would otherwise read as valid empty frames (crc32 of b"" is 0).
                _warn_dropped(path, offset, size, "a zero-length frame")
                return
            if length > MAX_PAYLOAD:
                _warn_dropped(path, offset, size, "corrupt frame length")
                return
            # Checked before reading, so a garbage length cannot make us allocate much.
            if offset + _HEADER.size + length > size:
                _warn_dropped(path, offset, size, "incomplete payload")
                return
            payload = file.read(length)
            if len(payload) < length:
                _warn_dropped(path, offset, size, "incomplete payload")
                return
            if zlib.crc32(payload) != crc:
                _warn_dropped(path, offset, size, "checksum mismatch")
                return
            yield payload
            offset += _HEADER.size + length


def _warn_dropped(path: Path, offset: int, size: int, reason: str) -> None:
    logger.warning(
        "index log %s: %s at offset %d, dropping its last %d bytes (a write cut short?)",
        path,
        reason,
        offset,
        size - offset,
    )


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


class Translog:
    """The appending side of the log. Not thread-safe: the caller serialises calls.

    Holds an exclusive ``flock`` on the directory while open, so two writers cannot
    interleave. Each instance writes only to generation files it created itself.
    """

    def __init__(self, directory: Path, dir_fd: int | None) -> None:
        self.directory = directory
        self._dir_fd = dir_fd
        self._fd: int | None = None
        # The highest generation seen or created; the open file's, if one is open.
        self._generation = max(generations(directory), default=0)
        # Size of the open file up to its last acknowledged frame: where a failed call is undone.
        self._size = 0
        self._closed = False

    @classmethod
    def open(cls, directory: Path) -> Translog:
        """Open for appending. Writes nothing: a read-only or missing directory is fine here,
        the first ``append`` reports it."""
        with contextlib.suppress(OSError):
            directory.mkdir(parents=True, exist_ok=True)
        try:
            dir_fd: int | None = _lock_directory(directory)
        except TranslogLockedError:
            raise
        except OSError:
            dir_fd = None  # missing or unreadable: the first append retries and reports it
        return cls(directory, dir_fd)

    def __enter__(self) -> Translog:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def append(self, payloads: Sequence[bytes]) -> None:
        """Write ``payloads`` durably: when this returns they survive a crash.

        One write and one fdatasync for the whole sequence (group commit). On failure raises
        ``TranslogWriteError`` and none of ``payloads`` will be replayed.
        """
        if self._closed:
            raise ValueError(f"the index log in {self.directory} is closed")
        for payload in payloads:
            if not payload:
                raise ValueError("a log record cannot be empty")
            if len(payload) > MAX_PAYLOAD:
                raise ValueError(
                    f"a log record of {len(payload)} bytes is over the limit of {MAX_PAYLOAD}"
                )
        if not payloads:
            return
        parts: list[bytes] = []
        for payload in payloads:
            parts += (_HEADER.pack(len(payload), zlib.crc32(payload)), payload)
        data = b"".join(parts)
        fd = self._fd if self._fd is not None else self._new_generation()
        try:
            _write_all(fd, data)
        except OSError as error:
            self._undo(fd)
            raise _write_error(self.directory, error) from error
        try:
            os.fdatasync(fd)
        except OSError as error:
            # Linux reports a failed writeback once and may have dropped the pages: nothing
            # more in this file can be trusted to reach the disk. Cut it back and leave it.
            self._undo(fd)
            self._close_file()
            raise _write_error(self.directory, error) from error
        self._size += len(data)

    def roll(self) -> int:
        """Close the current file; the next append starts a new generation.

        Returns the highest generation that may hold records appended so far (0 if none):
        once an index version containing them is saved, ``trim`` up to it.
        """
        self._close_file()
        self._generation = max(self._generation, *generations(self.directory), 0)
        return self._generation

    def trim(self, up_to: int) -> None:
        """Delete generations ``<= up_to``, except the one open for appending."""
        removed = False
        for generation in generations(self.directory):
            if generation > up_to or (self._fd is not None and generation == self._generation):
                continue
            try:
                generation_path(self.directory, generation).unlink(missing_ok=True)
            except OSError as error:
                raise _write_error(self.directory, error) from error
            removed = True
        if removed and self._dir_fd is not None:
            try:
                os.fsync(self._dir_fd)
            except OSError as error:
                raise _write_error(self.directory, error) from error

    def size_bytes(self) -> int:
        """Bytes on disk of all generation files."""
        total = 0
        for generation in generations(self.directory):
            with contextlib.suppress(FileNotFoundError):  # trimmed since the listing
                total += generation_path(self.directory, generation).stat().st_size
        return total

    def close(self) -> None:
        """Close the file and release the directory. Idempotent."""
        self._close_file()
        if self._dir_fd is not None:
            os.close(self._dir_fd)  # also releases the flock
            self._dir_fd = None
        self._closed = True

    def _new_generation(self) -> int:
        try:
            if self._dir_fd is None:
                # The directory could not be made at open time; try again now.
                self.directory.mkdir(parents=True, exist_ok=True)
                self._dir_fd = _lock_directory(self.directory)
            generation = max(self._generation, *generations(self.directory), 0) + 1
            path = generation_path(self.directory, generation)
            # O_EXCL: never reuse a file, whatever it holds. O_APPEND: after truncating back
            # a failed write, the next write lands at the new end, not after a hole of zeros.
            flags = os.O_CREAT | os.O_EXCL | os.O_WRONLY | os.O_APPEND | os.O_CLOEXEC
            fd = os.open(path, flags, 0o644)
        except OSError as error:
            raise _write_error(self.directory, error) from error
        # Numbers are never reused, even if this file cannot be finished.
        self._generation = generation
        try:
            _write_all(fd, MAGIC)
            os.fsync(fd)
            # The new directory entry must survive a crash, or so would not the records in it.
            os.fsync(self._dir_fd)
        except OSError as error:
            os.close(fd)
            # If this fails too, replay skips a file whose header is incomplete.
            with contextlib.suppress(OSError):
                path.unlink()
            raise _write_error(self.directory, error) from error
        self._fd = fd
        self._size = len(MAGIC)
        return fd

    def _undo(self, fd: int) -> None:
        """Cut the open file back to its last acknowledged frame, or give it up."""
        try:
            os.ftruncate(fd, self._size)
            os.fsync(fd)
        except OSError as error:
            # Its tail may hold part of the failed call: it must never be followed by new
            # frames (replay would stop at the garbage and lose them), so start a new file.
            logger.warning(
                "index log %s: could not remove a failed write (%s); starting a new file",
                generation_path(self.directory, self._generation),
                error,
            )
            self._close_file()

    def _close_file(self) -> None:
        if self._fd is not None:
            fd, self._fd = self._fd, None
            # Every acknowledged record was already fdatasynced; a close error changes nothing.
            with contextlib.suppress(OSError):
                os.close(fd)


def _lock_directory(directory: Path) -> int:
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise TranslogLockedError(f"the index log in {directory} is open elsewhere") from None
    return fd
