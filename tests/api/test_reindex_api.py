"""``POST /admin/reindex`` and ``GET /admin/reindex``: behind the write key, validated, one at
a time; the service keeps answering, then serves the new settings or model, and writes made
after the switch are prepared with them."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient

from app.main import create_app
from app.service import SearchService
from app.settings import Settings
from indexer.ingest import Preparer, passage_representation
from indexer.stores.faiss import store as faiss_store
from indexer.stores.faiss.state import VersionError
from indexer.stores.faiss.store import FaissStore
from tests.utils.api import WRITE_HEADERS, article, finished_reindex, wait_until_ready
from tests.utils.fakes import HashingEmbedder

SLOW_MODEL = "test/slow-64"


class SlowEmbedder(HashingEmbedder):
    """Another "model" (its vectors differ), slow enough that a reindex is seen running."""

    gate = threading.Event()

    def encode(self, texts: list[str], *, batch_size: int = 64, progress: bool = False):  # type: ignore[no-untyped-def]
        if not texts[0].startswith("warm up"):
            self.gate.wait(10)
        return np.roll(super().encode(texts), 3, axis=1)


def factory(name: str) -> HashingEmbedder:
    return SlowEmbedder(name) if name == SLOW_MODEL else HashingEmbedder(name)


@pytest.fixture
def admin(live_settings: Settings) -> Iterator[TestClient]:
    SlowEmbedder.gate = threading.Event()
    app = create_app(live_settings, factory)
    with TestClient(app, raise_server_exceptions=False, headers=WRITE_HEADERS) as client:
        wait_until_ready(client)
        yield client
    SlowEmbedder.gate.set()


def service_of(client: TestClient) -> SearchService:
    service: SearchService = client.app.state.service  # type: ignore[attr-defined]
    return service


def assert_prepared_as_served(client: TestClient, doc_id: str, embedder: HashingEmbedder) -> None:
    """The document's passages and vectors are what the served settings and model make."""
    store = service_of(client).store
    assert isinstance(store, FaissStore)
    store.refresh()
    view, manifest = store.reader(), store.manifest
    stored = store.get(doc_id)
    assert stored is not None
    expected = Preparer(embedder, manifest.chunking, manifest.title_prefix).prepare(
        [stored.document]
    )[0]
    assert [(p.start, p.end) for p in stored.passages] == [
        (p.start, p.end) for p in expected.passages
    ]
    numbers = [
        n for n in view.live_numbers()[0].tolist() if view.documents_by_number[n].doc_id == doc_id
    ]
    first, count = (int(x) for x in view.document_rows[numbers[0]])
    got = view.vectors.vectors(np.arange(first, first + count, dtype=np.int64))
    texts = [passage_representation(p, stored.document.title, True) for p in stored.passages]
    np.testing.assert_allclose(got, embedder.encode(texts), atol=1e-5)


def test_reindexing_needs_the_write_key(live_client: TestClient) -> None:
    bare = TestClient(live_client.app, raise_server_exceptions=False)
    assert bare.post("/admin/reindex", json={}).status_code == 401
    assert bare.get("/admin/reindex").status_code == 401
    assert bare.get("/admin/reindex", headers={"X-API-Key": "nope"}).status_code == 403
    assert bare.post("/admin/reindex", json={}, headers={"X-API-Key": "no"}).status_code == 403


def test_the_status_is_idle_before_any_reindex(live_client: TestClient) -> None:
    body = live_client.get("/admin/reindex").json()
    assert body["state"] == "idle"
    assert body["error"] is None


@pytest.mark.parametrize(
    "body",
    [
        {"chunk_size": 4},
        {"chunk_overlap": 0.5},
        {"bm25_b": 2},
        {"chunk_size": 64, "unknown": 1},
        {"backend": "tensorflow"},
        {"model": ""},
    ],
)
def test_invalid_settings_are_a_422(live_client: TestClient, body: dict[str, object]) -> None:
    response = live_client.post("/admin/reindex", json=body)
    assert response.status_code == 422, response.text
    assert live_client.get("/admin/reindex").json()["state"] == "idle"


def test_a_model_not_installed_is_a_422_naming_it(live_settings: Settings) -> None:
    service = SearchService(live_settings)  # the configured loader: installed models only
    problem = service.reindexer.problem("nobody/never-downloaded", None)
    assert problem is not None
    assert "'nobody/never-downloaded' is not installed here" in problem


def test_a_reindex_rechunks_the_served_index(live_client: TestClient) -> None:
    before = live_client.get("/info").json()
    response = live_client.post("/admin/reindex", json={"chunk_size": 16, "chunk_overlap": 0.1})
    assert response.status_code == 202, response.text
    assert response.json()["state"] == "running"
    written = live_client.put(
        "/documents/during?refresh=wait_for", json=article("During", "Lighthouse keepers. " * 40)
    )
    assert written.status_code == 201, written.text
    status = finished_reindex(live_client)
    assert status["state"] == "done", status
    assert status["from_build"] == before["build_id"]
    info = live_client.get("/info").json()
    assert info["build_id"] == status["to_build"] != before["build_id"]
    assert info["chunking"]["max_tokens"] == 16
    assert info["passages"] > before["passages"]
    # The finished status counts the new version's documents, whatever the last phase was; on
    # this tiny corpus the switch can come before the PUT lands, so count what it covered.
    covered = info["documents"] - (0 if written.json()["seq"] <= status["seq"] else 1)
    assert status["done"] == status["total"] == covered
    search = live_client.get("/search", params={"q": "lighthouse keepers"}).json()
    assert search["index_build"] == info["build_id"]
    assert search["results"][0]["doc_id"] == "during"
    assert_prepared_as_served(live_client, "during", HashingEmbedder())
    after = live_client.put("/documents/after", json=article("After", "Foghorns. " * 40))
    assert after.status_code == 201
    assert_prepared_as_served(live_client, "after", HashingEmbedder())


def test_one_reindex_at_a_time_and_writes_after_the_switch_use_the_new_model(
    admin: TestClient,
) -> None:
    response = admin.post("/admin/reindex", json={"model": SLOW_MODEL, "chunk_size": 32})
    assert response.status_code == 202, response.text
    again = admin.post("/admin/reindex", json={})
    assert again.status_code == 409
    assert "already running" in again.json()["detail"]
    running = admin.get("/admin/reindex").json()
    assert running["state"] == "running"
    # The old index serves meanwhile, and takes writes (embedded by the old model for now).
    search = admin.get("/search", params={"q": "Russia", "mode": "semantic"})
    assert search.status_code == 200
    assert search.json()["results"]
    written = admin.put(
        "/documents/meanwhile?refresh=wait_for", json=article("Meanwhile", "Tidal charts. " * 30)
    )
    assert written.status_code == 201
    SlowEmbedder.gate.set()
    status = finished_reindex(admin)
    assert status["state"] == "done", status
    info = admin.get("/info").json()
    assert info["model"] == SLOW_MODEL
    assert info["chunking"]["max_tokens"] == 32
    found = admin.get("/search", params={"q": "tidal charts", "mode": "semantic"}).json()
    assert found["results"][0]["doc_id"] == "meanwhile"
    assert found["index_build"] == status["to_build"]
    assert_prepared_as_served(admin, "meanwhile", SlowEmbedder(SLOW_MODEL))
    assert admin.put("/documents/later", json=article("Later", "Buoys. " * 30)).status_code == 201
    assert_prepared_as_served(admin, "later", SlowEmbedder(SLOW_MODEL))


def test_a_version_that_does_not_verify_is_refused_and_the_old_one_serves_on(
    live_client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    def damaged(directory: object, model: object = None) -> None:
        raise VersionError("v000002 is damaged: vectors.faiss does not match its checksum")

    monkeypatch.setattr(faiss_store, "verify_version", damaged)
    before = live_client.get("/info").json()
    assert live_client.post("/admin/reindex", json={"chunk_size": 16}).status_code == 202
    status = finished_reindex(live_client)
    assert status["state"] == "failed"
    assert "does not match its checksum" in status["error"]
    info = live_client.get("/info").json()
    assert info["build_id"] == before["build_id"]
    assert info["chunking"] == before["chunking"]
    assert live_client.get("/search", params={"q": "Russia"}).json()["results"]
    written = live_client.put("/documents/still", json=article("Still", "Writes go on."))
    assert written.status_code == 201


def test_a_reindex_embeds_only_what_the_embedding_cache_has_no_vector_for(
    live_settings: Settings, tmp_path: Path
) -> None:
    settings = live_settings.model_copy(update={"embedding_cache": tmp_path / "cache.sqlite"})
    made: list[HashingEmbedder] = []

    def counting(name: str) -> HashingEmbedder:
        made.append(HashingEmbedder(name))
        return made[-1]

    def embedded() -> int:
        return sum(len(b) for e in made for b in e.encoded if not b[0].startswith("warm up"))

    with TestClient(create_app(settings, counting), headers=WRITE_HEADERS) as client:
        wait_until_ready(client)
        passages = client.get("/info").json()["passages"]
        before = embedded()
        assert client.post("/admin/reindex", json={"bm25_k1": 1.0}).status_code == 202
        assert finished_reindex(client)["state"] == "done"
        assert embedded() - before == passages  # the first fills the cache
        assert client.post("/admin/reindex", json={"bm25_k1": 0.8}).status_code == 202
        assert finished_reindex(client)["state"] == "done"
        assert embedded() - before == passages  # BM25 alone: nothing to embed
        hits = client.get("/search", params={"q": "Russian military presence"}).json()
        assert hits["results"], hits
