"""The keys file in a real ``python -m app``: SIGHUP reads it again without a restart, and a bad
one stops the start with one line."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import httpx
import pytest

from harness.service import copy_index, free_port, server
from tests.utils.processes import startup_refusal, wait_for
from tests.utils.tenants import TENANT_A, TENANT_B, write_keys_file

pytestmark = pytest.mark.e2e


def test_sighup_reads_the_keys_file_again_and_the_service_goes_on(
    real_index_dir: Path, onnx_dir: Path, tmp_path: Path
) -> None:
    keys = write_keys_file(tmp_path / "keys.json", (TENANT_A,))
    log, port = tmp_path / "service.log", free_port()
    env = {"SEARCH_ONNX_DIR": str(onnx_dir), "SEARCH_API_KEYS_FILE": str(keys)}
    with server(copy_index(real_index_dir, tmp_path / "index"), port, env, log) as (process, _):
        url = f"http://127.0.0.1:{port}/documents"
        assert httpx.get(url, headers=TENANT_B.headers).status_code == 403
        write_keys_file(keys, (TENANT_A, TENANT_B))
        os.kill(process.pid, signal.SIGHUP)
        # Before any request (which would notice the change itself): the signal reloaded it.
        wait_for(lambda: "loaded 2 API keys from" in log.read_text(), "the reload on SIGHUP", 10)
        assert process.poll() is None  # SIGHUP no longer ends the process
        assert httpx.get(url, headers=TENANT_B.headers).json()["total"] == 0
    assert process.returncode in (0, -signal.SIGTERM)


def test_a_bad_keys_file_stops_the_start_with_one_line(tmp_path: Path) -> None:
    keys = tmp_path / "keys.json"
    keys.write_text('{"keys": [{"name": "x", "sha256": "00", "role": "owner"}]}')
    line = startup_refusal(SEARCH_API_KEYS_FILE=str(keys), SEARCH_INDEX_DIR=str(tmp_path))
    assert line.startswith(f"error: Cannot use SEARCH_API_KEYS_FILE: {keys} is not a valid keys")
    assert "keys.0.sha256: String should match pattern" in line
