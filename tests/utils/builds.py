"""``python -m indexer build --json`` in a process of its own, for tests that kill a build
midway: its JSON events as it prints them, and a wait (with a deadline) for a share of its
passages to be embedded."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from typing import IO, Any

from tests.utils.paths import REPO


class JsonBuild:
    def __init__(self, args: Sequence[str], env: dict[str, str]) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "indexer", "build", "--json", *args],
            cwd=REPO,
            env={**os.environ, **env},
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        stdout = self.process.stdout
        assert stdout is not None
        self._lines: list[str] = []
        self._reader = threading.Thread(target=self._read, args=(stdout,), daemon=True)
        self._reader.start()

    def _read(self, stdout: IO[str]) -> None:
        # Only collects lines: the test parses and checks them, in its own thread.
        for line in stdout:
            self._lines.append(line)

    @property
    def events(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in list(self._lines)]

    def wait_embedded(self, share: float, seconds: float = 240) -> int:
        """Wait until the build reports ``share`` of its passages embedded (the embedding
        phase's, not the chunking's); how many it reported."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            progress = [
                e
                for e in self.events
                if e["event"] == "progress" and e["phase"] == "embedding" and e["total"]
            ]
            if progress and progress[-1]["done"] >= progress[-1]["total"] * share:
                return int(progress[-1]["done"])
            assert self.process.poll() is None, "the build ended first"
            time.sleep(0.05)
        raise AssertionError(f"the build did not embed {share:.0%} within {seconds} s")

    def kill(self) -> None:
        """SIGKILL, and every line it printed read."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=30)
        self._reader.join(timeout=30)
        assert not self._reader.is_alive()

    def finish(self, seconds: float = 600) -> int:
        """Its exit code, once it ends by itself, every line read."""
        code = self.process.wait(timeout=seconds)
        self._reader.join(timeout=30)
        assert not self._reader.is_alive()
        return code
