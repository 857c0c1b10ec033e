"""The Ray harness itself (harness/ray_cluster.py): a local cluster runs a Ray Data actor pool, two
nodes join and run a submitted job, and stopping a cluster ends every process it started and no
other Ray process on the machine."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np
import pytest

from harness.procfs import alive
from harness.ray_cluster import (
    MARKER,
    RayCluster,
    Status,
    alive_nodes,
    cluster_processes,
    cluster_status,
    submit_job,
    two_node_cluster,
)

pytestmark = pytest.mark.ray

JOB = """
import os
import ray

ray.init()  # RAY_ADDRESS, set by the job server
alive = [node for node in ray.nodes() if node["Alive"]]
rows = ray.data.from_items([{"x": i} for i in range(8)]).map_batches(
    lambda batch: {"x": batch["x"] * 10}
).take_all()
cpus = ray.cluster_resources()["CPU"]
print("NODES", len(alive), "CPU", cpus, "GREETING", os.environ["GREETING"])
print("SUM", sum(row["x"] for row in rows))
"""

# Processes a cluster keeps until it is stopped (its workers come and go).
LONG_LIVED = {"gcs_server", "raylet"}

FAILING_JOB = """
import sys
print("about to fail", flush=True)
sys.exit(3)
"""


def test_a_local_cluster_runs_an_actor_pool(ray_driver: RayCluster) -> None:
    import ray

    class AddOne:
        """A callable class: Ray Data runs it in a pool of actors, each a process of the
        cluster (defined here, it is pickled by value: the workers need not import tests)."""

        def __init__(self) -> None:
            self.pid = os.getpid()

        def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
            return {"x": batch["x"] + 1, "pid": np.full(len(batch["x"]), self.pid)}

    rows = (
        ray.data.from_items([{"x": i} for i in range(20)])
        .map_batches(
            AddOne, batch_size=5, compute=ray.data.ActorPoolStrategy(min_size=1, max_size=2)
        )
        .take_all()
    )

    assert sorted(int(row["x"]) for row in rows) == list(range(1, 21))
    # The actors ran in the cluster's processes, not in this one.
    actors = {int(row["pid"]) for row in rows}
    cluster = {p.pid for p in cluster_processes(ray_driver.env[MARKER])}
    assert actors, rows
    assert actors <= cluster, (actors, cluster)
    assert os.getpid() not in actors


def test_two_nodes_join_run_a_job_and_leave_nothing_behind(
    tmp_path: Path, ray_cluster: RayCluster
) -> None:
    (tmp_path / "job.py").write_text(JOB)
    (tmp_path / "failing.py").write_text(FAILING_JOB)

    # A cluster this test did not start (the session's), to be left alone.
    session = {p for p in cluster_processes(ray_cluster.env[MARKER]) if p.name in LONG_LIVED}
    assert {p.name for p in session} == LONG_LIVED, session

    with two_node_cluster() as cluster:
        assert alive_nodes(cluster) == Status(nodes=2, cpus=2.0)
        assert cluster_status(cluster) == Status(nodes=2, cpus=2.0)  # as `ray status` says it

        done = submit_job(cluster, tmp_path, [sys.executable, "job.py"], {"GREETING": "hello"})
        assert (done.status, done.exit_code) == ("SUCCEEDED", 0), done.logs
        assert "NODES 2 CPU 2.0 GREETING hello" in done.logs
        assert "SUM 280" in done.logs

        failed = submit_job(cluster, tmp_path, [sys.executable, "failing.py"])
        assert (failed.status, failed.exit_code) == ("FAILED", 3), failed.logs
        assert "about to fail" in failed.logs

        started = set(cluster.processes)
        marker = cluster.env[MARKER]

    assert {p.name for p in started} >= LONG_LIVED
    assert [p for p in started if alive(p)] == []
    assert cluster_processes(marker) == set()
    assert [p for p in session if not alive(p)] == []
    assert not cluster.temp_dir.exists()
