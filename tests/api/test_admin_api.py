"""``GET /admin/snapshot``: behind the write key, streams a tar archive that restores."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

import anyio
from fastapi.testclient import TestClient
from starlette.types import Message, Scope

from app.settings import Settings
from indexer.stores.faiss.snapshot import SNAPSHOT_FILE, restore
from indexer.stores.faiss.store import FaissStore
from tests.utils.api import API_KEY, article
from tests.utils.processes import wait_for


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


def _files_under(root: Path) -> int:
    """This process's open descriptors on files under ``root``."""
    count = 0
    for fd in Path("/proc/self/fd").iterdir():
        try:
            target = fd.readlink()
        except OSError:  # closed since listed
            continue
        count += target.is_relative_to(root)
    return count


def test_a_snapshot_the_client_abandons_releases_the_files_it_pinned(
    live_client: TestClient, live_settings: Settings
) -> None:
    """A client that stops reading and disconnects midway (a full socket buffer, then a
    closed connection) must not leave the snapshot's descriptors open: each pins a version
    a merge has to delete."""
    root = live_settings.index_dir.resolve()
    before = _files_under(root)
    pinned: list[int] = []
    scope: Scope = {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.3"},  # what uvicorn declares
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": "/admin/snapshot",
        "raw_path": b"/admin/snapshot",
        "root_path": "",
        "query_string": b"",
        "headers": [(b"authorization", f"Bearer {API_KEY}".encode()), (b"host", b"test")],
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8000),
    }
    sent: list[Message] = []

    async def abandon() -> None:
        first_chunk = anyio.Event()

        async def receive() -> Message:
            await first_chunk.wait()
            return {"type": "http.disconnect"}

        async def send(message: Message) -> None:
            sent.append(message)
            if message["type"] == "http.response.body":
                pinned.append(_files_under(root))
                first_chunk.set()
                await anyio.sleep_forever()  # the client reads no more

        with anyio.fail_after(30):
            await live_client.app(scope, receive, send)

    portal = live_client.portal
    assert portal is not None  # the client is entered: the app runs in its portal
    portal.call(abandon)
    assert sent[0]["status"] == 200
    assert pinned, "no body was sent"
    assert pinned[0] > before  # the measure sees the snapshot's files
    wait_for(lambda: _files_under(root) == before, "the snapshot's files closed", 10)
