"""The ``milvus_server`` fixture, for any test (a pytest plugin that ``tests/conftest.py`` loads):
a real Milvus standalone server per session, started and stopped by ``harness/milvus.py``,
which the benchmark uses too. Where ``make install-milvus`` has not been run the tests using it
skip, except in CI (``CI=true``), where that is a failure.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from harness.milvus import MilvusServer, milvus_server_executable, start_milvus, stop_milvus
from tests.utils.needs import unavailable


def require_milvus_server() -> Path:
    """The ``milvus-server`` executable; skips (fails in CI) where it is not installed."""
    executable = milvus_server_executable()
    if not executable.exists():
        unavailable(f"{executable} not found (run make install-milvus)")
    return executable


@pytest.fixture(scope="session")
def milvus_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MilvusServer]:
    """One Milvus standalone server for the session, on free loopback ports and a fresh data
    directory; stopped at the end, and checked to have left no process behind."""
    require_milvus_server()
    server = start_milvus(tmp_path_factory.mktemp("milvus"))
    yield server
    stopped = stop_milvus(server)
    assert not stopped.remaining, f"still running after SIGKILL: {stopped.remaining}"


@pytest.hookimpl(tryfirst=True)  # before pytest-xdist reads the groups
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """A test that needs a Milvus server is marked ``milvus`` (``-m "not milvus"`` leaves them
    out): it uses this fixture, or its module starts servers of its own (``start_milvus``). With
    workers (``-n``), they all run on one, which starts the session's one server."""
    for item in items:
        module = getattr(item, "module", None)
        if "milvus_server" in getattr(item, "fixturenames", ()) or hasattr(module, "start_milvus"):
            item.add_marker(pytest.mark.milvus)
        if item.get_closest_marker("milvus") is not None:
            item.add_marker(pytest.mark.xdist_group("milvus"))
