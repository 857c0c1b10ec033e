"""Snapshots of a live index and restoring them: consistent under writes and merges, refusing
other formats and unsafe archives."""

from __future__ import annotations

import io
import json
import subprocess
import sys
import tarfile
import threading
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from indexer.cli import app
from indexer.ingest import Preparer
from indexer.stores.base import save_snapshot
from indexer.stores.faiss.layout import TRANSLOG_DIR, current_version
from indexer.stores.faiss.merges import MergePolicy
from indexer.stores.faiss.snapshot import (
    SNAPSHOT_FILE,
    PinnedSnapshot,
    SnapshotError,
    pin,
    restore,
)
from indexer.stores.faiss.store import FaissStore
from indexer.stores.faiss.translog import generation_path, generations
from indexer.types import Document
from tests.utils.durability import content, version_of
from tests.utils.fakes import HashingEmbedder
from tests.utils.paths import REPO
from tests.utils.processes import wait_for

runner = CliRunner()
INDEXER = (sys.executable, "-m", "indexer")


def snapshot_to_file(index_dir: Path, out: Path) -> PinnedSnapshot:
    """A snapshot of ``index_dir`` written to ``out``, as ``python -m indexer snapshot`` does."""
    pinned = pin(index_dir)
    save_snapshot(pinned, out)
    return pinned


def held(store: FaissStore) -> dict[str, int | None]:
    """Every document the store serves, with the version of its content (None: a seed)."""
    reader = store.reader()
    found = {}
    for stored in reader.documents(0, reader.document_count):
        title = stored.document.title
        found[stored.document.doc_id] = version_of(title) if title.startswith("doc-") else None
    return found


class Writer(threading.Thread):
    """Puts and deletes documents through the store, logging each acknowledged write."""

    def __init__(self, store: FaissStore) -> None:
        super().__init__(daemon=True)
        self.store = store
        self.preparer = Preparer(
            HashingEmbedder(), store.manifest.chunking, store.manifest.title_prefix
        )
        self.acknowledged: list[tuple[int, str, int | None]] = []  # seq, doc id, version/None
        self.stop = threading.Event()
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            step = 0
            while not self.stop.is_set():
                step += 1
                doc_id = f"doc-{step % 23:03d}"
                if step % 5 == 0 and self.store.get(doc_id) is not None:
                    written = self.store.delete([doc_id])
                    self.acknowledged.append((written.seq, doc_id, None))
                else:
                    document = Document(doc_id, **content(doc_id, step))  # type: ignore[arg-type]
                    written = self.store.put(self.preparer.prepare([document]))
                    self.acknowledged.append((written.seq, doc_id, step))
                time.sleep(0.001)
        except BaseException as error:
            self.error = error

    def acknowledge(self, count: int) -> None:
        """Return once ``count`` writes in all are acknowledged (fails on the writer's error,
        or after 60 s)."""

        def enough() -> bool:
            assert self.error is None, self.error
            return len(self.acknowledged) >= count

        wait_for(enough, f"{count} acknowledged writes", 60, interval=0.01)

    def finish(self) -> None:
        self.stop.set()
        self.join(timeout=30)
        assert self.error is None, self.error


def expected_at(
    seeds: dict[str, int | None], writes: list[tuple[int, str, int | None]], seq: int
) -> dict[str, int | None]:
    state = dict(seeds)
    for written_seq, doc_id, version in sorted(writes):
        if written_seq > seq:
            break
        if version is None:
            state.pop(doc_id, None)
        else:
            state[doc_id] = version
    return state


def description(archive: Path) -> dict[str, object]:
    with tarfile.open(archive) as tar:
        handle = tar.extractfile(SNAPSHOT_FILE)
        assert handle is not None
        loaded: dict[str, object] = json.loads(handle.read())
        return loaded


def check_restored(archive: Path, out: Path, seeds: dict[str, int | None], writer: Writer) -> int:
    """Restore ``archive`` and compare it with the writes up to its seq; returns the seq."""
    restored = restore(archive, out)
    seq = restored.seq
    assert description(archive)["seq"] == seq
    store = FaissStore.open(out, writable=False)
    try:
        assert store.seq == seq
        state = held(store)
        assert state == expected_at(seeds, writer.acknowledged, seq)
        assert store.reader().document_count == len(state)
    finally:
        store.close()
    return seq


def test_a_snapshot_under_writes_restores_every_acknowledged_write(
    seed_index_dir: Path, tmp_path: Path
) -> None:
    store = FaissStore.open(seed_index_dir, refresh_interval=0.05)
    seeds = held(store)
    writer = Writer(store)
    writer.start()
    try:
        writer.acknowledge(40)
        before = max(seq for seq, _, _ in list(writer.acknowledged))
        pinned = snapshot_to_file(seed_index_dir, tmp_path / "s.tar")
        writer.acknowledge(80)  # writes go on after the snapshot
    finally:
        writer.finish()
        store.close()
    assert pinned.seq >= before
    seq = check_restored(tmp_path / "s.tar", tmp_path / "restored", seeds, writer)
    assert before <= seq < max(s for s, _, _ in writer.acknowledged)


def test_merges_during_snapshots_do_not_break_them(seed_index_dir: Path, tmp_path: Path) -> None:
    # A merge after (nearly) every write: versions and translog generations come and go.
    policy = MergePolicy(min_rows=1, ratio=0.0)
    store = FaissStore.open(seed_index_dir, refresh_interval=0.01, merge_policy=policy)
    seeds = held(store)
    writer = Writer(store)
    writer.start()
    try:
        writer.acknowledge(10)
        pinned = pin(seed_index_dir)
        version = seed_index_dir / pinned.version
        # Merge now, while the snapshot has not been read: its version is deleted by name...
        deadline = time.monotonic() + 30
        while version.exists() or pinned.seq == store.seq:
            assert time.monotonic() < deadline, "no merge replaced the pinned version"
            thread = store.start_merge()
            if thread is not None:
                thread.join()
            time.sleep(0.02)
        save_snapshot(pinned, tmp_path / "pinned.tar")  # ... and the archive still reads it
        archives = []
        for i in range(5):
            path = tmp_path / f"s{i}.tar"
            snapshot_to_file(seed_index_dir, path)
            archives.append(path)
    finally:
        writer.finish()
        store.close()
    assert store.merges >= 1
    check_restored(tmp_path / "pinned.tar", tmp_path / "r-pinned", seeds, writer)
    for i, path in enumerate(archives):
        check_restored(path, tmp_path / f"r{i}", seeds, writer)


def test_a_torn_translog_tail_is_left_out(seed_index_dir: Path, tmp_path: Path) -> None:
    store = FaissStore.open(seed_index_dir)
    writer = Writer(store)
    writer.start()
    writer.acknowledge(5)
    writer.finish()
    seq = store.seq
    store.close()
    log = seed_index_dir / TRANSLOG_DIR
    with generation_path(log, generations(log)[-1]).open("ab") as handle:
        handle.write(b"\x10\x00\x00\x00garbage")  # a frame cut short by a crash
    pinned = snapshot_to_file(seed_index_dir, tmp_path / "s.tar")
    assert pinned.seq == seq
    restore(tmp_path / "s.tar", tmp_path / "out")
    restored = tmp_path / "out" / TRANSLOG_DIR / generation_path(log, generations(log)[-1]).name
    assert not restored.read_bytes().endswith(b"garbage")
    files = description(tmp_path / "s.tar")["files"]
    assert isinstance(files, dict)
    assert set(files) >= {"CURRENT", f"{current_version(seed_index_dir).name}/manifest.json"}


def rewrite(archive: Path, out: Path, change: dict[str, object], extra: bytes = b"") -> None:
    """A copy of ``archive`` with ``snapshot.json`` changed (and ``extra`` as a member
    named ``../escaped``, if given)."""
    with tarfile.open(archive) as source, tarfile.open(out, "w") as target:
        for member in source.getmembers():
            data = source.extractfile(member)
            assert data is not None
            body = data.read()
            if member.name == SNAPSHOT_FILE:
                body = json.dumps({**json.loads(body), **change}).encode()
                member.size = len(body)
            target.addfile(member, io.BytesIO(body))
        if extra:
            member = tarfile.TarInfo("../escaped")
            member.size = len(extra)
            target.addfile(member, io.BytesIO(extra))


def test_restore_refuses_another_format_in_one_sentence(
    seed_index_dir: Path, tmp_path: Path
) -> None:
    snapshot_to_file(seed_index_dir, tmp_path / "s.tar")
    rewrite(tmp_path / "s.tar", tmp_path / "old.tar", {"index_format_version": 2})
    out = tmp_path / "out"
    result = subprocess.run(
        [*INDEXER, "restore", "--archive", str(tmp_path / "old.tar"), "--out", str(out)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2, result.stderr
    assert result.stdout == ""
    assert result.stderr.splitlines() == [
        f"error: {tmp_path / 'old.tar'} is a snapshot of index format 2 (snapshot format 1); "
        "this version restores only index format 3 (snapshot format 1)"
    ]
    assert not out.exists()


def test_restore_refuses_a_member_outside_the_directory(
    seed_index_dir: Path, tmp_path: Path
) -> None:
    snapshot_to_file(seed_index_dir, tmp_path / "s.tar")
    files = description(tmp_path / "s.tar")["files"]
    assert isinstance(files, dict)
    evil = tmp_path / "evil.tar"
    rewrite(tmp_path / "s.tar", evil, {"files": {**files, "../escaped": "0" * 64}}, b"owned")
    with pytest.raises(SnapshotError, match="unsafe member"):
        restore(evil, tmp_path / "box" / "out")
    assert not (tmp_path / "box" / "escaped").exists()
    assert not (tmp_path / "box" / "out").exists()
    assert list((tmp_path / "box").iterdir()) == []  # the staging directory is gone too


def test_restore_refuses_a_damaged_file(seed_index_dir: Path, tmp_path: Path) -> None:
    snapshot_to_file(seed_index_dir, tmp_path / "s.tar")
    files = description(tmp_path / "s.tar")["files"]
    assert isinstance(files, dict)
    rewrite(tmp_path / "s.tar", tmp_path / "bad.tar", {"files": {**files, "CURRENT": "0" * 64}})
    with pytest.raises(SnapshotError, match="checksum of CURRENT does not match"):
        restore(tmp_path / "bad.tar", tmp_path / "out")


def test_cli_round_trip_and_no_overwrite_without_force(
    seed_index_dir: Path, tmp_path: Path
) -> None:
    archive, out = tmp_path / "s.tar", tmp_path / "out"
    result = runner.invoke(app, ["snapshot", "--index", str(seed_index_dir), "--out", str(archive)])
    assert result.exit_code == 0, result.output
    assert "up to write 0" in result.output
    result = runner.invoke(app, ["restore", "--archive", str(archive), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert result.output == f"restored {archive} -> {out}: 2 documents, up to write 0\n"
    result = runner.invoke(app, ["restore", "--archive", str(archive), "--out", str(out)])
    assert result.exit_code == 1
    assert "exists and is not empty (--force replaces it)" in result.output
    args = ["restore", "--archive", str(archive), "--out", str(out), "--force"]
    assert runner.invoke(app, args).exit_code == 0


def test_the_cli_snapshots_an_index_another_process_holds(
    seed_index_dir: Path, tmp_path: Path
) -> None:
    store = FaissStore.open(seed_index_dir)  # holds LOCK, as the service does
    try:
        writer = Writer(store)
        writer.start()
        writer.acknowledge(5)
        writer.finish()
        archive = tmp_path / "s.tar"
        result = subprocess.run(
            [*INDEXER, "snapshot", "--index", str(seed_index_dir), "--out", str(archive)],
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert result.returncode == 0, result.stderr
        assert f"up to write {store.seq}" in result.stdout
        assert store.put([]).seq == store.seq  # the service still writes
    finally:
        store.close()
    assert description(archive)["seq"] == store.seq


def test_a_merge_between_reading_current_and_opening_the_log_makes_pin_start_over(
    seed_index_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from indexer.stores.faiss import snapshot

    store = FaissStore.open(seed_index_dir)
    seeds = held(store)
    writer = Writer(store)
    writer.start()
    writer.acknowledge(5)
    writer.finish()
    replaced = current_version(seed_index_dir)
    calls = []

    def merging_first(directory: Path) -> list[int]:
        if not calls:  # the pinned version is replaced, its translog trimmed, right now
            thread = store.start_merge()
            assert thread is not None
            thread.join()
            assert not replaced.exists()
        calls.append(directory)
        return generations(directory)

    monkeypatch.setattr(snapshot, "generations", merging_first)
    try:
        pinned = pin(seed_index_dir)
        assert len(calls) == 2  # it started over
        assert pinned.version != replaced.name
        assert pinned.seq == store.seq
        save_snapshot(pinned, tmp_path / "s.tar")
    finally:
        store.close()
    check_restored(tmp_path / "s.tar", tmp_path / "out", seeds, writer)


def test_restore_refuses_a_link_member(seed_index_dir: Path, tmp_path: Path) -> None:
    snapshot_to_file(seed_index_dir, tmp_path / "s.tar")
    with tarfile.open(tmp_path / "s.tar", "a") as tar:
        link = tarfile.TarInfo("v000001/extra")
        link.type, link.linkname = tarfile.SYMTYPE, "manifest.json"
        tar.addfile(link)
    with pytest.raises(SnapshotError, match="'v000001/extra', which is not a file"):
        restore(tmp_path / "s.tar", tmp_path / "out")


def test_the_cli_says_what_is_not_an_index(tmp_path: Path) -> None:
    args = ["snapshot", "--index", str(tmp_path), "--out", str(tmp_path / "s.tar")]
    result = runner.invoke(app, args)
    assert result.exit_code == 1
    assert result.output == f"error: {tmp_path} is not an index directory\n"
    assert not (tmp_path / "s.tar").exists()
