"""One question, three stores: the seeds built with the real model into FAISS, into Milvus Lite
and into a Milvus server, each by ``python -m indexer build`` and served by ``python -m app``
as a user runs them; every seed question over HTTP in semantic mode gets the same top 10
passages, in the same order, from all three (and their scores to within float32 rounding)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from harness.service import free_port, server
from indexer.stores.milvus.client import MilvusTarget
from indexer.stores.milvus.store import MilvusStore
from tests.utils.milvus_stores import LITE_AND_SERVER, milvus_uri
from tests.utils.paths import SEEDS
from tests.utils.processes import indexer_cli
from tests.utils.seeds import SEED_QUESTIONS

QUESTIONS = [question for question, _, _ in SEED_QUESTIONS]
Top = list[tuple[str, int, int, float]]


def build(env: dict[str, str]) -> None:
    """``python -m indexer build`` from the seeds, as a user builds it."""
    result = indexer_cli("build", "--source", str(SEEDS), "--no-progress", env=env)
    assert result.returncode == 0, result.stdout + result.stderr


def tops(env: dict[str, str], log: Path) -> dict[str, Top]:
    """Every question's top 10 in semantic mode, from ``python -m app`` with ``env``."""
    port = free_port()
    with (
        server(log.parent / "no-index", port, env, log),
        httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as client,
    ):
        found: dict[str, Top] = {}
        for question in QUESTIONS:
            answer = client.get("/search", params={"q": question, "k": 10, "mode": "semantic"})
            assert answer.status_code == 200, answer.text
            found[question] = [
                (r["doc_id"], r["start"], r["end"], r["score"]) for r in answer.json()["results"]
            ]
        return found


@pytest.fixture(scope="module")
def faiss_tops(onnx_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Top]:
    workdir = tmp_path_factory.mktemp("faiss")
    env = {"SEARCH_INDEX_DIR": str(workdir / "index"), "SEARCH_ONNX_DIR": str(onnx_dir)}
    build(env)
    return tops(env, workdir / "service.log")


@pytest.fixture(params=LITE_AND_SERVER)
def milvus_env(
    request: pytest.FixtureRequest, onnx_dir: Path, tmp_path: Path
) -> Iterator[dict[str, str]]:
    """Where a Milvus store of the seeds lives, with the store settings' defaults (HNSW)."""
    uri = milvus_uri(request.param, request, tmp_path)
    target = MilvusTarget(uri=uri, collection=f"same_{uuid.uuid4().hex[:12]}")
    env = {
        "SEARCH_STORE": "milvus",
        "SEARCH_MILVUS_URI": target.uri,
        "SEARCH_MILVUS_COLLECTION": target.collection,
        "SEARCH_ONNX_DIR": str(onnx_dir),
    }
    build(env)
    yield env
    if not target.is_lite:  # a Lite file goes with tmp_path
        MilvusStore.drop(target)


def test_faiss_and_milvus_give_the_same_top_10_in_semantic_mode(
    faiss_tops: dict[str, Top], milvus_env: dict[str, str], tmp_path: Path
) -> None:
    theirs = tops(milvus_env, tmp_path / "service.log")
    for question in QUESTIONS:
        ours = faiss_tops[question]
        assert len(ours) == 10, question
        assert [r[:3] for r in theirs[question]] == [r[:3] for r in ours], question
        for (*_, mine), (*_, other) in zip(ours, theirs[question], strict=True):
            assert other == pytest.approx(mine, abs=1e-5), question
