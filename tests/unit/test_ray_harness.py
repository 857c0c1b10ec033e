"""What harness/ray_cluster.py refuses before starting anything (no Ray needed): its clusters'
own tests are tests/e2e/test_ray_cluster.py."""

from __future__ import annotations

from pathlib import Path

import pytest

import harness.ray_cluster as ray_harness


def test_a_temp_dir_too_long_for_rays_sockets_is_refused(tmp_path: Path) -> None:
    """Ray's unix sockets live under it; pytest's tmp_path is already too long."""
    with (
        pytest.raises(ValueError, match="107 bytes"),
        ray_harness.local_cluster(temp_dir=tmp_path / ("x" * 40)),
    ):
        pass
    assert not (tmp_path / ("x" * 40)).exists()


def test_a_command_ray_would_quote_wrongly_is_refused() -> None:
    """ray job submit quotes the command for Windows; a shell on the cluster would split it."""
    cluster = ray_harness.RayCluster("127.0.0.2:1", "http://127.0.0.1:1", Path("/tmp"), {})
    with pytest.raises(ValueError, match="quotes"):
        ray_harness.submit_job(cluster, Path("."), ["python", "-c", "print('a b')"])
