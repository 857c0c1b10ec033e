"""A full disk or a read-only index directory: writes get a clear 5xx, reads go on, and
nothing acknowledged is lost. Real file systems (tmpfs, a read-only bind mount), not mocks."""

from __future__ import annotations

import shutil
from pathlib import Path

from fastapi.testclient import TestClient

from app.main import create_app
from app.settings import Settings
from tests.utils.api import WRITE_HEADERS, article, found, wait_until_ready
from tests.utils.fakes import HashingEmbedder
from tests.utils.mounts import fill, read_only_view, small_disk
from tests.utils.seeds import RUSSIA_DOC

NEWS = article("Storm warning", "A storm is expected on the coast tonight.", section="world")
# Larger than the slack in the log file's last allocated page, so it needs new blocks.
LONG = article("Storm report", "The storm reached the coast at dawn. " * 300, section="world")


def serve(settings: Settings, index_dir: Path) -> TestClient:
    settings = settings.model_copy(update={"index_dir": index_dir})
    return TestClient(create_app(settings, HashingEmbedder), headers=WRITE_HEADERS)


def test_a_read_only_index_serves_reads_and_refuses_writes_saying_why(
    live_settings: Settings, seed_index_dir: Path, tmp_path: Path
) -> None:
    with (
        read_only_view(seed_index_dir, tmp_path / "ro") as index_dir,
        serve(live_settings, index_dir) as client,
    ):
        wait_until_ready(client)
        reason = f"the index directory {index_dir} is read-only"
        assert client.get("/info").json()["writes"] == reason
        for response in [
            client.put("/documents/storm.txt", json=NEWS),
            client.delete(f"/documents/{RUSSIA_DOC}"),
        ]:
            assert response.status_code == 503
            assert response.json() == {"detail": f"writes are disabled: {reason}"}
        assert RUSSIA_DOC in found(client, "Russian troops in Caracas")
        assert client.get(f"/documents/{RUSSIA_DOC}").status_code == 200


def test_a_full_disk_refuses_writes_with_507_and_loses_nothing_acknowledged(
    live_settings: Settings, seed_index_dir: Path, tmp_path: Path
) -> None:
    with small_disk(tmp_path / "disk") as disk:
        index_dir = disk / "index"
        shutil.copytree(seed_index_dir, index_dir)
        with serve(live_settings, index_dir) as client:
            wait_until_ready(client)
            assert (
                client.put("/documents/before.txt?refresh=wait_for", json=NEWS).status_code == 201
            )
            filler = fill(disk)
            refused = client.put("/documents/during.txt", json=LONG)
            assert refused.status_code == 507, refused.text
            assert refused.json()["detail"].endswith("the disk is full")
            assert str(index_dir) in refused.json()["detail"]
            # Reads go on, and the refused write left no trace.
            assert "before.txt" in found(client, "storm coast", "keyword")
            assert client.get("/documents/during.txt").status_code == 404
            filler.unlink()
            assert client.put("/documents/after.txt", json=NEWS).status_code == 201
        with serve(live_settings, index_dir) as restarted:
            wait_until_ready(restarted)
            assert restarted.get("/documents/before.txt").status_code == 200
            assert restarted.get("/documents/after.txt").status_code == 200
            assert restarted.get("/documents/during.txt").status_code == 404
            assert restarted.get("/info").json()["seq"] == 2
