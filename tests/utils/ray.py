"""The Ray fixtures, for any test (a pytest plugin that ``tests/conftest.py`` loads): one local
Ray cluster per session (``ray_cluster``), started and stopped by ``harness/ray_cluster.py``, and
this process connected to it as a driver (``ray_driver``). Without the ray extra (``make
install-ray``) the tests using them skip, except in CI (``CI=true``), where that is a failure.

Starting a cluster costs 10-30 s here and each Ray Data actor pool 25-35 s more: the tests that
need Ray share one cluster, on one pytest-xdist worker (``xdist_group("ray")``, as the Milvus
tests share their server).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from harness.ray_cluster import RayCluster, local_cluster, ray_executable
from tests.utils.needs import unavailable

# Enough for an actor pool of two and a task beside it (a pool holding every CPU starves the
# tasks upstream of it: ray-project/ray#44687).
SESSION_CPUS = 3


def require_ray() -> None:
    """Skips (fails in CI) where the ray extra is not installed."""
    if not ray_executable().exists():
        unavailable(f"{ray_executable()} not found (run make install-ray)")


@pytest.fixture(scope="session")
def ray_cluster() -> Iterator[RayCluster]:
    """A one-node Ray cluster for the session, on loopback and free ports, with a temp dir and
    HOME of its own; stopped by process id at the end (the harness fails if any survives).
    Its ``.address`` is the GCS's and ``.driver_env`` what a driver process needs in its
    environment (``subprocess.run(..., env={**os.environ, **ray_cluster.driver_env})``)."""
    require_ray()
    with local_cluster(num_cpus=SESSION_CPUS) as cluster:
        yield cluster


@pytest.fixture(scope="session")
def ray_driver(ray_cluster: RayCluster) -> Iterator[RayCluster]:
    """This process connected to the session's cluster (``ray.init(address=...)``) until the
    session ends: ``ray.data`` and ``ray.remote`` calls in a test run there."""
    import ray

    with pytest.MonkeyPatch.context() as patch:
        # Not the cluster's marker: processes this one starts later are not the cluster's.
        for name, value in ray_cluster.driver_env.items():
            patch.setenv(name, value)
        ray.init(address=ray_cluster.address, logging_level="WARNING", log_to_driver=False)
        try:
            yield ray_cluster
        finally:
            ray.shutdown()


@pytest.hookimpl(tryfirst=True)  # before pytest-xdist reads the groups
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """A test that needs Ray is marked ``ray`` (``-m "not ray"`` leaves them out): it uses these
    fixtures, or its module starts clusters of its own (``local_cluster``, ``two_node_cluster``).
    With workers (``-n``) they all run on one, which starts the session's one cluster."""
    fixtures = {"ray_cluster", "ray_driver"}
    for item in items:
        module = getattr(item, "module", None)
        uses = fixtures & set(getattr(item, "fixturenames", ()))
        if uses or hasattr(module, "local_cluster") or hasattr(module, "two_node_cluster"):
            item.add_marker(pytest.mark.ray)
        if item.get_closest_marker("ray") is not None:
            item.add_marker(pytest.mark.xdist_group("ray"))
