"""Writing documents over HTTP: every status code, visibility, and offline equivalence."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from app.main import create_app
from app.settings import Settings
from indexer.build import build_index
from indexer.loading import load_corpus
from tests.utils.api import WRITE_HEADERS, article, found, wait_until_ready
from tests.utils.fakes import HashingEmbedder
from tests.utils.paths import SEEDS
from tests.utils.seeds import OPPOSITION_DOC, RUSSIA_DOC, SEED_PARAMS, write_articles

MODES = ("semantic", "keyword", "hybrid")
HARVEST = article(
    "Norwegian apple harvest",
    "Orchards along the Hardanger fjord reported a record apple harvest this autumn.",
    section="business",
    year=2021,
    published="2021-10-04",
)


def test_put_creates_then_replaces_with_the_sequence_number(live_client: TestClient) -> None:
    created = live_client.put("/documents/apples.txt", json=HARVEST)
    assert created.status_code == 201, created.text
    assert created.json() == {
        "doc_id": "apples.txt",
        "result": "created",
        "passages": 1,
        "seq": 1,
    }
    replaced = live_client.put("/documents/apples.txt", json=HARVEST)
    assert replaced.status_code == 200
    assert replaced.json()["result"] == "replaced"
    assert replaced.json()["seq"] == 2


def test_a_written_document_can_be_read_back_at_once(live_client: TestClient) -> None:
    live_client.put("/documents/news/2021/apples.txt", json=HARVEST)  # ids may hold slashes
    body = live_client.get("/documents/news/2021/apples.txt").json()
    assert body["title"] == HARVEST["title"]
    assert body["text"] == HARVEST["text"]
    assert body["metadata"] == HARVEST["metadata"]
    assert body["passages"] == [{"chunk_id": 0, "start": 0, "end": len(HARVEST["text"])}]


def test_wait_for_returns_once_the_write_is_searchable(live_client: TestClient) -> None:
    response = live_client.put("/documents/apples.txt?refresh=wait_for", json=HARVEST)
    assert response.status_code == 201
    for mode in MODES:
        assert found(live_client, "apple harvest Hardanger", mode)[0] == "apples.txt", mode
    summary = live_client.get("/documents", params={"limit": 1000}).json()
    assert summary["total"] == 3
    assert summary["documents"][-1]["metadata"] == HARVEST["metadata"]


def test_without_wait_a_write_becomes_searchable_within_the_refresh_interval(
    live_settings: Settings,
) -> None:
    settings = live_settings.model_copy(update={"refresh_interval": 1.0})  # the default
    with TestClient(create_app(settings, HashingEmbedder), headers=WRITE_HEADERS) as client:
        wait_until_ready(client)
        client.put("/documents/apples.txt", json=HARVEST)
        acknowledged = time.monotonic()
        assert "apples.txt" not in found(client, "apple harvest Hardanger", "keyword")
        while "apples.txt" not in found(client, "apple harvest Hardanger", "keyword"):
            assert time.monotonic() - acknowledged < 1.5, "not searchable within 1 s"
            time.sleep(0.02)


def test_a_replaced_document_is_found_only_by_its_new_text(live_client: TestClient) -> None:
    live_client.put("/documents/apples.txt?refresh=wait_for", json=HARVEST)
    pears = article(
        "Pear season", "Pear growers in Lleida expect a small crop of conference pears."
    )
    live_client.put("/documents/apples.txt?refresh=wait_for", json=pears)
    for mode in MODES:
        assert "apples.txt" not in found(live_client, "Hardanger apple harvest", mode)[:1], mode
        assert found(live_client, "Lleida pears crop", mode)[0] == "apples.txt", mode
    listed = live_client.get("/documents").json()
    assert [d["doc_id"] for d in listed["documents"]].count("apples.txt") == 1
    assert live_client.get("/documents/apples.txt").json()["metadata"] == {}


def test_a_delete_is_gone_from_every_mode_and_listing_when_it_returns(
    live_client: TestClient,
) -> None:
    live_client.put("/documents/apples.txt?refresh=wait_for", json=HARVEST)
    deleted = live_client.delete("/documents/apples.txt")
    assert deleted.status_code == 204
    assert deleted.content == b""
    for mode in MODES:  # no waiting: a delete is visible when acknowledged
        assert "apples.txt" not in found(live_client, "apple harvest Hardanger", mode), mode
    assert "apples.txt" not in [
        d["doc_id"] for d in live_client.get("/documents").json()["documents"]
    ]
    assert live_client.get("/documents/apples.txt").status_code == 404
    again = live_client.delete("/documents/apples.txt")
    assert again.status_code == 404
    assert again.json() == {"detail": "no document with id 'apples.txt'"}


def test_a_seed_document_can_be_deleted_too(live_client: TestClient) -> None:
    assert live_client.delete(f"/documents/{RUSSIA_DOC}").status_code == 204
    assert RUSSIA_DOC not in found(live_client, "Russian troops in Caracas")
    assert live_client.get("/info").json()["documents"] == 1


def test_bulk_writes_report_each_item_and_share_one_sequence(live_client: TestClient) -> None:
    body = {
        "documents": [
            {"doc_id": "a.txt", **HARVEST},
            {"doc_id": "b.txt", **article("Storm", "A storm hit the coast.", section="world")},
            {"doc_id": "a.txt", **article("Apples again", "The harvest was revised.")},
        ]
    }
    response = live_client.post("/documents?refresh=wait_for", json=body)
    assert response.status_code == 200, response.text
    result = response.json()
    assert result["seq"] == 3
    assert [(i["doc_id"], i["status"], i["result"]) for i in result["items"]] == [
        ("a.txt", 201, "created"),
        ("b.txt", 201, "created"),
        ("a.txt", 200, "replaced"),
    ]
    assert all(i["passages"] == 1 for i in result["items"])
    assert found(live_client, "storm coast", "keyword")[0] == "b.txt"
    assert live_client.get("/documents/a.txt").json()["title"] == "Apples again"


def test_one_invalid_document_in_a_bulk_writes_none_of_them(live_client: TestClient) -> None:
    body = {
        "documents": [
            {"doc_id": "good.txt", **HARVEST},
            {"doc_id": "bad.txt", "title": "Empty", "text": "   "},
        ]
    }
    response = live_client.post("/documents", json=body)
    assert response.status_code == 422
    [problem] = response.json()["detail"]
    assert problem["loc"] == ["body", "documents", 1, "text"]
    assert "only whitespace" in problem["msg"]
    assert live_client.get("/documents/good.txt").status_code == 404
    assert live_client.get("/info").json()["seq"] == 0


@pytest.mark.parametrize(
    ("body", "where", "message"),
    [
        ({"text": "No title."}, ["body", "title"], "Field required"),
        ({"title": "T", "text": ""}, ["body", "text"], "empty or only whitespace"),
        ({"title": "T", "text": " \n "}, ["body", "text"], "only whitespace"),
        ({"title": " ", "text": "x"}, ["body", "title"], "empty or only whitespace"),
        ({"title": "T", "text": "x", "extra": 1}, ["body", "extra"], "Extra inputs"),
        ({"title": "T", "text": "x", "metadata": {"a": {"b": 1}}}, ["body", "metadata"], "a"),
        ({"title": "T", "text": "x", "metadata": {"doc_id": "x"}}, ["body", "metadata"], "doc_id"),
        (
            {"title": "T", "text": "x", "metadata": {f"k{i}": i for i in range(33)}},
            ["body", "metadata"],
            "32",
        ),
        ({"title": "T", "text": "x", "metadata": {"n": 2**60}}, ["body", "metadata"], "2^53"),
        ({"title": "T", "text": "x", "metadata": ["a"]}, ["body", "metadata"], "dictionary"),
    ],
)
def test_invalid_documents_are_422_naming_the_field(
    live_client: TestClient, body: dict[str, Any], where: list[object], message: str
) -> None:
    response = live_client.put("/documents/x.txt", json=body)
    assert response.status_code == 422, response.text
    problems = response.json()["detail"]
    assert any(p["loc"][: len(where)] == where and message in p["msg"] for p in problems), problems
    assert live_client.get("/documents/x.txt").status_code == 404


def test_a_document_id_with_control_characters_is_refused(live_client: TestClient) -> None:
    response = live_client.put("/documents/bad%01id", json=HARVEST)
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["path", "doc_id"]


def test_bodies_that_are_too_large_or_not_json_are_refused(live_client: TestClient) -> None:
    huge = {"title": "T", "text": "word " * 20_000}  # over the 64 KiB set for these tests
    assert live_client.put("/documents/big.txt", json=huge).status_code == 413
    form = live_client.put("/documents/f.txt", content=b"title=x", headers={"content-type": "x"})
    assert form.status_code == 415
    broken = live_client.put(
        "/documents/b.txt", content=b"{", headers={"content-type": "application/json"}
    )
    assert broken.status_code == 422


def test_writes_wait_for_the_model_but_deletes_do_not(live_settings: Settings) -> None:
    release = threading.Event()

    def slow_model(name: str) -> HashingEmbedder:
        release.wait(10)
        return HashingEmbedder(name)

    with TestClient(create_app(live_settings, slow_model), headers=WRITE_HEADERS) as client:
        loading = client.put("/documents/a.txt", json=HARVEST)
        assert loading.status_code == 503
        assert loading.headers["retry-after"] == "2"
        assert client.delete(f"/documents/{OPPOSITION_DOC}").status_code == 204
        release.set()
        wait_until_ready(client)
        assert client.put("/documents/a.txt", json=HARVEST).status_code == 201


def test_a_document_written_over_http_is_the_one_built_offline(
    live_settings: Settings, tmp_path: Path
) -> None:
    """Same passages, same vectors (the same scores), same rankings in every mode."""
    text = (
        "Harvest report\n\nOrchards along the Hardanger fjord reported a record apple harvest. "
        "Russian buyers and Venezuelan importers competed for the crop.\n\nPrices rose."
    )
    offline_dir = tmp_path / "offline"
    corpus = load_corpus(write_articles(tmp_path / "corpus", {"zzz.txt": text}))
    seeds = load_corpus(SEEDS)
    seeds.documents.extend(corpus.documents)  # the seeds first, as the live index has them
    build_index(seeds, offline_dir, HashingEmbedder(), SEED_PARAMS, source_label="offline")
    offline_settings = live_settings.model_copy(update={"index_dir": offline_dir})
    with (
        TestClient(create_app(live_settings, HashingEmbedder), headers=WRITE_HEADERS) as live,
        TestClient(create_app(offline_settings, HashingEmbedder)) as offline,
    ):
        wait_until_ready(live)
        wait_until_ready(offline)
        written = live.put(
            "/documents/zzz.txt?refresh=wait_for", json={"title": "Harvest report", "text": text}
        )
        assert written.status_code == 201
        assert live.get("/documents/zzz.txt").json() == offline.get("/documents/zzz.txt").json()
        for query in ["apple harvest prices", "Russian troops in Caracas", "Venezuela importers"]:
            for mode in MODES:
                params = {"q": query, "k": 20, "mode": mode}
                ours = live.get("/search", params=params).json()["results"]
                theirs = offline.get("/search", params=params).json()["results"]
                assert ours == theirs, (query, mode)
