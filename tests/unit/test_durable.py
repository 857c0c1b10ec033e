"""Durable writes: a file or directory is replaced whole, or not at all."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from indexer.durable import replace_directory, write_atomically


def test_write_atomically_replaces_the_file_with_every_chunk(tmp_path: Path) -> None:
    path = tmp_path / "archive.tar"
    path.write_bytes(b"old")
    write_atomically(path, [b"new ", b"content"])
    assert path.read_bytes() == b"new content"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["archive.tar"]


def test_a_write_that_fails_midway_leaves_the_old_file_and_no_leftover(tmp_path: Path) -> None:
    path = tmp_path / "archive.tar"
    path.write_bytes(b"old")

    def chunks() -> Iterator[bytes]:
        yield b"half of it"
        raise OSError("the source went away")

    with pytest.raises(OSError, match="went away"):
        write_atomically(path, chunks())
    assert path.read_bytes() == b"old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["archive.tar"]


def test_replace_directory_swaps_in_the_new_one_and_removes_the_old(tmp_path: Path) -> None:
    out, staging = tmp_path / "index", tmp_path / ".staging"
    out.mkdir()
    (out / "old").write_text("old")
    staging.mkdir()
    (staging / "new").write_text("new")
    replace_directory(staging, out)
    assert [p.name for p in out.iterdir()] == ["new"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["index"]
    replace_directory(tmp_path / "index", tmp_path / "moved")  # nothing there yet: a rename
    assert [p.name for p in (tmp_path / "moved").iterdir()] == ["new"]
