"""The service as a process, for the tests and the benchmarks alike: ``python -m app`` on a free
loopback port, on its own copy of an index, waited for until ready and stopped with SIGTERM."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

import httpx

from indexer.stores.faiss.layout import LOCK_FILE

REPO = Path(__file__).resolve().parent.parent


def copy_index(index_dir: Path, target: Path) -> Path:
    """A copy of an index for a server of its own (one process writes to an index)."""
    shutil.copytree(index_dir, target, ignore=shutil.ignore_patterns(LOCK_FILE))
    return target


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def server(
    index_dir: Path, port: int, env: Mapping[str, str] | None = None, log: Path | None = None
) -> Iterator[tuple[subprocess.Popen[bytes], float]]:
    """``python -m app`` on loopback; yields the process and its seconds from start to ready.

    Its output goes to ``log`` when given. On leaving, it is sent SIGTERM and waited for, so
    the caller can check how it ended (``process.returncode``).
    """
    environment = {
        **os.environ,
        "SEARCH_INDEX_DIR": str(index_dir),
        "PORT": str(port),
        **(env or {}),
    }
    started = time.perf_counter()
    with log.open("w") if log else open(os.devnull, "w") as sink:
        process = subprocess.Popen(
            [sys.executable, "-m", "app"], cwd=REPO, env=environment, stdout=sink, stderr=sink
        )
    try:
        while True:
            if process.poll() is not None:
                output = f":\n{log.read_text()}" if log else ""
                raise RuntimeError(f"the service exited during startup{output}")
            try:
                if httpx.get(f"http://127.0.0.1:{port}/ready", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.perf_counter() - started > 120:
                raise RuntimeError("the service did not become ready in 120 s")
            time.sleep(0.05)
        yield process, time.perf_counter() - started
    finally:
        process.terminate()
        process.wait(30)
