"""``python -m indexer snapshot`` against the index of a running ``python -m app`` (which holds
LOCK and takes writes meanwhile), restored, and served again."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

import httpx

from tests.utils.processes import indexer_cli, running_service

KEY = "e2e-write-key"
HEADERS = {"X-API-Key": KEY}


def note(i: int) -> dict[str, object]:
    return {"title": f"Lighthouse note {i}", "text": f"Keeper's log entry {i}: fog, then clear."}


indexer = indexer_cli


def test_the_cli_snapshots_a_served_index_that_restores_and_serves(
    real_index_dir: Path, onnx_dir: Path, tmp_path: Path
) -> None:
    log = tmp_path / "service.log"
    with running_service(real_index_dir, onnx_dir, log, SEARCH_API_KEY=KEY) as base:
        served = tmp_path / f"index-{urlsplit(base).port}"  # running_service's own copy
        for i in range(3):
            response = httpx.put(
                f"{base}/documents/note-{i}?refresh=wait_for", json=note(i), headers=HEADERS
            )
            assert response.status_code == 201, response.text
        assert httpx.delete(f"{base}/documents/note-1", headers=HEADERS).status_code == 204
        seq = httpx.get(f"{base}/info").json()["seq"]
        snapshot = indexer("snapshot", "--index", str(served), "--out", str(tmp_path / "s.tar"))
        assert snapshot.returncode == 0, snapshot.stderr
        assert f"up to write {seq})" in snapshot.stdout
        # The service goes on writing after the snapshot, which does not hold it.
        response = httpx.put(
            f"{base}/documents/note-9?refresh=wait_for", json=note(9), headers=HEADERS
        )
        assert response.status_code == 201, response.text
        documents = httpx.get(f"{base}/info").json()["documents"]
    restored = indexer(
        "restore", "--archive", str(tmp_path / "s.tar"), "--out", str(tmp_path / "r")
    )
    assert restored.returncode == 0, restored.stderr
    assert restored.stdout.endswith(f"{documents - 1} documents, up to write {seq}\n")
    with running_service(tmp_path / "r", onnx_dir, tmp_path / "restored.log") as again:
        assert httpx.get(f"{again}/documents/note-0").status_code == 200
        assert httpx.get(f"{again}/documents/note-1").status_code == 404
        assert httpx.get(f"{again}/documents/note-9").status_code == 404
        assert httpx.get(f"{again}/info").json()["seq"] == seq
