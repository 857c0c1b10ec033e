"""What a Ray cluster costs here before any work: ``python -m bench.ray_cluster`` (the ray extra).

Times a local ``ray.init()`` (in a fresh Python, as a build would pay it), a one-node cluster and
a two-node one (harness/ray_cluster.py: start until usable, and stop), the memory (PSS) of the
idle two-node cluster, and a job submitted to it: a command without Ray, and one that connects
and runs a tiny Ray Data pipeline. JSON on stdout; each figure once (run it again on a quiet
machine before quoting one: on 2 cores, other work moves them by tens of seconds).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from harness.ray_cluster import (
    MARKER,
    RayCluster,
    cluster_processes,
    local_cluster,
    submit_job,
    two_node_cluster,
)

LOCAL_INIT = """
import time
began = time.monotonic()
import ray
imported = time.monotonic()
ray.init(num_cpus=2, include_dashboard=False, _temp_dir=TEMP, logging_level="ERROR")
ready = time.monotonic()
ray.shutdown()
print(round(imported - began, 2), round(ready - imported, 2), round(time.monotonic() - ready, 2))
"""

TINY_JOB = """
import ray
ray.init()
print(ray.data.range(8).map_batches(lambda b: {"id": b["id"] * 2}).sum("id"))
"""


def pss_mib(cluster: RayCluster) -> float:
    """The cluster's processes' proportional set size (shared pages split between them)."""
    total = 0
    for process in cluster_processes(cluster.env[MARKER]):
        try:
            rollup = Path(f"/proc/{process.pid}/smaps_rollup").read_text()
        except OSError:
            continue
        total += sum(
            int(line.split()[1]) for line in rollup.splitlines() if line.startswith("Pss:")
        )
    return round(total / 1024, 1)


def local_init() -> dict[str, float]:
    with tempfile.TemporaryDirectory(prefix="ray-harness-", dir="/tmp") as temp:
        code = LOCAL_INIT.replace("TEMP", repr(temp))
        env = {**os.environ, "RAY_AUTH_MODE": "disabled", "HOME": temp}
        began = time.monotonic()
        out = subprocess.run(
            [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300
        )
        wall = time.monotonic() - began
    if out.returncode != 0:
        raise RuntimeError(out.stderr)
    imported, init, shutdown = (float(x) for x in out.stdout.split()[-3:])
    return {"import_s": imported, "init_s": init, "shutdown_s": shutdown, "wall_s": round(wall, 2)}


def one_node() -> dict[str, float]:
    began = time.monotonic()
    with local_cluster(num_cpus=2) as cluster:
        started = cluster.seconds_to_start
        leaving = time.monotonic()
    return {
        "start_s": round(started, 2),
        "stop_s": round(time.monotonic() - leaving, 2),
        "wall_s": round(time.monotonic() - began, 2),
    }


def main() -> None:
    results: dict[str, object] = {"load_average_before": os.getloadavg()}
    # Each figure on its own: a start that fails on a loaded machine (the raylet's 15 s for its
    # agent) loses that figure only.
    measures: tuple[tuple[str, Callable[[], object]], ...] = (
        ("local_ray_init", local_init),
        ("local_cluster", one_node),
        ("two_node_cluster", two_nodes),
    )
    for name, measure in measures:
        try:
            results[name] = measure()
        except RuntimeError as error:
            results[name] = {"error": str(error).splitlines()[0]}
    results["load_average"] = os.getloadavg()
    json.dump(results, sys.stdout, indent=2)
    print()


def two_nodes() -> dict[str, object]:
    with tempfile.TemporaryDirectory() as jobs:
        Path(jobs, "hello.py").write_text("print('hello')\n")
        Path(jobs, "tiny.py").write_text(TINY_JOB)
        with two_node_cluster() as cluster:
            started = cluster.seconds_to_start
            idle = pss_mib(cluster)
            hello = submit_job(cluster, Path(jobs), [sys.executable, "hello.py"])
            tiny = submit_job(cluster, Path(jobs), [sys.executable, "tiny.py"])
            after = pss_mib(cluster)
            leaving = time.monotonic()
        return {
            "start_s": round(started, 2),
            "stop_s": round(time.monotonic() - leaving, 2),
            "idle_pss_mib": idle,
            "pss_after_jobs_mib": after,
            "job_without_ray_s": round(hello.seconds, 2),
            "job_with_tiny_pipeline_s": round(tiny.seconds, 2),
            "jobs": [hello.status, tiny.status],
        }


if __name__ == "__main__":
    main()
