"""``python -m indexer build --engine ray`` on a real (local) Ray cluster with the real model: the
same index as the local engine (passages, offsets, vectors, the top 10 of every mode), into FAISS
and into Milvus; a build that loses an actor, or its driver, to SIGKILL; and the CISI corpus
built through ``ray job submit`` on a two-node cluster."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from harness.ray_cluster import MARKER, RayCluster, cluster_processes, submit_job, two_node_cluster
from indexer.backends import load_embedder
from indexer.build import BuildParams
from indexer.ingest import Preparer
from indexer.loading import load_corpus
from indexer.search import MODES, Query, Searcher
from indexer.stores.base import Store
from indexer.stores.faiss.store import FaissStore
from indexer.stores.milvus.client import MilvusTarget
from indexer.stores.milvus.store import MilvusStore
from tests.utils.builds import JsonBuild
from tests.utils.needs import shared
from tests.utils.paths import REPO, SEEDS
from tests.utils.processes import indexer_cli
from tests.utils.seeds import all_passages, index_vectors

pytestmark = [pytest.mark.e2e, pytest.mark.ray]

SEED_QUESTIONS = [
    "Russian military presence",
    "who leads the opposition",
    "humanitarian aid blocked at the border",
]


@pytest.fixture(scope="module")
def corpus_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The seeds and the first 200 CISI documents, in one source directory."""
    directory = tmp_path_factory.mktemp("ray-corpus")
    for seed in SEEDS.iterdir():
        shutil.copy(seed, directory / seed.name)
    lines = (shared("benchmarks/cisi") / "corpus.jsonl").read_text().splitlines()[:200]
    (directory / "cisi.jsonl").write_text("\n".join(lines) + "\n")
    return directory


def cisi_questions(count: int = 10) -> list[str]:
    queries = (shared("benchmarks/cisi") / "queries.jsonl").read_text().splitlines()[:count]
    return [json.loads(line)["text"] for line in queries]


@pytest.fixture(scope="module")
def local_index(corpus_dir: Path, onnx_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("local") / "index"
    built = indexer_cli(
        "build",
        "--source",
        str(corpus_dir),
        "--out",
        str(out),
        "--onnx-dir",
        str(onnx_dir),
        "--no-progress",
        env={"SEARCH_EMBEDDING_CACHE": ""},
    )
    assert built.returncode == 0, built.stderr
    return out


def ray_build(cluster: RayCluster, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    """``python -m indexer build --engine ray`` against ``cluster``, to the end."""
    return indexer_cli(
        "build",
        "--engine",
        "ray",
        "--ray-address",
        cluster.address,
        "--no-progress",
        *args,
        env={**cluster.driver_env, **env},
        timeout=600,
    )


def top10(store: Store, onnx_dir: Path, questions: list[str]) -> dict[tuple[str, str], list[Any]]:
    searcher = Searcher(
        store, load_embedder("sentence-transformers/all-MiniLM-L6-v2", "onnx", onnx_dir)
    )
    return {
        (mode, question): [
            (hit.passage.doc_id, hit.passage.start, hit.passage.end)
            for hit in searcher.search(Query(question, mode=mode, k=10))
        ]
        for mode in MODES
        for question in questions
    }


def test_the_ray_engine_builds_the_index_the_local_engine_builds(
    ray_cluster: RayCluster, corpus_dir: Path, local_index: Path, onnx_dir: Path, tmp_path: Path
) -> None:
    out = tmp_path / "index"
    built = ray_build(
        ray_cluster,
        "--source",
        str(corpus_dir),
        "--out",
        str(out),
        "--onnx-dir",
        str(onnx_dir),
        "--ray-actors",
        "2",
        SEARCH_EMBEDDING_CACHE="",
    )
    assert built.returncode == 0, built.stderr
    assert "embedding with the ray engine: 2 actors on the Ray cluster at" in built.stdout
    assert all_passages(out) == all_passages(local_index)  # ids, offsets, text
    np.testing.assert_allclose(index_vectors(out), index_vectors(local_index), atol=1e-6)
    questions = SEED_QUESTIONS + cisi_questions()
    ray_store, local_store = (FaissStore.open(p, writable=False) for p in (out, local_index))
    try:
        assert top10(ray_store, onnx_dir, questions) == top10(local_store, onnx_dir, questions)
    finally:
        ray_store.close()
        local_store.close()


def test_the_ray_engine_fills_milvus_as_the_local_engine_does(
    ray_cluster: RayCluster, corpus_dir: Path, local_index: Path, onnx_dir: Path, tmp_path: Path
) -> None:
    uri = str(tmp_path / "milvus.db")
    where = ["--store", "milvus", "--milvus-uri", uri, "--onnx-dir", str(onnx_dir)]
    source = ["--source", str(corpus_dir)]
    built = ray_build(ray_cluster, *source, *where, "--milvus-collection", "by_ray")
    assert built.returncode == 0, built.stderr
    local = indexer_cli(
        "build", *source, *where, "--milvus-collection", "by_local", "--no-progress"
    )
    assert local.returncode == 0, local.stderr
    # The cache the Ray build filled served the local one: the same vectors, by definition.
    assert "0 embedded" in local.stdout.splitlines()[-1]
    questions = SEED_QUESTIONS + cisi_questions()
    by_ray = MilvusStore.open(MilvusTarget(uri=uri, collection="by_ray"), writable=False)
    try:
        by_local = MilvusStore.open(MilvusTarget(uri=uri, collection="by_local"), writable=False)
        try:
            assert by_ray.reader().passage_count == len(all_passages(local_index))
            assert top10(by_ray, onnx_dir, questions) == top10(by_local, onnx_dir, questions)
            faiss = FaissStore.open(local_index, writable=False)
            try:  # the exact vector search of either store ranks alike
                semantic = {
                    k: v for k, v in top10(faiss, onnx_dir, questions).items() if k[0] == "semantic"
                }
                assert semantic == {
                    k: v
                    for k, v in top10(by_ray, onnx_dir, questions).items()
                    if k[0] == "semantic"
                }
            finally:
                faiss.close()
        finally:
            by_local.close()
    finally:
        by_ray.close()


def _start(cluster: RayCluster, args: list[str], env: dict[str, str]) -> JsonBuild:
    ray = ["--engine", "ray", "--ray-address", cluster.address]
    return JsonBuild([*ray, *args], {**cluster.driver_env, **env})


def _embedding_actors(cluster: RayCluster) -> list[int]:
    return [p.pid for p in cluster_processes(cluster.env[MARKER]) if "MapWorker" in _cmdline(p.pid)]


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
    except OSError:
        return ""


def test_a_ray_build_that_loses_an_actor_finishes_with_every_vector(
    ray_cluster: RayCluster, corpus_dir: Path, local_index: Path, onnx_dir: Path, tmp_path: Path
) -> None:
    out = tmp_path / "index"
    cache = str(tmp_path / "cache.sqlite")
    args = [
        "--source",
        str(corpus_dir),
        "--out",
        str(out),
        "--onnx-dir",
        str(onnx_dir),
        "--ray-actors",
        "1",
    ]
    build = _start(ray_cluster, args, {"SEARCH_EMBEDDING_CACHE": cache})
    try:
        build.wait_embedded(0.25)
        actors = _embedding_actors(ray_cluster)
        assert len(actors) == 1, actors
        os.kill(actors[0], signal.SIGKILL)
        assert build.finish() == 0  # Ray starts another actor and retries its block
    finally:
        build.kill()
    built = build.events[-1]
    assert built["event"] == "built"
    # Every text embedded once (a repeated text takes its original's vector), none cached.
    assert (built["embedded"] + built["repeated"], built["cached"]) == (built["passages"], 0)
    assert all_passages(out) == all_passages(local_index)
    np.testing.assert_allclose(index_vectors(out), index_vectors(local_index), atol=1e-6)


def test_a_ray_build_whose_driver_is_killed_resumes(
    ray_cluster: RayCluster, corpus_dir: Path, local_index: Path, onnx_dir: Path, tmp_path: Path
) -> None:
    out = tmp_path / "index"
    env = {"SEARCH_EMBEDDING_CACHE": str(tmp_path / "cache.sqlite")}
    args = ["--source", str(corpus_dir), "--out", str(out), "--onnx-dir", str(onnx_dir)]
    build = _start(ray_cluster, args, env)
    try:
        seen = build.wait_embedded(0.3)
    finally:
        build.kill()
    resumed = ray_build(ray_cluster, *args, "--resume", **env)
    assert resumed.returncode == 0, resumed.stderr
    first, last = resumed.stdout.splitlines()[0], resumed.stdout.splitlines()[-1]
    assert first.startswith(f"resuming the build of the index at {out}: ")
    committed = int(first.split(": ")[1].split(" of ")[0])
    assert committed >= seen
    total = len(all_passages(local_index))
    assert f"; {total - committed} embedded" in last
    assert f"{committed} from the cache" in last
    assert all_passages(out) == all_passages(local_index)
    np.testing.assert_allclose(index_vectors(out), index_vectors(local_index), atol=1e-6)


@pytest.mark.long
def test_cisi_is_built_through_ray_job_submit_on_a_two_node_cluster(
    onnx_dir: Path, tmp_path: Path
) -> None:
    cisi = shared("benchmarks/cisi")
    out = tmp_path / "index"
    job_dir = tmp_path / "job"
    job_dir.mkdir()
    command = [
        sys.executable,
        "-m",
        "indexer",
        "build",
        "--engine",
        "ray",
        "--ray-actors",
        "2",
        "--source",
        str(cisi),
        "--out",
        str(out),
        "--onnx-dir",
        str(onnx_dir.resolve()),
        "--no-progress",
    ]
    env = {"SEARCH_EMBEDDING_CACHE": "", "PYTHONPATH": str(REPO)}
    with two_node_cluster() as cluster:
        job = submit_job(cluster, job_dir, command, env)
    assert job.status == "SUCCEEDED", job.logs
    assert "embedding with the ray engine: 2 actors on the Ray cluster at" in job.logs
    last = [line for line in job.logs.splitlines() if line.startswith("indexed ")][-1]
    assert last.startswith("indexed 1460 documents into ")

    # Every passage the local build would make, and vectors the local model gives them.
    embedder = load_embedder("sentence-transformers/all-MiniLM-L6-v2", "onnx", onnx_dir)
    chunked = Preparer(embedder, BuildParams().chunking, True).chunk(load_corpus(cisi).documents)
    passages = all_passages(out)
    assert [(p.doc_id, p.start, p.end) for p in passages] == [
        (p.doc_id, p.start, p.end) for own in chunked.passages for p in own
    ]
    sample = np.linspace(0, len(passages) - 1, 50).astype(int)
    expected = embedder.encode([chunked.texts[i] for i in sample])
    np.testing.assert_allclose(index_vectors(out)[sample], expected, atol=1e-5)
