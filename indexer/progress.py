"""Progress bars on a terminal; in a file or a container log, a plain line every few seconds.

tqdm redraws its bar in place with carriage returns, up to ten times a second: on a terminal
that is a bar, in a log it is thousands of fragments on one line.
"""

from __future__ import annotations

import io
import sys
from collections.abc import Iterable
from typing import TextIO, TypeVar

from tqdm import tqdm

T = TypeVar("T")
# How often a progress line is written when the output is not a terminal.
LOG_INTERVAL = 5.0


class LineWriter(io.TextIOBase):
    """tqdm's redraws (``\\r`` and the bar) as one line each."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream

    def write(self, text: str) -> int:
        line = text.replace("\r", "").rstrip()
        if line:
            self.stream.write(line + "\n")
        return len(text)

    def flush(self) -> None:
        self.stream.flush()


def is_terminal(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):  # a closed or file-like stream
        return False


def progress(
    iterable: Iterable[T],
    *,
    desc: str,
    unit: str = "it",
    enabled: bool = True,
    file: TextIO | None = None,
) -> tqdm[T]:
    """``tqdm(iterable)``: a bar on a terminal, else a line every ``LOG_INTERVAL`` seconds
    (and at the start and the end)."""
    stream = sys.stderr if file is None else file
    if is_terminal(stream):
        return tqdm(iterable, desc=desc, unit=unit, disable=not enabled, file=stream)
    return tqdm(
        iterable,
        desc=desc,
        unit=unit,
        disable=not enabled,
        file=LineWriter(stream),
        mininterval=LOG_INTERVAL,
        ncols=80,
        ascii=True,
    )
