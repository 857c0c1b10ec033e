"""A real build (the model, 150 CISI documents) killed with SIGKILL at about half and
run again with --resume: it embeds only what the first run had not committed, and ends with the
index an uninterrupted build makes."""

from __future__ import annotations

import json
import signal
from pathlib import Path

import numpy as np
import pytest

from indexer.embedding_cache import EmbeddingCache
from tests.utils.builds import JsonBuild
from tests.utils.needs import shared
from tests.utils.processes import indexer_cli
from tests.utils.seeds import all_passages, index_vectors

# Three real builds of 150 documents: make check only.
pytestmark = [pytest.mark.e2e, pytest.mark.long]

DOCUMENTS = 150


def cisi_sample(directory: Path, count: int = DOCUMENTS) -> Path:
    """The first ``count`` documents of CISI, as a corpus file."""
    lines = (shared("benchmarks/cisi") / "corpus.jsonl").read_text().splitlines()[:count]
    path = directory / "cisi-sample.jsonl"
    path.write_text("\n".join(lines) + "\n")
    return path


def test_a_build_killed_at_half_resumes_and_ends_with_the_uninterrupted_index(
    tmp_path: Path, onnx_dir: Path
) -> None:
    source, cache = cisi_sample(tmp_path), tmp_path / "cache.sqlite"
    out = tmp_path / "index"
    args = ["build", "--source", str(source), "--out", str(out), "--onnx-dir", str(onnx_dir)]
    build = JsonBuild(args[1:], {"SEARCH_EMBEDDING_CACHE": str(cache)})
    try:
        build.wait_embedded(1 / 3)
    finally:
        build.kill()
    assert build.process.returncode == -signal.SIGKILL
    events = build.events
    seen = max(e["done"] for e in events if e["event"] == "progress" and e["phase"] == "embedding")
    total = events[-1]["total"]
    assert total > 200  # passages of 150 documents
    assert not out.exists()  # nothing half-written where the index goes

    with EmbeddingCache(cache, "unused") as journal:
        unfinished = journal.unfinished(f"the index at {out}")
    assert unfinished is not None  # the journal survived the kill
    assert seen <= unfinished.embedded < unfinished.total == total

    resumed = indexer_cli(*args, "--resume", "--json", env={"SEARCH_EMBEDDING_CACHE": str(cache)})
    assert resumed.returncode == 0, resumed.stderr
    said = resumed.stderr.splitlines()
    assert f"resuming the build of the index at {out}: " in said[0]
    assert f"{unfinished.embedded} of {total} passages were embedded" in said[0]
    built = [json.loads(line) for line in resumed.stdout.splitlines()][-1]
    assert built["event"] == "built"
    # It embedded only what the killed build had not committed.
    assert (built["cached"], built["embedded"]) == (
        unfinished.embedded,
        total - unfinished.embedded,
    )
    assert f"{total - unfinished.embedded} embedded" in said[-1]

    whole = tmp_path / "whole"
    uninterrupted = indexer_cli(
        "build",
        "--source",
        str(source),
        "--out",
        str(whole),
        "--onnx-dir",
        str(onnx_dir),
        "--no-progress",
        env={"SEARCH_EMBEDDING_CACHE": ""},
    )
    assert uninterrupted.returncode == 0, uninterrupted.stderr
    assert all_passages(out) == all_passages(whole)
    np.testing.assert_allclose(index_vectors(out), index_vectors(whole), atol=1e-6)
