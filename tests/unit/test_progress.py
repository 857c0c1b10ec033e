"""Progress output: a bar on a terminal, a plain line every few seconds elsewhere."""

from __future__ import annotations

import io

import pytest

from indexer.progress import LOG_INTERVAL, progress

pytestmark = pytest.mark.unit


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


class _Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_log_gets_whole_lines_at_the_start_and_the_end_only() -> None:
    log = io.StringIO()
    assert list(progress(range(1000), desc="Batches", file=log)) == list(range(1000))
    lines = log.getvalue().split("\n")
    assert "\r" not in log.getvalue()
    assert lines[-1] == ""  # every line ends with a newline
    assert len(lines[:-1]) == 2
    assert lines[0].startswith("Batches:   0%")
    assert "1000/1000" in lines[1]


def test_a_log_gets_a_line_every_few_seconds(monkeypatch: pytest.MonkeyPatch) -> None:
    log = io.StringIO()
    clock = _Clock()
    bar = progress(range(30), desc="eval hybrid", unit="query", file=log)
    monkeypatch.setattr(bar, "_time", clock)
    bar.start_t = bar.last_print_t = clock.now
    for _ in bar:
        clock.now += LOG_INTERVAL / 2  # two items per interval: a line every other item
    lines = log.getvalue().splitlines()
    assert 14 <= len(lines) <= 17
    assert all(line.startswith("eval hybrid:") for line in lines)
    assert "30/30" in lines[-1]


def test_a_terminal_gets_a_bar_redrawn_in_place() -> None:
    terminal = _Terminal()
    list(progress(range(3), desc="Batches", file=terminal))
    assert "\r" in terminal.getvalue()


def test_disabled_writes_nothing() -> None:
    log = io.StringIO()
    assert list(progress(range(5), desc="Batches", enabled=False, file=log)) == list(range(5))
    assert log.getvalue() == ""


def test_the_default_stream_is_stderr(capsys: pytest.CaptureFixture[str]) -> None:
    list(progress(range(3), desc="Batches"))
    assert "3/3" in capsys.readouterr().err
