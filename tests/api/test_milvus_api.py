"""The service on the Milvus store: the same API, through Milvus Lite and a real Milvus server.

Replicas hold no state of their own: two apps on one Milvus server see each other's writes.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr

from app.main import create_app
from app.settings import Settings
from indexer.build import build_index
from indexer.loading import load_corpus
from indexer.stores.milvus.store import MilvusStore
from tests.utils.api import (
    API_KEY,
    WRITE_HEADERS,
    article,
    finished_reindex,
    found,
    wait_until_ready,
)
from tests.utils.fakes import HashingEmbedder
from tests.utils.paths import SEEDS
from tests.utils.seeds import RUSSIA_DOC, SEED_PARAMS
from tests.utils.tenants import TENANT_A, TENANT_B, write_keys_file

pytestmark = pytest.mark.lite

HARVEST = article(
    "Norwegian apple harvest",
    "Orchards along the Hardanger fjord reported a record apple harvest this autumn.",
    section="business",
    year=2021,
)


def milvus_settings(uri: str, collection: str) -> Settings:
    """Settings for a store of the seeds in ``collection`` at ``uri``, built if missing."""
    settings = Settings(
        store="milvus",
        milvus_uri=uri,
        milvus_collection=collection,
        milvus_index_type="FLAT",
        milvus_index_params="",
        model=HashingEmbedder.model_name,
        api_key=SecretStr(API_KEY),
        refresh_interval=0.2,
        max_body_bytes=65_536,
    )
    if not MilvusStore.exists(settings.milvus_target):
        params = replace(SEED_PARAMS, store="milvus", index_factory="FLAT", search_params="")
        build_index(
            load_corpus(SEEDS),
            settings.milvus_target,
            HashingEmbedder(),
            params,
            source_label="seeds",
        )
    return settings


def app_client(settings: Settings) -> TestClient:
    app = create_app(settings, HashingEmbedder)
    return TestClient(app, raise_server_exceptions=False, headers=WRITE_HEADERS)


@pytest.fixture
def lite_client(tmp_path: Path) -> Iterator[TestClient]:
    with app_client(milvus_settings(str(tmp_path / "milvus.db"), "seeds")) as client:
        wait_until_ready(client)
        yield client


@pytest.fixture
def server_settings(milvus_server: object) -> Iterator[Settings]:
    collection = f"api_{uuid.uuid4().hex[:12]}"
    settings = milvus_settings(milvus_server.uri, collection)  # type: ignore[attr-defined]
    yield settings
    MilvusStore.drop(settings.milvus_target)


def test_a_written_document_is_found_filtered_replaced_and_deleted_in_every_mode(
    lite_client: TestClient,
) -> None:
    client = lite_client
    assert RUSSIA_DOC in found(client, "Russian military presence")
    put = client.put("/documents/apples.txt", params={"refresh": "wait_for"}, json=HARVEST)
    assert put.status_code == 201, put.text
    for mode in ("semantic", "keyword", "hybrid"):
        assert found(client, "apple harvest fjord", mode)[0] == "apples.txt", mode
    only = {"filter": '{"section": "business", "year": {"gte": 2020}}'}
    assert found(client, "apple harvest", "hybrid", **only) == ["apples.txt"]
    assert found(client, "Russian military", "semantic", **only) == ["apples.txt"]
    listed = client.get("/documents", params={"limit": 100}).json()
    assert listed["documents"][-1]["doc_id"] == "apples.txt"
    stored = client.get("/documents/apples.txt").json()
    assert stored["text"] == HARVEST["text"]
    assert stored["metadata"] == HARVEST["metadata"]

    replaced = client.put(
        "/documents/apples.txt",
        params={"refresh": "wait_for"},
        json=article("Pears", "A poor pear crop in the valley.", section="business", year=2022),
    )
    assert replaced.status_code == 200, replaced.text
    assert "apples.txt" not in found(client, "Hardanger fjord apple", "keyword")
    assert found(client, "pear crop", "keyword")[0] == "apples.txt"

    assert client.delete("/documents/apples.txt").status_code == 204
    for mode in ("semantic", "keyword", "hybrid"):
        assert "apples.txt" not in found(client, "pear crop valley", mode), mode
    assert client.get("/documents/apples.txt").status_code == 404
    assert client.delete("/documents/apples.txt").status_code == 404


def test_listing_and_deleting_by_filter_work_on_milvus_too(lite_client: TestClient) -> None:
    client = lite_client
    news = [
        {"doc_id": f"n{i}.txt", **article(f"News {i}", f"Harbour report {i}.", desk=desk, year=y)}
        for i, (desk, y) in enumerate([("port", 2018), ("city", 2019), ("port", 2021)])
    ]
    assert client.post("/documents?refresh=wait_for", json={"documents": news}).status_code == 200
    ports = client.get("/documents", params={"filter": '{"desk": "port"}'}).json()
    assert (ports["total"], [d["doc_id"] for d in ports["documents"]]) == (2, ["n0.txt", "n2.txt"])
    gone = client.delete("/documents", params={"filter": '{"year": {"lt": 2020}}'})
    assert gone.status_code == 200, gone.text
    assert gone.json()["deleted"] == 2
    for mode in ("semantic", "keyword", "hybrid"):
        assert [d for d in found(client, "harbour report", mode) if d.startswith("n")] == [
            "n2.txt"
        ], mode
    assert client.get("/documents/n0.txt").status_code == 404
    left = client.get("/documents", params={"filter": '{"desk": ["port", "city"]}'}).json()
    assert [d["doc_id"] for d in left["documents"]] == ["n2.txt"]


def test_an_unreachable_milvus_is_a_503_not_a_500(lite_client: TestClient) -> None:
    service = lite_client.app.state.service  # type: ignore[attr-defined]
    service.store._client.close()  # as if Milvus went away
    response = lite_client.get("/search", params={"q": "Russian military", "mode": "semantic"})
    assert response.status_code == 503, response.text
    assert "unavailable" in response.json()["detail"]
    assert response.headers["Retry-After"] == "2"


@pytest.mark.milvus
def test_on_a_milvus_without_full_text_search_keyword_modes_are_a_400_naming_the_version(
    server_settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="app"), app_client(server_settings) as client:
        wait_until_ready(client)
        assert RUSSIA_DOC in found(client, "Russian military presence", "semantic")
        for mode in ("keyword", "hybrid"):
            response = client.get("/search", params={"q": "Russian military", "mode": mode})
            assert response.status_code == 400, response.text
            assert "need Milvus 2.5 or later" in response.json()["detail"]
            assert "v2.3" in response.json()["detail"]
    said = [r.getMessage() for r in caplog.records if "semantic search only" in r.getMessage()]
    assert len(said) == 1


@pytest.mark.milvus
def test_two_replicas_on_one_milvus_see_each_others_writes(server_settings: Settings) -> None:
    with app_client(server_settings) as a, app_client(server_settings) as b:
        wait_until_ready(a)
        wait_until_ready(b)
        put = a.put("/documents/apples.txt", params={"refresh": "wait_for"}, json=HARVEST)
        assert put.status_code == 201, put.text
        deadline = time.monotonic() + 5
        while "apples.txt" not in found(b, "apple harvest fjord", "semantic"):
            assert time.monotonic() < deadline, "replica B never saw A's write"
            time.sleep(0.1)
        assert b.get("/documents/apples.txt").json()["title"] == HARVEST["title"]
        assert b.delete("/documents/apples.txt").status_code == 204
        deadline = time.monotonic() + 5
        while "apples.txt" in found(a, "apple harvest fjord", "semantic"):
            assert time.monotonic() < deadline, "replica A kept showing B's delete"
            time.sleep(0.1)
        assert a.get("/documents/apples.txt").status_code == 404


def test_a_reindex_rechunks_the_milvus_index_while_it_serves(lite_client: TestClient) -> None:
    before = lite_client.get("/info").json()
    response = lite_client.post("/admin/reindex", json={"chunk_size": 16, "chunk_overlap": 0.1})
    assert response.status_code == 202, response.text
    written = lite_client.put(
        "/documents/during?refresh=wait_for", json=article("During", "Lighthouse keepers. " * 40)
    )
    assert written.status_code == 201, written.text
    status = finished_reindex(lite_client, 60)
    assert status["state"] == "done", status
    info = lite_client.get("/info").json()
    assert info["build_id"] == status["to_build"] != before["build_id"]
    assert info["chunking"]["max_tokens"] == 16
    assert info["documents"] == before["documents"] + 1
    assert info["passages"] > before["passages"]
    search = lite_client.get("/search", params={"q": "lighthouse keepers"}).json()
    assert search["index_build"] == info["build_id"]
    assert search["results"][0]["doc_id"] == "during"
    for mode in ("semantic", "keyword", "hybrid"):
        russia = lite_client.get("/search", params={"q": "Russian military", "mode": mode})
        assert russia.status_code == 200, russia.text
        assert RUSSIA_DOC in {r["doc_id"] for r in russia.json()["results"]}, mode


def test_a_reindex_through_one_replica_moves_the_other_to_the_new_model(
    server_settings: Settings,
) -> None:
    with app_client(server_settings) as a, app_client(server_settings) as b:
        wait_until_ready(a)
        wait_until_ready(b)
        before = b.get("/info").json()
        response = a.post("/admin/reindex", json={"model": "test/other-64", "chunk_size": 16})
        assert response.status_code == 202, response.text
        status = finished_reindex(a, 60)
        assert status["state"] == "done", status
        deadline = time.monotonic() + 15
        while b.get("/info").json()["build_id"] != status["to_build"]:
            assert time.monotonic() < deadline, "replica B did not follow the switch"
            time.sleep(0.1)
        info = b.get("/info").json()
        assert info["model"] == "test/other-64"
        assert info["chunking"]["max_tokens"] == 16
        assert info["documents"] == before["documents"]
        search = b.get("/search", params={"q": "Russian military", "mode": "semantic"}).json()
        assert search["index_build"] == status["to_build"]
        assert RUSSIA_DOC in {r["doc_id"] for r in search["results"]}
        # B writes the new way (its preparer followed too), and A finds it.
        text = "Harbour pilots guide tankers through the narrows. " * 8
        put = b.put("/documents/pilots?refresh=wait_for", json=article("Pilots", text))
        assert put.status_code == 201, put.text
        assert put.json()["passages"] > 1  # 16-token passages
        deadline = time.monotonic() + 10
        while "pilots" not in found(a, "harbour pilots tankers", "semantic"):
            assert time.monotonic() < deadline, "A did not find B's write"
            time.sleep(0.1)


def test_a_snapshot_of_a_milvus_store_is_a_501_naming_what_to_use(lite_client: TestClient) -> None:
    response = lite_client.get("/admin/snapshot")
    assert response.status_code == 501, response.text
    assert "milvus-backup" in response.json()["detail"]
    assert "--from-collection" in response.json()["detail"]


def test_tenant_keys_confine_each_tenant_on_milvus_too(tmp_path: Path) -> None:
    settings = milvus_settings(str(tmp_path / "milvus.db"), "seeds")
    settings = settings.model_copy(update={"api_keys_file": write_keys_file(tmp_path / "k.json")})
    with TestClient(create_app(settings, HashingEmbedder), raise_server_exceptions=False) as client:
        wait_until_ready(client)
        for key, tenant in ((TENANT_A, "a"), (TENANT_B, "b")):
            body = {"documents": [{"doc_id": f"{tenant}.txt", **HARVEST}]}
            written = client.post("/documents?refresh=wait_for", json=body, headers=key.headers)
            assert written.status_code == 200, written.text
        for key, own in ((TENANT_A, "a.txt"), (TENANT_B, "b.txt")):
            assert found(client, "apple harvest", headers=key.headers) == [own]
            listing = client.get("/documents", headers=key.headers).json()
            assert [d["doc_id"] for d in listing["documents"]] == [own]
            assert listing["documents"][0]["metadata"]["tenant"] == own[0]
        assert client.get("/documents/a.txt", headers=TENANT_B.headers).status_code == 404
        takeover = client.put("/documents/a.txt", json=HARVEST, headers=TENANT_B.headers)
        assert takeover.status_code == 409
        assert client.delete("/documents/a.txt", headers=TENANT_B.headers).status_code == 404
        stored = client.get("/documents/a.txt", headers=TENANT_A.headers).json()
        assert stored["metadata"]["tenant"] == "a"  # still tenant a's, unchanged
