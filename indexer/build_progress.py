"""How a build reports its progress: a live bar with rate and ETA on a terminal, a line a minute
in a log, or JSON events (one object a line) for a job runner.

Embedding is the long phase; the others take seconds and get one line or event each.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable
from typing import Any, Literal, TextIO

from tqdm import tqdm

from indexer.progress import LineWriter, is_terminal

Style = Literal["auto", "bar", "log", "json", "off"]
# A log gets a line this often (and at the start and end of a phase); a job runner an event.
LOG_INTERVAL = 60.0
JSON_INTERVAL = 2.0


class BuildMeter:
    """Progress of one build, written to ``stream`` (stderr by default; JSON to stdout)."""

    def __init__(
        self,
        style: Style = "auto",
        stream: TextIO | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if style == "auto":
            style = "bar" if is_terminal(sys.stderr if stream is None else stream) else "log"
        self.style = style
        self.stream = (
            stream if stream is not None else (sys.stdout if style == "json" else sys.stderr)
        )
        self._clock = clock
        self._bar: tqdm[Any] | None = None
        self._phase = ""
        self._total = 0
        self._done = 0
        self._resumed = 0
        self._started = 0.0
        self._last_event = 0.0

    def event(self, name: str, **fields: Any) -> None:
        """A one-off JSON event (nothing in the other styles: their lines are the CLI's)."""
        if self.style == "json":
            self._emit({"event": name, **fields})

    def phase(self, name: str, total: int, done: int = 0, unit: str = "passage") -> None:
        """A phase of ``total`` steps begins, ``done`` of them already done (resumed)."""
        self.close()
        self._phase, self._total, self._done, self._resumed = name, total, done, done
        self._started = self._last_event = self._clock()
        if self.style in ("bar", "log"):
            log = self.style == "log"
            self._bar = tqdm(
                total=total,
                initial=done,
                desc=name,
                unit=unit,
                file=LineWriter(self.stream) if log else self.stream,
                mininterval=LOG_INTERVAL if log else 0.1,
                ascii=log,
                ncols=100 if log else None,
                smoothing=0.1,
            )
            if log:  # tqdm's clock, so that tests can drive the interval
                self._bar._time = self._clock  # type: ignore[attr-defined]
                self._bar.start_t = self._bar.last_print_t = self._started
        elif self.style == "json":
            self._progress_event()

    def advance(self, steps: int) -> None:
        self._done += steps
        if self._bar is not None:
            self._bar.update(steps)
        elif self.style == "json" and self._clock() - self._last_event >= JSON_INTERVAL:
            self._progress_event()

    def close(self) -> None:
        """End the current phase: its last line or event."""
        if self._bar is not None:
            self._bar.close()
            self._bar = None
        elif self.style == "json" and self._phase:
            self._progress_event()
        self._phase = ""

    def _progress_event(self) -> None:
        now = self._clock()
        self._last_event = now
        elapsed = now - self._started
        rate = (self._done - self._resumed) / elapsed if elapsed > 0 else 0.0
        left = self._total - self._done
        self._emit(
            {
                "event": "progress",
                "phase": self._phase,
                "done": self._done,
                "total": self._total,
                "rate": round(rate, 2),
                "eta_seconds": round(left / rate, 1) if rate > 0 else None,
            }
        )

    def _emit(self, event: dict[str, Any]) -> None:
        self.stream.write(json.dumps(event) + "\n")
        self.stream.flush()
