"""Real processes for the end-to-end and deploy tiers: the service, nginx, readiness waits."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

from harness.service import copy_index, free_port, server
from tests.utils.paths import REPO


def wait_for(
    check: Callable[[], object], what: str, seconds: float = 60.0, *, interval: float = 0.2
) -> float:
    """Poll ``check`` every ``interval`` seconds until it holds (an assert in it fails at once:
    it runs in the test's thread); fails after ``seconds``; returns how long that took."""
    started = time.monotonic()
    while True:
        try:
            if check():
                return time.monotonic() - started
        except httpx.TransportError:
            pass
        assert time.monotonic() - started < seconds, f"{what} did not happen within {seconds} s"
        time.sleep(interval)


@contextmanager
def running_service(index_dir: Path, onnx_dir: Path, log: Path, **env: str) -> Iterator[str]:
    """``python -m app`` as `make run` starts it, on its own copy of ``index_dir`` (one
    service writes to an index); yields its base URL once /ready says 200, and checks on
    leaving that SIGTERM shut it down cleanly."""
    port = free_port()
    env = {"SEARCH_ONNX_DIR": str(onnx_dir), **env}
    own = copy_index(index_dir, log.parent / f"index-{port}")
    with server(own, port, env, log) as (process, _):
        yield f"http://127.0.0.1:{port}"
    # uvicorn shuts down gracefully, then re-raises SIGTERM so supervisors see the signal.
    assert process.returncode in (0, -signal.SIGTERM)
    assert "Application shutdown complete" in log.read_text(), log.read_text()


def startup_refusal(**env: str) -> str:
    """Run ``python -m app`` with these settings, expecting it to refuse to start: exit code 2
    and one line on stderr, which is returned."""
    environment = {**os.environ, "PORT": str(free_port()), **env}
    result = subprocess.run(
        [sys.executable, "-m", "app"],
        cwd=REPO,
        env=environment,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    return lines[0]


@contextmanager
def running_nginx(workdir: Path, *upstream_ports: int, config: str = "nginx.conf") -> Iterator[str]:
    """nginx with ``deploy/<config>`` as shipped, on free ports; yields its base URL.

    The upstream's servers, in order, become ``127.0.0.1:<port>`` for each of
    ``upstream_ports``; a log under /var/log/nginx/ is written to ``workdir`` instead."""
    port = free_port()
    site = (REPO / "deploy" / config).read_text()
    site = re.sub(r"listen \d+;", f"listen 127.0.0.1:{port};", site)
    server = re.compile(r"^(\s*server\s+)[\w.-]+:\d+", flags=re.MULTILINE)
    assert len(server.findall(site)) == len(upstream_ports), upstream_ports
    ports = iter(upstream_ports)
    site = server.sub(lambda found: f"{found[1]}127.0.0.1:{next(ports)}", site)
    site = site.replace("/var/log/nginx/", f"{workdir}/")
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / "site.conf").write_text(site)
    # As root, nginx's workers would drop to an unprivileged user that cannot write request
    # bodies into this private temporary directory.
    user = "user root;" if os.geteuid() == 0 else ""
    (workdir / "nginx.conf").write_text(
        f"""
{user}
daemon off;
worker_processes 1;
pid {workdir}/nginx.pid;
error_log {workdir}/error.log;
events {{}}
http {{
    access_log {workdir}/access.log;
    client_body_temp_path {workdir}/body;
    proxy_temp_path {workdir}/proxy;
    fastcgi_temp_path {workdir}/fastcgi;
    uwsgi_temp_path {workdir}/uwsgi;
    scgi_temp_path {workdir}/scgi;
    include {workdir}/site.conf;
}}
"""
    )
    nginx = subprocess.Popen(
        ["nginx", "-c", str(workdir / "nginx.conf"), "-p", str(workdir)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    base = f"http://127.0.0.1:{port}"
    try:

        def listening() -> bool:
            assert nginx.poll() is None, nginx.stderr.read().decode() if nginx.stderr else ""
            httpx.get(f"{base}/")
            return True

        wait_for(listening, "nginx listening", seconds=20)
        yield base
    finally:
        nginx.terminate()
        nginx.wait(10)


def indexer_cli(
    *args: str, env: dict[str, str] | None = None, timeout: float = 300
) -> subprocess.CompletedProcess[str]:
    """``python -m indexer ARGS`` in a process of its own, from the repository, with ``env`` on
    top of this one's (a Milvus Lite file is held by one process: not by the test's)."""
    return subprocess.run(
        [sys.executable, "-m", "indexer", *args],
        cwd=REPO,
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=timeout,
    )
