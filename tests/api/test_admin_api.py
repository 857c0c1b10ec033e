"""``GET /admin/snapshot``: behind the write key, streams a tar archive that restores."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

from fastapi.testclient import TestClient

from indexer.stores.faiss.snapshot import SNAPSHOT_FILE, restore
from indexer.stores.faiss.store import FaissStore
from tests.utils.api import API_KEY, article


def test_a_snapshot_needs_the_write_key(live_client: TestClient) -> None:
    assert live_client.get("/admin/snapshot", headers={"Authorization": ""}).status_code == 403
    response = live_client.get("/admin/snapshot", headers={"Authorization": "Bearer wrong"})
    assert response.status_code == 403
    bare = TestClient(live_client.app, raise_server_exceptions=False)
    assert bare.get("/admin/snapshot").status_code == 401
    assert bare.get("/admin/snapshot", headers={"X-API-Key": "nope"}).status_code == 403


def test_no_snapshot_without_a_configured_write_key(client: TestClient) -> None:
    response = client.get("/admin/snapshot", headers={"Authorization": f"Bearer {API_KEY}"})
    assert response.status_code == 403


def test_a_snapshot_streams_an_archive_that_restores(
    live_client: TestClient, tmp_path: Path
) -> None:
    for i in range(3):
        body = article(f"Note {i}", f"Snapshot test note number {i} about lighthouses.")
        response = live_client.put(f"/documents/note-{i}", json=body)
        assert response.status_code in (200, 201), response.text
    assert live_client.delete("/documents/note-1").status_code in (200, 204)
    with live_client.stream("GET", "/admin/snapshot") as response:
        assert response.status_code == 200
        assert response.headers["content-type"] == "application/x-tar"
        assert "attachment" in response.headers["content-disposition"]
        seq = int(response.headers["x-snapshot-seq"])
        archive = tmp_path / "s.tar"
        with archive.open("wb") as handle:
            for chunk in response.iter_bytes():
                handle.write(chunk)
    assert seq == 4
    with tarfile.open(fileobj=io.BytesIO(archive.read_bytes())) as tar:
        assert tar.getnames()[0] == "CURRENT"
        assert tar.getnames()[-1] == SNAPSHOT_FILE
    restored = restore(archive, tmp_path / "out")
    assert restored.seq == seq
    store = FaissStore.open(tmp_path / "out", writable=False)
    try:
        assert store.seq == seq
        assert store.get("note-0") is not None
        assert store.get("note-1") is None
        assert store.get("note-2") is not None
        assert store.reader().document_count == 2 + 2  # the seeds and two notes
    finally:
        store.close()
    assert live_client.get("/documents/note-2").status_code == 200  # the service goes on
