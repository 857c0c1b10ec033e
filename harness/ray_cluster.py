"""Ray clusters on this machine, started and stopped: for the tests marked ``ray`` (the
``ray_cluster`` fixture, ``tests/utils/ray.py``), the benchmarks and the docs' demos.

Each cluster is ``ray start`` run as a subprocess (the ``ray`` extra, ``make install-ray``), and
touches no other Ray process on the machine (another test's cluster, CI's, a developer's):

- it listens on loopback only: the node's address is 127.0.0.2 (Ray rewrites 127.0.0.1 to the
  machine's external address; 127.0.0.2 is still loopback), the dashboard on 127.0.0.1;
- every port Ray would otherwise take from a fixed default (GCS 6379, dashboard 8265, the
  dashboard agent's 52365, the client server's 10001) or share between nodes is a free one;
- it has a temporary directory of its own, short because Ray's unix sockets live under it (a
  socket path has at most 107 bytes), and a HOME of its own inside it, so that
  ``~/.ray/auth_token`` is never read: with that file present (a local ``ray.init()`` writes
  it) Ray turns token authentication on and every later command fails. ``RAY_AUTH_MODE=disabled``
  is set for every command as well;
- it is stopped by process id, never with ``ray stop`` (which kills every Ray process on the
  machine by name). The processes ``ray start`` launches are reparented to init, and Ray's
  workers rewrite their command lines (``ray::IDLE``), so each cluster's processes are found by a
  variable of their environment (:data:`MARKER`), which every one of them inherits: SIGTERM, a
  bounded wait, then SIGKILL (``gcs_server`` may ignore SIGTERM for minutes).

Drivers connect with ``ray.init(address=cluster.address)`` with :attr:`RayCluster.env` in their
environment, or submit jobs to the job server (:func:`submit_job`).
"""

from __future__ import annotations

import contextlib
import functools
import itertools
import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from harness import procfs
from harness.procfs import Process
from harness.service import free_port

# The variable every process of one cluster inherits, valued with that cluster's id.
MARKER = "SEMANTIC_SEARCH_RAY_CLUSTER"
# And the one each process of a node inherits from its ``ray start``: "head-1", "node1-2" (node,
# attempt), so that a node whose start failed is stopped alone before it is started again.
NODE_MARKER = "SEMANTIC_SEARCH_RAY_NODE"
NODE_IP = "127.0.0.2"
DASHBOARD_HOST = "127.0.0.1"
# ``ray start`` returns once its node runs: 9-10 s for a head, 4-9 s for a second node on an
# idle 2-core machine, 25-40 s for a head when other work loads it; START_ATTEMPTS included.
START_SECONDS = 180.0
# The raylet gives its dashboard agent (a Python process importing much of Ray) 15 s to report
# its port, and aborts after; on a loaded 2-core machine the agent can take longer, and ray
# start fails. A second attempt usually passes.
START_ATTEMPTS = 2
STOP_SECONDS = 10.0
KILL_SECONDS = 10.0
JOB_SECONDS = 300.0
# A socket path has at most 107 bytes; Ray's longest is TEMP/session_<date>_<pid>/sockets/...,
# about 60 bytes below its temp dir.
MAX_TEMP_DIR = 40
TEMP_PREFIX = "ray-harness-"
DRIVER_VARIABLES = ("RAY_ADDRESS", "RAY_AUTH_MODE", "RAY_USAGE_STATS_ENABLED")
# Ray takes 30 % of memory for its object store unless told; tests need little.
OBJECT_STORE_BYTES = 500_000_000
TERMINAL_JOB_STATES = ("SUCCEEDED", "FAILED", "STOPPED")


@dataclass
class RayCluster:
    # The GCS, for ``ray.init(address=...)`` and ``ray status --address``.
    address: str
    # The job server (the dashboard), for :func:`submit_job`; None when not asked for.
    dashboard_url: str | None
    temp_dir: Path
    # The environment of the cluster's processes and ray commands, on top of os.environ: the
    # marker, the address, authentication off, the cluster's HOME. Drivers: driver_env.
    env: dict[str, str]
    # Every process of the cluster seen so far (while it runs, more come and go: workers).
    processes: set[Process] = field(default_factory=set)
    seconds_to_start: float = 0.0
    # Each node's ``ray start`` output, in order (head first).
    logs: list[Path] = field(default_factory=list)

    @property
    def driver_env(self) -> dict[str, str]:
        """What a driver process started outside the cluster needs on top of os.environ (a
        ``python -m indexer build --engine ray`` run by a test): the address and authentication
        off, without the cluster's marker (its processes are the cluster's, stopped with it)
        or its HOME."""
        return {key: self.env[key] for key in DRIVER_VARIABLES}


@dataclass(frozen=True, slots=True)
class Stopped:
    seconds: float
    # Every process of the cluster found when stopping it.
    stopped: list[Process]
    # Those still running after SIGTERM and STOP_SECONDS, then sent SIGKILL.
    killed: list[Process]
    # Those still running after SIGKILL and KILL_SECONDS (should be none).
    remaining: list[Process]


@dataclass(frozen=True, slots=True)
class JobResult:
    submission_id: str
    # SUCCEEDED, FAILED or STOPPED.
    status: str
    # The driver's exit code, when Ray knows it.
    exit_code: int | None
    # The driver's output, stdout and stderr.
    logs: str
    # From ``ray job submit`` to the job's end.
    seconds: float


def ray_executable() -> Path:
    """The ``ray`` command beside this interpreter (the ``ray`` extra, ``make install-ray``)."""
    return Path(sys.executable).with_name("ray")


# --- processes, from /proc -------------------------------------------------------------------


def cluster_processes(cluster_id: str, node: str | None = None) -> set[Process]:
    """The running processes whose environment carries ``MARKER=cluster_id`` (and
    ``NODE_MARKER=node`` when given): the cluster's, and none of another (a process whose
    environment cannot be read is not ours)."""
    needles = {f"{MARKER}={cluster_id}".encode()}
    if node is not None:
        needles.add(f"{NODE_MARKER}={node}".encode())
    found = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            environ = (entry / "environ").read_bytes()
        except OSError:  # gone meanwhile, or another user's
            continue
        if not needles <= set(environ.split(b"\0")):
            continue
        stat = procfs.stat(int(entry.name))
        if stat is not None and procfs.running(int(entry.name), stat.state):
            found.add(Process(int(entry.name), stat.started, stat.name))
    return found


def _signal(process: Process, number: signal.Signals) -> None:
    if procfs.alive(process):
        with contextlib.suppress(ProcessLookupError):
            os.kill(process.pid, number)


def _stop(find: Callable[[], set[Process]], seen: set[Process]) -> Stopped:
    """SIGTERM to the processes ``find`` returns and those ``seen`` before, but the GCS; after
    STOP_SECONDS, SIGKILL to whatever still runs, to any started meanwhile and to the GCS,
    which ignores SIGTERM here (for minutes; the rest end within a second)."""
    started = time.monotonic()
    processes = seen | find()
    for process in processes:
        if process.name != "gcs_server":
            _signal(process, signal.SIGTERM)
    running = procfs.wait_gone({p for p in processes if p.name != "gcs_server"}, STOP_SECONDS)
    # A raylet dying may have started a worker, or a job driver a child, since the scan.
    late = find() - processes
    gcs = {p for p in processes if p.name == "gcs_server" and procfs.alive(p)}
    killed = sorted({*running, *late, *gcs}, key=lambda p: p.pid)
    for process in killed:
        _signal(process, signal.SIGKILL)
    processes |= late
    remaining = procfs.wait_gone(processes | find(), KILL_SECONDS)
    return Stopped(
        time.monotonic() - started, sorted(processes, key=lambda p: p.pid), killed, remaining
    )


def stop_cluster(cluster: RayCluster) -> Stopped:
    """Stops every process of the cluster: found by its environment, and every one seen
    before (:func:`_stop`)."""
    cluster_id = cluster.env[MARKER]
    stopped = _stop(lambda: cluster_processes(cluster_id), cluster.processes)
    cluster.processes.update(stopped.stopped)
    return stopped


# --- starting --------------------------------------------------------------------------------


def _tail(path: Path, lines: int = 30) -> str:
    if not path.exists():
        return f"(no {path})"
    text = path.read_text(errors="replace").splitlines()
    return f"--- {path} ---\n" + "\n".join(line[:400] for line in text[-lines:])


def _temp_dir(temp_dir: Path | None) -> tuple[Path, bool]:
    """The cluster's directory, and whether it was made here (and is removed after)."""
    if temp_dir is None:
        # Not the test's tmp_path: that is far too long for Ray's socket paths. A prefix of
        # its own, to tell it from the ray-* of other Ray runs in /tmp.
        return Path(tempfile.mkdtemp(prefix=TEMP_PREFIX, dir="/tmp")), True
    if len(str(temp_dir.resolve())) > MAX_TEMP_DIR:
        raise ValueError(
            f"{temp_dir}: Ray's unix sockets live under its temp dir, and a socket path has at "
            f"most 107 bytes: give a path of at most {MAX_TEMP_DIR} characters"
        )
    temp_dir.mkdir(parents=True, exist_ok=True)
    return temp_dir.resolve(), False


def _environment(cluster_id: str, temp_dir: Path) -> dict[str, str]:
    home = temp_dir / "home"
    home.mkdir(exist_ok=True)
    return {
        MARKER: cluster_id,
        "HOME": str(home),
        "RAY_AUTH_MODE": "disabled",
        "RAY_USAGE_STATS_ENABLED": "0",
        # The model cache stays where it was: HOME moved only to hide ~/.ray.
        "HF_HOME": os.environ.get("HF_HOME", str(Path.home() / ".cache" / "huggingface")),
    }


def _node_ports() -> list[str]:
    """Free ports for what a node would otherwise take from a fixed default or share with
    another node on this machine (two agents on 52365 fail to bind)."""
    options = [
        "--dashboard-agent-listen-port",
        "--dashboard-agent-grpc-port",
        "--metrics-export-port",
        "--runtime-env-agent-port",
    ]
    ports: list[str] = []
    for option in options:
        ports += [option, str(free_port())]
    return ports


def _ray_start(
    cluster: RayCluster, node: str, arguments: Callable[[], list[str]], seconds: float
) -> None:
    """``ray start ARGUMENTS`` for ``node``, which returns once the node runs; when it fails,
    the processes it left are stopped and it is tried again (START_ATTEMPTS in all, with new
    ``arguments``: new free ports). RuntimeError with its output when every attempt failed or
    ``seconds`` ran out."""
    if not ray_executable().exists():
        raise RuntimeError(f"{ray_executable()} not found: the ray extra (make install-ray)")
    deadline = time.monotonic() + seconds
    cluster_id = cluster.env[MARKER]
    for attempt in range(1, START_ATTEMPTS + 1):
        label = f"{node}-{attempt}"
        log = cluster.temp_dir / f"ray-start-{label}.log"
        cluster.logs.append(log)
        with log.open("wb") as sink:
            try:
                result = subprocess.run(
                    [str(ray_executable()), "start", *arguments()],
                    env={**os.environ, **cluster.env, NODE_MARKER: label},
                    stdin=subprocess.DEVNULL,
                    stdout=sink,
                    stderr=subprocess.STDOUT,
                    timeout=max(deadline - time.monotonic(), 1.0),
                    # Ctrl-C at the terminal goes to the test, not to the cluster.
                    start_new_session=True,
                )
                failure = f"exited with {result.returncode}" if result.returncode else ""
            except subprocess.TimeoutExpired:
                failure = f"did not return within {seconds} s"
        cluster.processes |= cluster_processes(cluster_id)
        if not failure:
            return
        _stop(functools.partial(cluster_processes, cluster_id, label), set())
        # Only the agent's lateness is worth another attempt (a bad argument is not).
        transient = "timed out during startup" in log.read_text(errors="replace")
        if not transient or attempt == START_ATTEMPTS or time.monotonic() > deadline:
            raise RuntimeError(f"ray start ({label}) {failure}")


def _job_server_answers(url: str) -> bool:
    try:
        return httpx.get(f"{url}/api/version", timeout=2).status_code == 200
    except httpx.TransportError:
        return False


def _common_arguments(cluster: RayCluster, num_cpus: int, object_store_bytes: int) -> list[str]:
    return [
        "--node-ip-address",
        NODE_IP,
        "--num-cpus",
        str(num_cpus),
        "--num-gpus",
        "0",
        "--temp-dir",
        str(cluster.temp_dir),
        "--object-store-memory",
        str(object_store_bytes),
        "--disable-usage-stats",
        "--log-style",
        "record",
    ]


def _start_head(
    cluster: RayCluster, num_cpus: int, object_store_bytes: int, seconds: float
) -> None:
    def arguments() -> list[str]:
        head = [
            "--head",
            "--port",
            cluster.address.rsplit(":", 1)[1],
            *_common_arguments(cluster, num_cpus, object_store_bytes),
            *_node_ports(),
            # The Ray Client server's (ray:// addresses), 10001 by default.
            "--ray-client-server-port",
            str(free_port()),
        ]
        if cluster.dashboard_url is None:
            return [*head, "--include-dashboard", "false"]
        port = cluster.dashboard_url.rsplit(":", 1)[1]
        return [*head, "--dashboard-host", DASHBOARD_HOST, "--dashboard-port", port]

    _ray_start(cluster, "head", arguments, seconds)


def _wait_for_job_server(cluster: RayCluster, seconds: float) -> None:
    """The dashboard starts its modules (a process each) after ``ray start`` returns."""
    url = cluster.dashboard_url
    if url is not None:
        procfs.wait_for(
            lambda: _job_server_answers(url), f"the job server answering at {url}", seconds
        )


def _start_worker(
    cluster: RayCluster, name: str, num_cpus: int, object_store_bytes: int, seconds: float
) -> None:
    def arguments() -> list[str]:
        return [
            "--address",
            cluster.address,
            *_common_arguments(cluster, num_cpus, object_store_bytes),
            *_node_ports(),
        ]

    _ray_start(cluster, name, arguments, seconds)


@dataclass(frozen=True, slots=True)
class Status:
    nodes: int
    cpus: float


def cluster_status(cluster: RayCluster, timeout: float = 60.0) -> Status:
    """Active nodes and total CPUs, from ``ray status`` (asks the GCS; no dashboard needed)."""
    return parse_status(_ray(cluster, ["status", "--address", cluster.address], timeout))


def _ray(cluster: RayCluster, arguments: Sequence[str], timeout: float) -> str:
    """``ray ARGUMENTS`` in the cluster's environment, to its end: its output; RuntimeError
    with its errors if it fails."""
    result = subprocess.run(
        [str(ray_executable()), *arguments],
        env={**os.environ, **cluster.env},
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    if result.returncode != 0:
        command = " ".join(itertools.takewhile(lambda a: not a.startswith("-"), arguments))
        raise RuntimeError(f"ray {command} exited with {result.returncode}:\n{result.stderr}")
    return result.stdout


def parse_status(text: str) -> Status:
    """The ``Active:`` nodes and the total CPUs (``0.0/2.0 CPU``) of ``ray status``'s output."""
    active = re.search(r"^Active:\n(.*?)^\S", text, re.MULTILINE | re.DOTALL)
    nodes = 0 if active is None else len(re.findall(r"^\s+\d+ node_", active[1], re.MULTILINE))
    cpus = re.search(r"^\s*[\d.]+/([\d.]+) CPU\b", text, re.MULTILINE)
    return Status(nodes, float(cpus[1]) if cpus else 0.0)


def alive_nodes(cluster: RayCluster) -> Status:
    """Alive nodes and their CPUs, from the state API (the job server's; a fraction of a second
    where ``ray status``, a new Python importing Ray, takes 2-6 s)."""
    if cluster.dashboard_url is None:
        raise ValueError("this cluster has no dashboard: use cluster_status()")
    response = httpx.get(f"{cluster.dashboard_url}/api/v0/nodes", timeout=10)
    response.raise_for_status()
    nodes = [n for n in response.json()["data"]["result"]["result"] if n["state"] == "ALIVE"]
    return Status(len(nodes), sum(float(n["resources_total"].get("CPU", 0)) for n in nodes))


def _wait_for_nodes(cluster: RayCluster, nodes: int, cpus: float, seconds: float) -> None:
    seen: list[Status] = []

    def joined() -> bool:
        seen.append(alive_nodes(cluster))
        return seen[-1] == Status(nodes, cpus)

    try:
        procfs.wait_for(joined, f"{nodes} nodes with {cpus} CPUs", seconds)
    except RuntimeError as error:
        raise RuntimeError(f"{error}; last seen: {seen[-1:]}") from None


@contextmanager
def _cluster(
    temp_dir: Path | None, dashboard: bool, start: Callable[[RayCluster], None], keep: bool
) -> Iterator[RayCluster]:
    """Starts a cluster with ``start``, yields it, stops it. Its temp dir is removed after a
    clean stop if made here (and not ``keep``); kept, with Ray's logs, after a failure."""
    directory, made_here = _temp_dir(temp_dir)
    cluster_id = uuid.uuid4().hex
    cluster = RayCluster(
        address=f"{NODE_IP}:{free_port()}",
        dashboard_url=f"http://{DASHBOARD_HOST}:{free_port()}" if dashboard else None,
        temp_dir=directory,
        env={},
    )
    cluster.env = _environment(cluster_id, directory) | {"RAY_ADDRESS": cluster.address}
    began = time.monotonic()
    try:
        start(cluster)
    except BaseException as error:
        stopped = stop_cluster(cluster)
        if isinstance(error, RuntimeError):
            tails = "\n".join(_tail(log) for log in cluster.logs)
            raise RuntimeError(
                f"{error}\n{tails}\nRay's logs: {directory}/session_latest/logs\n{stopped}"
            ) from None
        raise
    cluster.seconds_to_start = time.monotonic() - began
    try:
        yield cluster
    finally:
        stopped = stop_cluster(cluster)
    if stopped.remaining:
        raise RuntimeError(f"still running after SIGKILL: {stopped.remaining}")
    if made_here and not keep:
        shutil.rmtree(directory, ignore_errors=True)


@contextmanager
def local_cluster(
    num_cpus: int = 2,
    temp_dir: Path | None = None,
    *,
    dashboard: bool = False,
    object_store_bytes: int = OBJECT_STORE_BYTES,
    keep: bool = False,
    seconds: float = START_SECONDS,
) -> Iterator[RayCluster]:
    """A one-node cluster (``ray start --head``) with ``num_cpus`` logical CPUs; yields it once
    it runs (with ``dashboard``, once its job server answers too). On leaving, every process of
    it is stopped, and its temp dir removed (unless ``keep``, or the caller gave it)."""

    def start(cluster: RayCluster) -> None:
        deadline = time.monotonic() + seconds
        _start_head(cluster, num_cpus, object_store_bytes, seconds)
        _wait_for_job_server(cluster, max(deadline - time.monotonic(), 0.0))

    with _cluster(temp_dir, dashboard, start, keep) as cluster:
        yield cluster


@contextmanager
def two_node_cluster(
    temp_dir: Path | None = None,
    *,
    cpus_per_node: int = 1,
    object_store_bytes: int = OBJECT_STORE_BYTES,
    keep: bool = False,
    seconds: float = START_SECONDS,
) -> Iterator[RayCluster]:
    """A head and a second node on this machine (both on 127.0.0.2), ``cpus_per_node`` each,
    with the job server; yields it once the state API shows both nodes and all their CPUs.
    Stopped on leaving as :func:`local_cluster` is."""

    def start(cluster: RayCluster) -> None:
        deadline = time.monotonic() + seconds
        _start_head(cluster, cpus_per_node, object_store_bytes, seconds)
        left = max(deadline - time.monotonic(), 0.0)
        _start_worker(cluster, "node1", cpus_per_node, object_store_bytes, left)
        _wait_for_job_server(cluster, max(deadline - time.monotonic(), 0.0))
        _wait_for_nodes(cluster, 2, 2.0 * cpus_per_node, max(deadline - time.monotonic(), 0.0))

    with _cluster(temp_dir, True, start, keep) as cluster:
        yield cluster


# --- jobs ------------------------------------------------------------------------------------


def submit_job(
    cluster: RayCluster,
    working_dir: Path,
    entrypoint: Sequence[str],
    env: Mapping[str, str] | None = None,
    *,
    seconds: float = JOB_SECONDS,
) -> JobResult:
    """Submits ``entrypoint`` (a command: give ``sys.executable`` for this venv's Python, as
    the cluster's PATH may find another) as a job, with ``working_dir`` uploaded as its
    working directory (files matching its .gitignore left out) and ``env`` set for the driver;
    waits until it ends and returns its status and output. After ``seconds`` the job is
    stopped and TimeoutError raised, with its output so far."""
    if cluster.dashboard_url is None:
        raise ValueError("this cluster has no job server (local_cluster(dashboard=True))")
    # ray job submit joins the command with Windows quoting (subprocess.list2cmdline) for a
    # POSIX shell: only arguments that need no quoting come through unchanged.
    if subprocess.list2cmdline(entrypoint) != shlex.join(entrypoint):
        raise ValueError(f"{entrypoint}: arguments needing quotes (put them in a script)")
    url = cluster.dashboard_url
    submission_id = f"harness-{uuid.uuid4().hex[:12]}"
    runtime_env = {"env_vars": dict(env or {})}
    began = time.monotonic()
    _ray(
        cluster,
        [
            "job",
            "submit",
            "--address",
            url,
            "--submission-id",
            submission_id,
            "--working-dir",
            str(working_dir),
            "--runtime-env-json",
            json.dumps(runtime_env),
            "--no-wait",
            "--",
            *entrypoint,
        ],
        seconds,
    )
    info: dict[str, object] = {}

    def ended() -> bool:
        nonlocal info
        response = httpx.get(f"{url}/api/jobs/{submission_id}", timeout=10)
        response.raise_for_status()
        info = response.json()
        return info.get("status") in TERMINAL_JOB_STATES

    def logs() -> str:
        response = httpx.get(f"{url}/api/jobs/{submission_id}/logs", timeout=30)
        response.raise_for_status()
        return str(response.json().get("logs", ""))

    remaining = seconds - (time.monotonic() - began)
    try:
        procfs.wait_for(ended, f"job {submission_id} ending", max(remaining, 0.0))
    except RuntimeError as error:
        httpx.post(f"{url}/api/jobs/{submission_id}/stop", timeout=10)
        raise TimeoutError(f"{error}; its output so far:\n{logs()}") from None
    code = info.get("driver_exit_code")
    return JobResult(
        submission_id,
        str(info["status"]),
        code if isinstance(code, int) else None,
        logs(),
        time.monotonic() - began,
    )
