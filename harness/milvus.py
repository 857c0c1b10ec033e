"""A real Milvus standalone server, started and stopped: for the tests marked ``milvus`` (the
``milvus_server`` fixture, ``tests/utils/milvus_server.py``) and the benchmark's store axis
(``bench/milvus.py``).

``milvus-server`` (PyPI ``milvus==2.3.5``) lives in a venv of its own, ``MILVUS_VENV``
(``.venv-milvus``, made by ``make install-milvus``); where it is missing the tests skip, except
in CI (``CI=true``), where that is a failure, and the benchmark leaves Milvus out. It is a Python
wrapper: it writes a config into its data directory and runs ``DATA/bin/milvus run standalone``,
one Go process with every role and an embedded etcd. Each server here gets a fresh data
directory and free loopback ports:

- every port the wrapper has an option for (proxy, internal proxy, the coordinators' and nodes'
  gRPC ports, etcd's client port). The wrapper takes each as where to start looking for a free
  one, so a port taken meanwhile would silently become another: the proxy port is checked.
- the embedded etcd ignores ``--etcd-port``: it listens on etcd's defaults (2379, and 2380 for
  peers), and a second server, or a stray one, fails with "bind: address already in use". Milvus
  reads ``ETCD_CONFIG_PATH`` from the environment, an etcd config file: it moves both.
- the metrics/health port has no option: the wrapper takes the first free one from 9091 upward
  (``METRICS_PORT``). Two servers started at the same instant could both pick it.

The gRPC and metrics ports listen on every interface, not only loopback.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from harness import procfs
from harness.procfs import Process
from harness.service import REPO, free_port

# The wrapper's options for ports, in the order it claims them.
PORT_OPTIONS = (
    "etcd-port",
    "root-coord-port",
    "proxy-port",
    "proxy-internal-port",
    "query-coord-port",
    "query-node-port",
    "index-coord-port",
    "index-node-port",
    "data-coord-port",
    "data-node-port",
)
# With the default, 1800 s, SIGTERM stops nothing once a collection is loaded: the query node
# waits that long to hand its segments to another one, which a standalone server never has.
EXTRA_CONFIG = ("--extra-config", "common.gracefulStopTimeout=1")
STARTUP_SECONDS = 90.0
STOP_SECONDS = 20.0
KILL_SECONDS = 5.0
LOG = "milvus-server.log"


@dataclass
class MilvusServer:
    uri: str
    data_dir: Path
    # The wrapper's output; Milvus's own logs are in data_dir / "logs".
    log: Path
    # milvus-server, the leader of a process group of its own.
    process: subprocess.Popen[bytes]
    # Each port chosen for it, by the wrapper's option ("etcd-peer-port": the etcd config's).
    ports: dict[str, int]
    seconds_to_ready: float = 0.0
    # Every process seen in its tree, so none is lost if the wrapper dies and its child is
    # adopted by init.
    processes: set[Process] = field(default_factory=set)


@dataclass(frozen=True, slots=True)
class Stopped:
    seconds: float
    # Those still running after SIGTERM and STOP_SECONDS, then sent SIGKILL.
    killed: list[Process]
    # Those still running after SIGKILL and KILL_SECONDS (should be none).
    remaining: list[Process]


def milvus_venv() -> Path:
    venv = Path(os.environ.get("MILVUS_VENV", ".venv-milvus"))
    return venv if venv.is_absolute() else REPO / venv


def milvus_server_executable() -> Path:
    """The wrapper, ``milvus-server``, in ``MILVUS_VENV`` (which may not exist)."""
    return milvus_venv() / "bin" / "milvus-server"


def process_tree(root: int) -> set[Process]:
    """``root``, its descendants and the members of its process group, running now."""
    stats = {
        int(entry.name): stat
        for entry in Path("/proc").iterdir()
        if entry.name.isdigit() and (stat := procfs.stat(int(entry.name))) is not None
    }
    found: set[int] = set()
    frontier = {root}
    found.update(pid for pid, stat in stats.items() if stat.group == root)
    while frontier:
        found |= frontier
        frontier = {pid for pid, stat in stats.items() if stat.parent in frontier} - found
    return {
        Process(pid, stats[pid].started)
        for pid in found
        if pid in stats and procfs.running(pid, stats[pid].state)
    }


def port_is_free(port: int) -> bool:
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # TIME_WAIT is free
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def log_tails(data_dir: Path, lines: int = 25) -> str:
    """The last lines of the wrapper's log, Milvus's stderr (a panic's first) and stdout."""
    parts = []
    for name in (LOG, "logs/milvus-stderr.log", "logs/milvus-stdout.log"):
        path = data_dir / name
        if path.exists():
            text = path.read_text(errors="replace").splitlines()
            # A Go panic is followed by every goroutine's stack: its first lines tell.
            panics = [i for i, line in enumerate(text) if line.startswith("panic: ")]
            tail = text[panics[0] : panics[0] + lines] if panics else text[-lines:]
            parts.append(f"--- {path} ---\n" + "\n".join(line[:400] for line in tail))
    return "\n".join(parts) or f"(no logs in {data_dir})"


def _free_ports(count: int) -> list[int]:
    ports: list[int] = []
    while len(ports) < count:
        if (port := free_port()) not in ports:
            ports.append(port)
    return ports


def _etcd_config(path: Path, client_port: int, peer_port: int) -> Path:
    """The embedded etcd's config: its ports, and no fsync. On a disk shared with a test run's
    other servers an fsync of etcd's log can stall past its request timeout, and Milvus then
    fails a create_collection with "etcdserver: request timed out". A test server outlives no
    power loss, and a killed process loses nothing the kernel already holds."""
    client, peer = f"http://127.0.0.1:{client_port}", f"http://127.0.0.1:{peer_port}"
    path.write_text(
        f"name: default\n"
        f"listen-client-urls: {client}\nadvertise-client-urls: {client}\n"
        f"listen-peer-urls: {peer}\ninitial-advertise-peer-urls: {peer}\n"
        f"initial-cluster: default={peer}\n"
        "unsafe-no-fsync: true\n"
    )
    return path


def _unpacked_binaries(data_dir: Path) -> None:
    """Points data_dir/bin at the binaries ``make install-milvus`` unpacked, if it did: the
    wrapper, finding them current, skips unpacking 250 MB (6 s)."""
    unpacked = milvus_venv() / "server" / "bin"
    if (unpacked / "milvus.lzma.md5").exists():
        (data_dir / "bin").symlink_to(unpacked.resolve(), target_is_directory=True)


def _configured_port(data_dir: Path, section: str) -> int | None:
    """``  port: N`` under ``section:`` in the config the wrapper wrote."""
    config = (data_dir / "configs" / "milvus.yaml").read_text()
    match = re.search(rf"^{section}:\n(?:[ #].*\n|\n)*?  port: (\d+)", config, re.MULTILINE)
    return int(match.group(1)) if match else None


def _panicked(data_dir: Path) -> bool:
    stderr = data_dir / "logs" / "milvus-stderr.log"
    return stderr.exists() and b"panic: " in stderr.read_bytes()


def _answers(uri: str) -> bool:
    from pymilvus import MilvusClient

    try:
        client = MilvusClient(uri=uri, timeout=2)
        try:
            client.get_server_version()
        finally:
            client.close()
    except Exception:  # refused, not ready yet, or a timeout: asked again until the deadline
        return False
    return True


def start_milvus(data_dir: Path, seconds: float = STARTUP_SECONDS) -> MilvusServer:
    """``milvus-server --data DIR --proxy-port PORT ...`` on free ports; returns once a pymilvus
    client gets its version. On failure, everything started is stopped and the error shows the
    logs' tails."""
    executable = milvus_server_executable()
    data_dir.mkdir(parents=True, exist_ok=True)
    chosen = _free_ports(len(PORT_OPTIONS) + 1)
    ports = dict(zip((*PORT_OPTIONS, "etcd-peer-port"), chosen, strict=True))
    etcd = _etcd_config(data_dir / "embedEtcd.yaml", ports["etcd-port"], ports["etcd-peer-port"])
    _unpacked_binaries(data_dir)
    command = [str(executable), "--data", str(data_dir), *EXTRA_CONFIG]
    for option in PORT_OPTIONS:
        command += [f"--{option}", str(ports[option])]
    log = data_dir / LOG
    started = time.monotonic()
    with log.open("wb") as sink:
        process = subprocess.Popen(
            command,
            cwd=data_dir,
            env={**os.environ, "ETCD_CONFIG_PATH": str(etcd)},
            stdin=subprocess.DEVNULL,
            stdout=sink,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    server = MilvusServer(f"http://127.0.0.1:{ports['proxy-port']}", data_dir, log, process, ports)

    def ready() -> bool:
        if process.poll() is not None:
            raise RuntimeError(f"milvus-server exited with {process.returncode}")
        running = process_tree(process.pid)
        server.processes |= running
        # The wrapper outlives Milvus: when its child dies, it waits out a 180 s timeout.
        if len(running) < len(server.processes) or _panicked(data_dir):
            raise RuntimeError("milvus run standalone exited")
        return _answers(server.uri)

    try:
        procfs.wait_for(ready, f"Milvus answering at {server.uri}", seconds)
        proxy = _configured_port(data_dir, "proxy")
        if proxy != ports["proxy-port"]:
            raise RuntimeError(f"milvus-server moved the proxy to port {proxy} (taken meanwhile)")
    except RuntimeError as error:
        stop_milvus(server)
        raise RuntimeError(f"{error}\n{log_tails(data_dir)}") from None
    server.seconds_to_ready = time.monotonic() - started
    server.processes |= process_tree(process.pid)
    return server


def _signal(process: Process, number: signal.Signals, unless_group: int | None = None) -> None:
    stat = procfs.stat(process.pid)
    if procfs.alive(process) and stat is not None and stat.group != unless_group:
        with contextlib.suppress(ProcessLookupError):
            os.kill(process.pid, number)


def stop_milvus(server: MilvusServer, seconds: float = STOP_SECONDS) -> Stopped:
    """SIGTERM to the server's process group and every process seen in its tree; after
    ``seconds``, SIGKILL to whatever still runs. Removes unpacked binaries from the data dir."""
    started = time.monotonic()
    processes = server.processes | process_tree(server.process.pid)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(server.process.pid, signal.SIGTERM)
    for process in processes:  # any that left the group
        _signal(process, signal.SIGTERM, unless_group=server.process.pid)
    killed = procfs.wait_gone(processes, seconds, server.process.poll)  # poll: reaps our child
    for process in killed:
        _signal(process, signal.SIGKILL)
    remaining = procfs.wait_gone(processes, KILL_SECONDS, server.process.poll)
    binaries = server.data_dir / "bin"
    if binaries.is_dir() and not binaries.is_symlink():
        shutil.rmtree(binaries, ignore_errors=True)
    return Stopped(time.monotonic() - started, killed, remaining)
