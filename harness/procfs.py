"""Processes as /proc shows them: what the harnesses need to find the processes a server
started, to stop exactly those (a pid alone may be a later process's by then) and to wait,
with a deadline, for them to go or for a server to answer."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True, slots=True)
class Process:
    """A process by pid and start time (clock ticks after boot), which tells it from a later
    process given the same pid."""

    pid: int
    started: int
    name: str = field(compare=False, default="")


@dataclass(frozen=True, slots=True)
class Stat:
    """A process's line in ``/proc/<pid>/stat``, the fields used here."""

    name: str
    state: str
    parent: int
    group: int
    started: int
    """Clock ticks after boot: with the pid, what tells this process from a later one."""


def stat(pid: int) -> Stat | None:
    """Process ``pid`` now; None when gone."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The name, field 2, is in parentheses and may hold spaces or parentheses.
    name = text[text.index("(") + 1 : text.rindex(")")]
    fields = text[text.rindex(")") + 2 :].split()
    return Stat(name, fields[0], int(fields[1]), int(fields[2]), int(fields[19]))


def running(pid: int, state: str) -> bool:
    """Not a zombie; or one whose other threads still exit, holding its files (and ports)."""
    if state not in ("Z", "X"):
        return True
    try:
        return len(os.listdir(f"/proc/{pid}/task")) > 1
    except OSError:
        return False


def alive(process: Process) -> bool:
    """Still running, and the same process (not a later one given its pid)."""
    now = stat(process.pid)
    return now is not None and now.started == process.started and running(process.pid, now.state)


def wait_gone(
    processes: Iterable[Process], seconds: float, each_round: Callable[[], object] = lambda: None
) -> list[Process]:
    """Wait up to ``seconds`` for ``processes`` to end (``each_round`` first, each time: a
    parent reaping its child); those still running then, by pid."""
    deadline = time.monotonic() + seconds
    while True:
        each_round()
        left = sorted((p for p in processes if alive(p)), key=lambda p: p.pid)
        if not left or time.monotonic() > deadline:
            return left
        time.sleep(0.1)


def wait_for(check: Callable[[], bool], what: str, seconds: float) -> None:
    """Polls ``check`` until it holds; RuntimeError after ``seconds``."""
    deadline = time.monotonic() + seconds
    while not check():
        if time.monotonic() > deadline:
            raise RuntimeError(f"{what} did not happen within {seconds} s")
        time.sleep(0.2)
