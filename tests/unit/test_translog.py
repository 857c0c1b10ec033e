from __future__ import annotations

import errno
import logging
import os
import random
import signal
import stat
import struct
import subprocess
import sys
import time
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from indexer.stores.faiss import translog
from indexer.stores.faiss.translog import (
    MAGIC,
    DiskFullError,
    ReadOnlyError,
    Translog,
    TranslogCorruptError,
    TranslogLockedError,
    TranslogWriteError,
    generation_path,
    generations,
    replay,
)

# Real os functions, saved before any test monkeypatches them.
REAL_WRITE = os.write
REAL_OPEN = os.open


def frame(payload: bytes) -> bytes:
    return struct.pack("<II", len(payload), zlib.crc32(payload)) + payload


def varied_payloads(count: int, seed: int = 0) -> list[bytes]:
    """Tiny, binary and large payloads, each different."""
    rng = random.Random(seed)
    sizes = [0, 1, 7, 8, 9, 100, 4096, 1 << 20]
    return [f"{i}:".encode() + rng.randbytes(rng.choice(sizes)) for i in range(count)]


@pytest.fixture
def log_dir(tmp_path: Path) -> Path:
    return tmp_path / "data" / "index" / "translog"


@pytest.fixture
def log(log_dir: Path) -> Iterator[Translog]:
    opened = Translog.open(log_dir)
    yield opened
    opened.close()


def test_file_format_is_magic_then_length_crc_payload_frames(log: Translog, log_dir: Path) -> None:
    log.append([b"hello", b"!"])
    log.append([b"\x00\xff"])
    expected = MAGIC + frame(b"hello") + frame(b"!") + frame(b"\x00\xff")
    assert (log_dir / "translog-00000001.tlog").read_bytes() == expected
    assert log.size_bytes() == len(expected)


def test_one_write_and_one_fdatasync_per_call_and_new_files_are_fsynced_with_their_directory(
    log: Translog, log_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[tuple[str, bool]] = []

    def spy(name: str, real: Callable[..., object]) -> Callable[..., object]:
        def call(fd: int, *args: object) -> object:
            calls.append((name, stat.S_ISDIR(os.fstat(fd).st_mode)))
            return real(fd, *args)

        return call

    for name in ("write", "fsync", "fdatasync"):
        monkeypatch.setattr(os, name, spy(name, getattr(os, name)))
    log.append([b"first"])
    # Creating the file: magic written, file and directory synced before any record.
    assert calls == [
        ("write", False),
        ("fsync", False),
        ("fsync", True),
        ("write", False),
        ("fdatasync", False),
    ]
    calls.clear()
    log.append([b"x" * 1000] * 50)  # group commit
    assert calls == [("write", False), ("fdatasync", False)]
    calls.clear()
    log.roll()
    log.trim(1)
    assert calls == [("fsync", True)]  # the deletion is made durable
    assert generations(log_dir) == []


def test_round_trip_across_appends_rolls_and_reopens(log_dir: Path) -> None:
    payloads = varied_payloads(120)
    written: list[bytes] = []
    batches = iter([payloads[i : i + 17] for i in range(0, len(payloads), 17)])
    for _ in range(3):  # three sessions, each writing through a roll
        with Translog.open(log_dir) as log:
            for _ in range(2):
                batch = next(batches, [])
                log.append(batch)
                log.append([])  # a no-op, must not create a generation or a frame
                written += batch
                log.roll()
            assert list(replay(log_dir)) == written
    rest = [p for batch in batches for p in batch]
    with Translog.open(log_dir) as log:
        log.append(rest)
    assert list(replay(log_dir)) == payloads
    # Each append after a roll or a reopen started a new generation.
    assert generations(log_dir) == list(range(1, 8))
    sizes = sum(generation_path(log_dir, g).stat().st_size for g in range(1, 8))
    assert sizes == 7 * len(MAGIC) + sum(len(frame(p)) for p in payloads)


def test_open_never_appends_to_an_existing_file(log_dir: Path) -> None:
    with Translog.open(log_dir) as log:
        log.append([b"a"])
    first = generation_path(log_dir, 1).read_bytes()
    with Translog.open(log_dir) as log:
        assert generations(log_dir) == [1]  # opening writes nothing
        log.append([b"b"])
        log.append([b"c"])
    assert generation_path(log_dir, 1).read_bytes() == first
    assert generations(log_dir) == [1, 2]
    assert list(replay(log_dir)) == [b"a", b"b", b"c"]


def test_generation_numbers_continue_after_the_highest_even_with_gaps(log_dir: Path) -> None:
    log_dir.mkdir(parents=True)
    for generation in (3, 12):
        generation_path(log_dir, generation).write_bytes(MAGIC + frame(str(generation).encode()))
    (log_dir / "notes.txt").write_text("not a generation")
    with Translog.open(log_dir) as log:
        log.append([b"new"])
    assert generations(log_dir) == [3, 12, 13]
    assert (log_dir / "translog-00000013.tlog").exists()
    assert list(replay(log_dir)) == [b"3", b"12", b"new"]


def test_roll_returns_the_highest_generation_that_may_hold_records(log_dir: Path) -> None:
    with Translog.open(log_dir) as log:
        assert log.roll() == 0  # nothing anywhere
        log.append([b"a"])
        assert log.roll() == 1
        assert log.roll() == 1  # nothing appended since
        log.append([b"b"])
        log.append([b"c"])
        assert log.roll() == 2
    with Translog.open(log_dir) as log:
        assert log.roll() == 2  # existing files, nothing appended yet
        log.append([b"d"])
        assert generations(log_dir) == [1, 2, 3]


def test_trim_deletes_covered_generations_but_never_the_open_file(
    log: Translog, log_dir: Path
) -> None:
    log.append([b"one"])
    covered = log.roll()
    log.append([b"two"])
    log.roll()
    log.append([b"three"])  # generation 3, open
    log.trim(covered)
    assert generations(log_dir) == [2, 3]
    log.trim(100)
    assert generations(log_dir) == [3]
    log.append([b"four"])  # still appending to the kept file
    assert generations(log_dir) == [3]
    assert list(replay(log_dir)) == [b"three", b"four"]
    assert log.size_bytes() == len(MAGIC) + len(frame(b"three")) + len(frame(b"four"))
    log.roll()
    log.trim(3)
    assert generations(log_dir) == []
    assert log.size_bytes() == 0


def test_missing_directory_replays_nothing(tmp_path: Path) -> None:
    assert list(replay(tmp_path / "absent")) == []
    assert generations(tmp_path / "absent") == []


def test_a_second_writer_on_the_same_directory_is_refused(log: Translog, log_dir: Path) -> None:
    with pytest.raises(TranslogLockedError, match="open elsewhere"):
        Translog.open(log_dir)
    log.close()
    with Translog.open(log_dir) as again:
        again.append([b"x"])
    assert list(replay(log_dir)) == [b"x"]


def test_read_only_directory_can_be_replayed_and_opened(log_dir: Path) -> None:
    with Translog.open(log_dir) as log:
        log.append([b"a", b"b"])
    path = generation_path(log_dir, 1)
    path.chmod(0o444)
    log_dir.chmod(0o555)
    try:
        # Root ignores permission bits, so also check that nothing at all was written.
        before = {p.name: p.stat().st_mtime_ns for p in log_dir.iterdir()}
        assert list(replay(log_dir)) == [b"a", b"b"]
        Translog.open(log_dir).close()
        assert {p.name: p.stat().st_mtime_ns for p in log_dir.iterdir()} == before
    finally:
        log_dir.chmod(0o755)


def test_a_directory_that_cannot_be_created_fails_at_the_first_append(
    log_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def refuse(self: Path, *args: object, **kwargs: object) -> None:
        raise PermissionError(errno.EACCES, "Permission denied", str(self))

    monkeypatch.setattr(Path, "mkdir", refuse)
    with Translog.open(log_dir) as log:  # opening is fine
        assert log.roll() == 0
        with pytest.raises(ReadOnlyError) as caught:
            log.append([b"a"])
    assert str(caught.value) == f"cannot write to the index log in {log_dir}: permission denied"
    assert not log_dir.exists()


def test_payload_over_the_limit_is_refused_before_writing(
    log: Translog, log_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert translog.MAX_PAYLOAD == 256 * 1024 * 1024
    monkeypatch.setattr(translog, "MAX_PAYLOAD", 16)
    log.append([b"x" * 16])
    with pytest.raises(ValueError, match="17 bytes is over the limit"):
        log.append([b"ok", b"x" * 17])
    assert list(replay(log_dir)) == [b"x" * 16]


# --- torn and corrupt files -------------------------------------------------------------------


def write_generation(directory: Path, generation: int, payloads: list[bytes]) -> bytes:
    directory.mkdir(parents=True, exist_ok=True)
    data = MAGIC + b"".join(frame(p) for p in payloads)
    generation_path(directory, generation).write_bytes(data)
    return data


def warnings_of(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]


def test_a_last_frame_cut_at_any_length_drops_only_that_frame(
    log_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    earlier = [b"alpha", b"\x00", b"b" * 300]
    last = b"the frame being written when the power went" * 3
    whole = write_generation(log_dir, 1, [*earlier, last])
    write_generation(log_dir, 2, [b"next generation"])
    complete = len(whole) - len(frame(last))
    for cut in range(complete, len(whole)):
        generation_path(log_dir, 1).write_bytes(whole[:cut])
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="indexer"):
            assert list(replay(log_dir)) == [*earlier, b"next generation"], cut
        if cut == complete:
            assert warnings_of(caplog) == []
        else:
            [message] = warnings_of(caplog)
            path = generation_path(log_dir, 1)
            assert f"{path}:" in message
            assert f"at offset {complete}, dropping its last {cut - complete} bytes" in message


@pytest.mark.parametrize(
    ("where", "reason"),
    [("payload", "checksum mismatch"), ("crc", "checksum mismatch"), ("length", "incomplete")],
)
def test_a_damaged_middle_frame_ends_its_file_and_the_next_generation_still_replays(
    log_dir: Path, caplog: pytest.LogCaptureFixture, where: str, reason: str
) -> None:
    payloads = [b"first", b"second frame", b"third", b"fourth"]
    data = bytearray(write_generation(log_dir, 1, payloads))
    write_generation(log_dir, 2, [b"later"])
    second = len(MAGIC) + len(frame(b"first"))
    flip = {"length": second + 2, "crc": second + 5, "payload": second + 8 + 3}[where]
    data[flip] ^= 0x40
    generation_path(log_dir, 1).write_bytes(bytes(data))
    with caplog.at_level(logging.WARNING, logger="indexer"):
        assert list(replay(log_dir)) == [b"first", b"later"]
    [message] = warnings_of(caplog)
    assert reason in message
    assert f"at offset {second}, dropping its last {len(data) - second} bytes" in message


def test_a_file_with_another_magic_is_refused(log_dir: Path) -> None:
    write_generation(log_dir, 1, [b"fine"])
    generation_path(log_dir, 2).write_bytes(b"PK\x03\x04" + b"\x00" * 40)
    replayed = replay(log_dir)
    assert next(replayed) == b"fine"
    with pytest.raises(TranslogCorruptError, match=r"translog-00000002\.tlog is not an index log"):
        next(replayed)


def test_a_file_of_another_format_version_is_refused(log_dir: Path) -> None:
    generation_path(log_dir, 1).parent.mkdir(parents=True)
    generation_path(log_dir, 1).write_bytes(MAGIC[:-1] + b"\x02" + frame(b"x"))
    with pytest.raises(TranslogCorruptError, match="format version 2, this code reads version 1"):
        list(replay(log_dir))


@pytest.mark.parametrize("length", range(len(MAGIC)))
def test_a_file_cut_inside_its_magic_holds_nothing_and_is_skipped(
    log_dir: Path, length: int
) -> None:
    write_generation(log_dir, 1, [b"a"])
    generation_path(log_dir, 2).write_bytes(MAGIC[:length])
    write_generation(log_dir, 3, [b"c"])
    assert list(replay(log_dir)) == [b"a", b"c"]


# --- failed writes ----------------------------------------------------------------------------


def fail_once(error: int, after: Callable[..., object] | None = None) -> Callable[..., object]:
    """A stand-in that raises OSError(``error``) on its first call, then calls ``after``."""
    calls = 0

    def fake(*args: object) -> object:
        nonlocal calls
        calls += 1
        if calls == 1 or after is None:
            raise OSError(error, os.strerror(error))
        return after(*args)

    return fake


def test_disk_full_after_a_partial_write_truncates_the_file_back(
    log: Translog, log_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    log.append([b"acknowledged"])
    path = generation_path(log_dir, 1)
    size = path.stat().st_size
    calls = 0

    def half_then_full(fd: int, data: bytes) -> int:
        nonlocal calls
        calls += 1
        if calls == 1:
            return REAL_WRITE(fd, bytes(data[: len(data) // 2]))
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "write", half_then_full)
    with pytest.raises(DiskFullError) as caught:
        log.append([b"lost " * 100, b"also lost"])
    assert calls == 2  # the partial write was followed up, then failed
    assert isinstance(caught.value, OSError)
    assert caught.value.errno == errno.ENOSPC
    assert str(caught.value) == f"cannot write to the index log in {log_dir}: the disk is full"
    assert path.stat().st_size == size
    monkeypatch.undo()
    log.append([b"after", b"!"])
    assert generations(log_dir) == [1]  # the cleaned-up file is still the one in use
    assert list(replay(log_dir)) == [b"acknowledged", b"after", b"!"]


@pytest.mark.parametrize(
    ("code", "error_class", "reason"),
    [
        (errno.EIO, TranslogWriteError, "input/output error"),
        (errno.ENOSPC, DiskFullError, "the disk is full"),
        (errno.EDQUOT, DiskFullError, "the disk quota is exceeded"),
        (errno.EROFS, ReadOnlyError, "the file system is read-only"),
        (errno.EACCES, ReadOnlyError, "permission denied"),
        (errno.EPERM, ReadOnlyError, "operation not permitted"),
    ],
)
def test_a_failed_sync_truncates_back_and_raises_a_typed_error(
    log: Translog,
    log_dir: Path,
    monkeypatch: pytest.MonkeyPatch,
    code: int,
    error_class: type[TranslogWriteError],
    reason: str,
) -> None:
    log.append([b"acknowledged"])
    path = generation_path(log_dir, 1)
    size = path.stat().st_size
    monkeypatch.setattr(os, "fdatasync", fail_once(code))
    with pytest.raises(TranslogWriteError) as caught:
        log.append([b"written but never synced"])
    assert type(caught.value) is error_class
    assert caught.value.errno == code
    assert str(caught.value) == f"cannot write to the index log in {log_dir}: {reason}"
    assert path.stat().st_size == size
    monkeypatch.undo()
    log.append([b"after"])
    # After a failed sync nothing more in that file can be trusted to reach the disk.
    assert generations(log_dir) == [1, 2]
    assert list(replay(log_dir)) == [b"acknowledged", b"after"]


def test_a_read_only_file_system_when_creating_a_generation(
    log: Translog, log_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def read_only(path: Path, flags: int, mode: int = 0o777) -> int:
        if str(path).endswith(".tlog"):
            raise OSError(errno.EROFS, "Read-only file system", str(path))
        return REAL_OPEN(path, flags, mode)

    monkeypatch.setattr(os, "open", read_only)
    with pytest.raises(ReadOnlyError) as caught:
        log.append([b"refused"])
    assert str(log_dir) in str(caught.value)
    assert "read-only" in str(caught.value)
    assert generations(log_dir) == []
    monkeypatch.undo()
    log.append([b"later"])
    assert generations(log_dir) == [1]
    assert list(replay(log_dir)) == [b"later"]


def test_a_failure_while_creating_a_generation_leaves_no_file_behind(
    log: Translog, log_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_fsync = os.fsync
    monkeypatch.setattr(os, "fsync", fail_once(errno.ENOSPC, after=real_fsync))
    with pytest.raises(DiskFullError):
        log.append([b"refused"])
    assert generations(log_dir) == []
    log.append([b"accepted"])
    assert generations(log_dir) == [2]  # a number is never reused
    assert list(replay(log_dir)) == [b"accepted"]


def test_when_truncating_back_also_fails_the_next_append_starts_a_new_generation(
    log: Translog, log_dir: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    acknowledged = [b"one", b"two"]
    log.append(acknowledged)
    calls = 0

    def partial_then_full(fd: int, data: bytes) -> int:
        nonlocal calls
        calls += 1
        if calls == 1:
            return REAL_WRITE(fd, bytes(data[:13]))
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "write", partial_then_full)
    monkeypatch.setattr(os, "ftruncate", fail_once(errno.EIO))
    with caplog.at_level(logging.WARNING, logger="indexer"), pytest.raises(DiskFullError):
        log.append([b"torn " * 10, b"never written"])
    assert any("starting a new file" in m for m in warnings_of(caplog))
    monkeypatch.undo()
    # The abandoned file really does end in garbage now.
    size = generation_path(log_dir, 1).stat().st_size
    assert size == len(MAGIC) + sum(len(frame(p)) for p in acknowledged) + 13
    log.append([b"three"])
    log.append([b"four"])
    acknowledged += [b"three", b"four"]
    assert generations(log_dir) == [1, 2]
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="indexer"):
        assert list(replay(log_dir)) == acknowledged
    [message] = warnings_of(caplog)
    assert "translog-00000001.tlog" in message
    assert "dropping its last 13 bytes" in message
    assert log.roll() == 2


def test_append_after_close_is_an_error(log: Translog) -> None:
    log.close()
    log.close()  # idempotent
    with pytest.raises(ValueError, match="closed"):
        log.append([b"x"])


# --- a real crash -----------------------------------------------------------------------------

WRITER = """
import importlib.util
import random
import sys
from pathlib import Path

# Loaded by path: the writer needs this one module, not the package (its __init__ imports faiss).
spec = importlib.util.spec_from_file_location("translog", sys.argv[3])
translog = importlib.util.module_from_spec(spec)
spec.loader.exec_module(translog)

directory, rng = Path(sys.argv[1]), random.Random(int(sys.argv[2]))
# Continue the numbering from what survived the previous rounds.
numbers = [int.from_bytes(p[:8], "little") for p in translog.replay(directory)]
next_number = numbers[-1] + 1 if numbers else 0
log = translog.Translog.open(directory)
print("ready", flush=True)
while True:
    # Some calls write megabytes: a kill inside write() is what leaves a torn frame behind.
    large = rng.random() < 0.1
    batch = []
    for number in range(next_number, next_number + rng.randint(1, 20)):
        size = rng.randint(100_000, 500_000) if large else rng.randint(0, 3000)
        filler = bytes([number % 251]) * size
        batch.append(number.to_bytes(8, "little") + size.to_bytes(4, "little") + filler)
    next_number += len(batch)
    print("try", next_number - 1, flush=True)
    log.append(batch)
    print("ok", next_number - 1, flush=True)
"""


def replayed_numbers(directory: Path) -> list[int]:
    numbers = []
    for payload in replay(directory):
        number = int.from_bytes(payload[:8], "little")
        size = int.from_bytes(payload[8:12], "little")
        assert payload[12:] == bytes([number % 251]) * size, f"payload {number} is damaged"
        numbers.append(number)
    return numbers


def run_writer_until_killed(script: Path, directory: Path, out: Path, rng: random.Random) -> None:
    with out.open("wb") as stdout:
        child = subprocess.Popen(
            [sys.executable, script, directory, str(rng.randrange(1 << 32)), translog.__file__],
            stdout=stdout,
        )
    try:
        deadline = time.monotonic() + 10
        while not out.read_bytes().startswith(b"ready\n"):
            assert child.poll() is None, f"the writer died: {out.read_text()}"
            assert time.monotonic() < deadline, "the writer never got ready"
            time.sleep(0.005)
        time.sleep(rng.uniform(0.05, 0.5))
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait()
    assert child.returncode == -signal.SIGKILL


def test_every_acknowledged_append_survives_kill_9(tmp_path: Path) -> None:
    script = tmp_path / "writer.py"
    script.write_text(WRITER)
    directory = tmp_path / "translog"
    seed = random.randrange(1 << 32)
    rng = random.Random(seed)
    acknowledged: list[int] = []
    attempted = -1
    first_on_disk = 0  # verified generations are trimmed between rounds, to bound disk use
    for round_number in range(6):
        out = tmp_path / f"round-{round_number}.out"
        run_writer_until_killed(script, directory, out, rng)
        acknowledged_before = len(acknowledged)
        for line in out.read_text().splitlines(keepends=True)[1:]:
            if not line.endswith("\n"):
                continue  # the kill landed in the middle of a print
            kind, number = line.split()
            if kind == "try":
                attempted = int(number)
            else:
                acknowledged.append(int(number))
        numbers = replayed_numbers(directory)
        context = f"seed {seed}, round {round_number}"
        # Exactly once and in order; every acknowledged one present; nothing never attempted.
        assert numbers == list(range(first_on_disk, first_on_disk + len(numbers))), context
        assert not acknowledged or acknowledged[-1] < first_on_disk + len(numbers), context
        assert not numbers or numbers[-1] <= attempted, context
        if len(acknowledged) > acknowledged_before:
            # This round's generation (the newest) holds records: keep only it, as an index
            # save would, and the next writer still finds where the numbering stopped.
            with Translog.open(directory) as log:
                log.trim(log.roll() - 1)
            first_on_disk = replayed_numbers(directory)[0]
    assert acknowledged, f"seed {seed}: no append was acknowledged in any round"


def test_empty_records_are_refused_and_a_tail_of_zeros_reads_as_torn(
    log: Translog, log_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """crc32(b"") is 0: without this, zeros left at a file's end by a crash would replay as
    empty records."""
    with pytest.raises(ValueError, match="cannot be empty"):
        log.append([b"fine", b""])
    log.append([b"kept"])
    log.close()
    path = generation_path(log_dir, 1)
    path.write_bytes(path.read_bytes() + bytes(64))
    with caplog.at_level(logging.WARNING, logger="indexer"):
        assert list(replay(log_dir)) == [b"kept"]
    assert any("zero-length frame" in message for message in warnings_of(caplog))
