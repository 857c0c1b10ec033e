"""A reindex of a running ``python -m app`` (real model, ONNX) under continuous search load:
no request fails, the answers switch from the old ranking to the new one once, a write made
during the rebuild is found afterwards with the new chunking, and a restart serves the same."""

from __future__ import annotations

import itertools
import json
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest

from tests.utils.api import finished_reindex
from tests.utils.paths import ARTIFACTS
from tests.utils.processes import running_service, wait_for
from tests.utils.seeds import SEED_QUESTIONS

pytestmark = pytest.mark.long

KEY = "e2e-write-key"
HEADERS = {"X-API-Key": KEY}
CONCURRENCY = 8
QUERIES = [question for question, _, _ in SEED_QUESTIONS[:6]]
NEW_CHUNK_SIZE = 48
# Semantic mode: a document written meanwhile (about something else) changes no query's top
# passages, while BM25's corpus statistics would; so any change of ranking is the reindex's.
PARAMS = {"mode": "semantic", "k": "5"}


FILLER = 80
WINDS = ["north", "east", "south", "west"]


def log_entry(i: int) -> str:
    return " ".join(
        f"Day {day}: wind from the {WINDS[(i + day) % 4]}, {i + day} boats in, "
        f"the tide turned at {day % 12 + 1} o'clock and the nets were mended."
        for day in range(12)
    )


@dataclass(frozen=True, slots=True)
class Answer:
    query: str
    started: float
    finished: float
    status: int
    build: str
    ranking: tuple[tuple[str, int, int], ...]


def ask(client: httpx.Client, query: str) -> Answer:
    started = time.monotonic()
    try:
        response = client.get("/search", params={"q": query, **PARAMS})
    except httpx.HTTPError as error:
        return Answer(query, started, time.monotonic(), 0, repr(error), ())
    finished = time.monotonic()
    if response.status_code != 200:
        return Answer(query, started, finished, response.status_code, response.text, ())
    body = response.json()
    ranking = tuple((r["doc_id"], r["start"], r["end"]) for r in body["results"])
    return Answer(query, started, finished, 200, body["index_build"], ranking)


def test_a_reindex_under_search_load_switches_once_and_loses_nothing(
    real_index_dir: Path, onnx_dir: Path, tmp_path: Path
) -> None:
    log = tmp_path / "service.log"
    answers: list[Answer] = []
    errors: list[BaseException] = []  # a thread's exception could not fail the test
    stop = threading.Event()

    def searching(worker: int) -> None:
        try:
            with httpx.Client(base_url=base, timeout=30) as client:
                at = worker
                while not stop.is_set():
                    answers.append(ask(client, QUERIES[at % len(QUERIES)]))
                    at += 1
        except BaseException as error:
            errors.append(error)

    def answered(count: int) -> None:
        """Wait until the searchers have had ``count`` answers."""

        def enough() -> bool:
            assert not errors, errors  # a searcher died: no point waiting on
            return len(answers) >= count

        wait_for(enough, f"{count} answers", 60, interval=0.02)

    with running_service(real_index_dir, onnx_dir, log, SEARCH_API_KEY=KEY) as base:
        served = tmp_path / f"index-{urlsplit(base).port}"
        with httpx.Client(base_url=base, timeout=30) as client:
            # Enough documents that the rebuild takes several batches: the write below is
            # embedded between them, so it reaches the store during the rebuild.
            filler = {
                "documents": [
                    {"doc_id": f"log-{i}", "title": f"Harbour log {i}", "text": log_entry(i)}
                    for i in range(FILLER)
                ]
            }
            response = client.post("/documents?refresh=wait_for", json=filler, headers=HEADERS)
            assert response.status_code == 200, response.text
            old_build = client.get("/info").json()["build_id"]
            old = {q: ask(client, q).ranking for q in QUERIES}
            workers = [threading.Thread(target=searching, args=(i,)) for i in range(CONCURRENCY)]
            for worker in workers:
                worker.start()
            answered(4 * CONCURRENCY)  # under load before the reindex starts
            started = client.post(
                "/admin/reindex", json={"chunk_size": NEW_CHUNK_SIZE}, headers=HEADERS
            )
            assert started.status_code == 202, started.text
            text = "The keeper logged fog at dawn. " * 30
            written = client.put(
                "/documents/keepers-log",
                json={"title": "Keeper's log", "text": text},
                headers=HEADERS,
            )
            assert written.status_code == 201, written.text
            write_seq = written.json()["seq"]
            during = client.get("/admin/reindex", headers=HEADERS).json()
            status = finished_reindex(client, headers=HEADERS, seconds=120)
            answered(len(answers) + 4 * CONCURRENCY)  # and under load after the switch
            stop.set()
            for worker in workers:
                worker.join(30)
            assert not any(worker.is_alive() for worker in workers)
            assert errors == []
            assert status["state"] == "done", status
            new_build = status["to_build"]
            new = {q: ask(client, q).ranking for q in QUERIES}
            info = client.get("/info").json()
            stored = client.get("/documents/keepers-log").json()
            found = client.get("/search", params={"q": "keeper fog at dawn", **PARAMS}).json()
        # After a restart (translog replay), the same index.
        assert (served / "CURRENT").is_file()
    with (
        running_service(served, onnx_dir, tmp_path / "again.log") as again,
        httpx.Client(base_url=again, timeout=30) as client,
    ):
        restarted = {q: ask(client, q) for q in QUERIES}
        again_info = client.get("/info").json()

    failures = [a for a in answers if a.status != 200]
    by_completion = sorted(answers, key=lambda a: a.finished)
    builds = [a.build for a in by_completion]
    changes = sum(1 for x, y in itertools.pairwise(builds) if x != y)
    first_new = next(a.finished for a in by_completion if a.build == new_build)
    # An old answer may complete after the first new one only if it was in flight then.
    late_old = [a for a in answers if a.build == old_build and a.started > first_new]
    overlap = [a for a in answers if a.build == old_build and a.finished > first_new]
    ARTIFACTS.mkdir(exist_ok=True)
    (ARTIFACTS / "reindex-under-load.json").write_text(
        json.dumps(
            {
                "requests": len(answers),
                "failed": len(failures),
                "old_answers": builds.count(old_build),
                "new_answers": builds.count(new_build),
                "build_changes_by_completion": changes,
                "old_answers_in_flight_at_switch": len(overlap),
                "write_seq": write_seq,
                "new_version_seq": status["seq"],
                "status_after_the_write": during,
            },
            indent=2,
        )
    )
    assert not failures, failures[:3]
    assert set(builds) == {old_build, new_build}
    assert not late_old, late_old[:3]
    assert changes <= 1 + 2 * len(overlap), (changes, len(overlap))
    for answer in answers:  # the ranking goes with the build that answered
        assert answer.ranking == (old if answer.build == old_build else new)[answer.query]
    assert any(old[q] != new[q] for q in QUERIES)  # the switch is visible in the answers
    assert builds[0] == old_build
    assert builds[-1] == new_build
    # The write made during the rebuild is in the new version, chunked the new way.
    assert during["state"] == "running", during
    assert status["seq"] >= write_seq
    assert info["chunking"]["max_tokens"] == NEW_CHUNK_SIZE
    assert info["build_id"] == new_build
    assert len(stored["passages"]) > written.json()["passages"]  # it was written at 128
    assert found["results"][0]["doc_id"] == "keepers-log"
    assert again_info["build_id"] == new_build
    assert again_info["seq"] == info["seq"]
    assert {q: a.ranking for q, a in restarted.items()} == new
    assert "Traceback" not in log.read_text()
