"""Processes as /proc shows them: what the harnesses need to find the processes a server
started and to stop exactly those (a pid alone may be a later process's by then)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path


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


def alive(pid: int, started: int) -> bool:
    """Process ``pid`` started at ``started`` still runs (not a later one given its pid)."""
    now = stat(pid)
    return now is not None and now.started == started and running(pid, now.state)
