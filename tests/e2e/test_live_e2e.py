"""The live corpus end to end: the real model, ``python -m app`` as a process, kill -9."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from indexer.backends import load_embedder
from indexer.build import BuildParams, build_index
from indexer.embedding import DEFAULT_MODEL
from indexer.loading import load_corpus
from tests.utils.durability import Expected, assert_same_ranking, content, next_op, version_of
from tests.utils.paths import ARTIFACTS, REPO, SEEDS
from tests.utils.processes import free_port, running_service, wait_for
from tests.utils.seeds import RUSSIA_DOC, write_articles

KEY = "e2e-write-key"
HEADERS = {"X-API-Key": KEY}
MODES = ("semantic", "keyword", "hybrid")
APPLES = {
    "title": "Norwegian apple harvest",
    "text": "Orchards along the Hardanger fjord reported a record apple harvest this autumn, "
    "and cider makers in Bergen bought most of it.",
    "metadata": {"section": "business", "published": "2021-10-04"},
}


def search(base: str, query: str, mode: str, **params: object) -> list[dict[str, Any]]:
    response = httpx.get(f"{base}/search", params={"q": query, "mode": mode, "k": 10, **params})
    assert response.status_code == 200, response.text
    results: list[dict[str, Any]] = response.json()["results"]
    return results


def ids(results: list[dict[str, Any]]) -> list[str]:
    return [r["doc_id"] for r in results]


@pytest.fixture
def live(real_index_dir: Path, onnx_dir: Path, tmp_path: Path) -> Iterator[str]:
    with running_service(
        real_index_dir, onnx_dir, tmp_path / "service.log", SEARCH_API_KEY=KEY
    ) as base:
        yield base


def test_write_replace_and_delete_with_the_real_model(live: str) -> None:
    put = httpx.put(f"{live}/documents/apples.txt?refresh=wait_for", json=APPLES, headers=HEADERS)
    assert put.status_code == 201, put.text
    for mode in MODES:
        assert ids(search(live, "apple harvest in Norway", mode))[0] == "apples.txt", mode
    only_business = json.dumps({"section": "business"})
    assert ids(search(live, "Russian troops", "hybrid", filter=only_business)) == ["apples.txt"]

    pears = {"title": "Pear season", "text": "Growers in Lleida expect a small crop of pears."}
    replaced = httpx.put(
        f"{live}/documents/apples.txt?refresh=wait_for", json=pears, headers=HEADERS
    )
    assert replaced.status_code == 200
    for mode in MODES:
        # The old passages are gone: no result carries the old text (semantic mode still
        # ranks the new one somewhere: every passage has a similarity).
        old = search(live, "Hardanger fjord cider Bergen", mode)
        assert not [r for r in old if "Hardanger" in r["text"]], mode
        assert ids(search(live, "pear growers in Lleida", mode))[0] == "apples.txt", mode
    assert search(live, "Hardanger fjord cider", "keyword") == []
    assert search(live, "Russian troops", "hybrid", filter=only_business) == []

    assert httpx.delete(f"{live}/documents/apples.txt", headers=HEADERS).status_code == 204
    for mode in MODES:
        assert "apples.txt" not in ids(search(live, "pear growers in Lleida", mode)), mode
    assert httpx.delete(f"{live}/documents/{RUSSIA_DOC}", headers=HEADERS).status_code == 204
    for mode in MODES:
        assert RUSSIA_DOC not in ids(search(live, "Russian military presence", mode)), mode
    listed = httpx.get(f"{live}/documents").json()
    assert listed["total"] == 1
    assert httpx.get(f"{live}/info").json()["seq"] == 4


def test_a_document_written_live_is_the_one_built_offline(onnx_dir: Path, tmp_path: Path) -> None:
    """With the real model: identical passages, vectors (so scores) and rankings."""
    text = (SEEDS / RUSSIA_DOC).read_text(encoding="utf-8").replace("Venezuela", "Bolivia")
    embedder = load_embedder(DEFAULT_MODEL, "onnx", onnx_dir)  # what the service runs
    seeds_dir = tmp_path / "seeds"
    build_index(load_corpus(SEEDS), seeds_dir, embedder, BuildParams(), source_label="seeds")
    corpus = load_corpus(SEEDS)
    corpus.documents.extend(load_corpus(write_articles(tmp_path / "x", {"zz.txt": text})).documents)
    offline_dir = tmp_path / "offline"
    build_index(corpus, offline_dir, embedder, BuildParams(), source_label="offline")
    title = corpus.documents[-1].title
    with (
        running_service(seeds_dir, onnx_dir, tmp_path / "a.log", SEARCH_API_KEY=KEY) as live,
        running_service(offline_dir, onnx_dir, tmp_path / "b.log") as offline,
    ):
        body = {"title": title, "text": text}
        written = httpx.put(f"{live}/documents/zz.txt?refresh=wait_for", json=body, headers=HEADERS)
        assert written.status_code == 201
        assert httpx.get(f"{live}/documents/zz.txt").json() == (
            httpx.get(f"{offline}/documents/zz.txt").json()
        )
        for query in ["Russian military presence in Bolivia", "Pompeo", "sanctions and aid"]:
            for mode in MODES:
                assert search(live, query, mode) == search(offline, query, mode), (query, mode)


# -- kill -9 through HTTP ---------------------------------------------------------------------


class Writer(threading.Thread):
    """Sends random writes one at a time until the server goes away. What went wrong is kept
    in ``refused`` for the test to assert on: an assert in this thread could not fail it."""

    def __init__(self, base: str, state: dict[str, int | None], seed: int) -> None:
        super().__init__(daemon=True)
        self.base, self.state, self.rng = base, dict(state), random.Random(seed)
        self.lines: list[str] = []
        self.acknowledged = 0
        self.refused: list[str] = []

    def run(self) -> None:
        with httpx.Client(base_url=self.base, headers=HEADERS, timeout=30) as client:
            while True:
                op = next_op(self.rng, self.state, pool=25)
                self.lines.append(f"begin {op.line()}")
                try:
                    if op.kind == "put":
                        response = client.put(
                            f"/documents/{op.doc_id}", json=content(op.doc_id, op.version)
                        )
                    else:
                        response = client.delete(f"/documents/{op.doc_id}")
                except httpx.TransportError:
                    return  # killed: this write is in flight
                if response.status_code not in (200, 201, 204):
                    self.refused.append(f"{op.line()}: {response.status_code} {response.text}")
                    return
                self.lines.append(f"ack {op.line()}")
                self.acknowledged += 1
                self.state[op.doc_id] = op.version if op.kind == "put" else None


def start(index_dir: Path, onnx_dir: Path, port: int, log: Path) -> subprocess.Popen[bytes]:
    environment = {
        **os.environ,
        "SEARCH_INDEX_DIR": str(index_dir),
        "SEARCH_ONNX_DIR": str(onnx_dir),
        "SEARCH_API_KEY": KEY,
        "PORT": str(port),
    }
    with log.open("ab") as sink:
        return subprocess.Popen(
            [sys.executable, "-m", "app"], cwd=REPO, env=environment, stdout=sink, stderr=sink
        )


def held(base: str) -> dict[str, int | None]:
    listed = httpx.get(f"{base}/documents", params={"limit": 1000}).json()["documents"]
    return {d["doc_id"]: version_of(d["title"]) for d in listed if d["doc_id"].startswith("doc-")}


@pytest.mark.long
def test_kill_9_loop_loses_no_acknowledged_write_and_ranks_like_a_fresh_build(
    onnx_dir: Path, tmp_path: Path
) -> None:
    embedder = load_embedder(DEFAULT_MODEL, "onnx", onnx_dir)
    corpus = load_corpus(SEEDS)
    index_dir = tmp_path / "index"
    build_index(corpus, index_dir, embedder, BuildParams(), source_label="seeds")
    expected = Expected()
    rng = random.Random(7)
    port, log = free_port(), tmp_path / "service.log"
    base = f"http://127.0.0.1:{port}"
    for round_number in range(6):
        server = start(index_dir, onnx_dir, port, log)
        try:
            wait_for(lambda: httpx.get(f"{base}/ready").status_code == 200, "ready", 90)
            expected.check(held(base), None)
            writer = Writer(base, dict(expected.versions), seed=round_number)
            writer.start()
            # Killed after a random number of acknowledged writes, while the next is in flight.
            wanted = rng.randint(4, 12)

            def written(writer: Writer = writer, wanted: int = wanted) -> bool:
                return writer.acknowledged >= wanted or not writer.is_alive()

            wait_for(written, f"{wanted} acknowledged writes", 60)
        finally:
            server.send_signal(signal.SIGKILL)
            server.wait(10)
        writer.join(30)
        assert not writer.is_alive(), "the writer did not notice the server was gone"
        assert writer.refused == []
        in_flight = expected.read_log(writer.lines)
        server = start(index_dir, onnx_dir, port, log)
        try:
            wait_for(lambda: httpx.get(f"{base}/ready").status_code == 200, "ready", 90)
            expected.check(held(base), in_flight)
        finally:
            server.send_signal(signal.SIGKILL)
            server.wait(10)
    assert expected.acknowledged >= 20, expected.acknowledged
    assert "Traceback" not in log.read_text()
    rounds = 6

    # The same documents built offline, in the order the live index holds them, rank alike.
    server = start(index_dir, onnx_dir, port, log)
    try:
        wait_for(lambda: httpx.get(f"{base}/ready").status_code == 200, "ready", 90)
        listed = httpx.get(f"{base}/documents", params={"limit": 1000}).json()["documents"]
        records = []
        for summary in listed:
            document = httpx.get(f"{base}/documents/{summary['doc_id']}").json()
            records.append(
                {
                    "_id": document["doc_id"],
                    "title": document["title"],
                    "text": document["text"],
                    "metadata": document["metadata"],
                }
            )
        (tmp_path / "corpus.jsonl").write_text("\n".join(json.dumps(r) for r in records))
        fresh = tmp_path / "fresh"
        build_index(
            load_corpus(tmp_path / "corpus.jsonl"), fresh, embedder, BuildParams(), source_label="f"
        )
        with running_service(fresh, onnx_dir, tmp_path / "fresh.log") as other:
            for query in ["storm over the harbour", "minister budget", "Russian troops", "tax"]:
                for mode in MODES:
                    ours, theirs = search(base, query, mode), search(other, query, mode)
                    assert_same_ranking(
                        [(r["doc_id"], r["chunk_id"], r["score"]) for r in ours],
                        [(r["doc_id"], r["chunk_id"], r["score"]) for r in theirs],
                    )
                    assert [r["text"] for r in ours] == [r["text"] for r in theirs]
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(20)
    ARTIFACTS.mkdir(exist_ok=True)
    (ARTIFACTS / "kill9-http.txt").write_text(
        expected.summary(
            rounds,
            process="python -m app with the real model (ONNX Runtime), killed while writing",
            rankings="equal to a fresh offline build of the same documents "
            "(4 queries x 3 modes, through HTTP)",
        )
    )
