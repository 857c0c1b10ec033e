from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from indexer.cli import app
from indexer.embedding import DEFAULT_MODEL
from indexer.stores.faiss.layout import read_current_manifest
from indexer.stores.faiss.store import FaissStore
from indexer.stores.milvus.client import MilvusTarget
from indexer.stores.milvus.store import MilvusStore
from indexer.types import Document, IndexedDocument, Passage
from tests.utils.paths import SEEDS
from tests.utils.seeds import OPPOSITION_DOC, RUSSIA_DOC

runner = CliRunner()


@pytest.mark.long  # the export takes about 30 s; make test builds with the session's export
def test_the_first_build_exports_the_model_for_onnx_runtime(tmp_path: Path) -> None:
    out, onnx = tmp_path / "index", tmp_path / "onnx"
    paths = ["--out", str(out), "--onnx-dir", str(onnx)]
    built = runner.invoke(app, ["build", "--source", str(SEEDS), *paths, "--no-progress"])
    assert built.exit_code == 0, built.output
    # The default backend runs the model with ONNX Runtime; the first build makes the export.
    lines = built.output.splitlines()
    assert lines[0].startswith("exporting the model for ONNX Runtime (once): no ONNX export")
    assert {"export.json", "model.onnx", "tokenizer.json"} <= {p.name for p in onnx.iterdir()}
    assert lines[-1].startswith("indexed 2 documents into ")


def test_build_then_search_from_the_command_line(tmp_path: Path, onnx_dir: Path) -> None:
    out = tmp_path / "index"
    paths = ["--out", str(out), "--onnx-dir", str(onnx_dir)]
    built = runner.invoke(app, ["build", "--source", str(SEEDS), *paths, "--no-progress"])
    assert built.exit_code == 0, built.output
    assert not built.output.startswith("exporting")  # the export is there already
    assert built.output.splitlines()[-1].startswith("indexed 2 documents into ")
    assert "passages/s" in built.output
    manifest = read_current_manifest(out)
    assert (manifest.model.name, manifest.model.dimension) == (DEFAULT_MODEL, 384)

    again = runner.invoke(app, ["build", "--source", str(SEEDS), *paths, "--if-stale"])
    assert again.output == f"the index at {out} is up to date (2 documents)\n"

    found = runner.invoke(app, ["search", *paths, "-k", "2", "Russian military presence"])
    assert found.exit_code == 0, found.output
    first = found.output.splitlines()[0]
    assert re.match(r"1\. score \d\.\d{4}  ", first), first
    assert RUSSIA_DOC in first
    start, end = map(int, first.split("[")[1].split("]")[0].split(":"))
    text = (SEEDS / RUSSIA_DOC).read_bytes().decode("utf-8")[start:end]
    assert " ".join(text.split())[:60] in " ".join(found.output.split())

    only_the_other = ["--filter", f'{{"doc_id": {{"in": ["{OPPOSITION_DOC}"]}}}}']
    filtered = runner.invoke(app, ["search", *paths, *only_the_other, "Russian military presence"])
    assert filtered.exit_code == 0, filtered.output
    assert RUSSIA_DOC not in filtered.output
    assert OPPOSITION_DOC in filtered.output.splitlines()[0]
    bad = runner.invoke(app, ["search", *paths, "--filter", '{"year": {"gtee": 1}}', "x"])
    assert bad.exit_code == 1
    assert "unknown operator 'gtee'" in bad.output


@pytest.mark.lite
def test_build_into_milvus_fills_it_once_and_never_replaces_what_was_written(
    tmp_path: Path, onnx_dir: Path
) -> None:
    """`make run` with SEARCH_STORE=milvus: the first build fills the collection; every later
    start (another replica, a restart) finds it and serves it as it is, writes included."""
    target = MilvusTarget(uri=str(tmp_path / "milvus.db"), collection="search")
    where = ["--store", "milvus", "--milvus-uri", target.uri, "--onnx-dir", str(onnx_dir)]
    built = runner.invoke(app, ["build", "--source", str(SEEDS), *where, "--if-stale"])
    assert built.exit_code == 0, built.output
    assert built.output.splitlines()[-1].startswith("indexed 2 documents into ")

    store = MilvusStore.open(target)
    try:
        (kept,) = [s for s in store.reader().documents(0, 10) if s.document.doc_id == RUSSIA_DOC]
        item = IndexedDocument(
            Document("written-live.txt", "Written live", kept.passages[0].text),
            (Passage("written-live.txt", 0, 0, len(kept.passages[0].text), kept.passages[0].text),),
            np.ones((1, 384), dtype=np.float32) / np.sqrt(384),
        )
        store.put([item])
    finally:
        store.close()

    again = runner.invoke(app, ["build", "--source", str(SEEDS), *where, "--if-stale"])
    assert again.exit_code == 0, again.output
    assert "holds an index; serving it as it is" in again.output
    refused = runner.invoke(app, ["build", "--source", str(SEEDS), *where])
    assert refused.exit_code == 1
    assert "already holds an index; refusing to replace it" in refused.output

    store = MilvusStore.open(target, writable=False)
    try:
        assert store.get("written-live.txt") is not None
        assert store.reader().document_count == 3
    finally:
        store.close()
    found = runner.invoke(app, ["search", *where, "-k", "1", "Russian military presence"])
    assert found.exit_code == 0, found.output
    assert RUSSIA_DOC in found.output.splitlines()[0]


@pytest.mark.lite
def test_a_live_corpus_moves_between_stores_with_its_api_writes(
    tmp_path: Path, onnx_dir: Path
) -> None:
    """`build --from-index` / `--from-collection`: the documents as the store holds them now
    (written and deleted through the API), not the files it was first built from, rebuilt with
    the settings given: FAISS into Milvus (scaling out), then back with other chunking."""
    index, onnx = tmp_path / "index", ["--onnx-dir", str(onnx_dir)]
    built = runner.invoke(app, ["build", "--source", str(SEEDS), "--out", str(index), *onnx])
    assert built.exit_code == 0, built.output
    text = "Lighthouse keepers handed their lamps to automation in 1998."
    store = FaissStore.open(index)
    try:
        live = IndexedDocument(
            Document("written-live.txt", "Keepers", text, {"desk": "coast"}),
            (Passage("written-live.txt", 0, 0, len(text), text),),
            np.ones((1, 384), dtype=np.float32) / np.sqrt(384),
        )
        store.put([live])
        store.delete([OPPOSITION_DOC])
        seq = store.reader().seq
    finally:
        store.close()

    milvus = ["--store", "milvus", "--milvus-uri", str(tmp_path / "milvus.db"), *onnx]
    moved = runner.invoke(app, ["build", "--from-index", str(index), *milvus, "--no-progress"])
    assert moved.exit_code == 0, moved.output
    assert f"read 2 documents from {index} at write {seq}" in moved.output
    target = MilvusTarget(uri=str(tmp_path / "milvus.db"), collection="search")
    copied = MilvusStore.open(target, writable=False)
    try:
        assert sorted(copied.reader().document_ids()) == sorted([RUSSIA_DOC, "written-live.txt"])
        stored = copied.get("written-live.txt")
        assert stored is not None
        assert stored.document.metadata == {"desk": "coast"}
    finally:
        copied.close()
    found = runner.invoke(app, ["search", *milvus, "-k", "1", "lighthouse keepers automation"])
    assert "written-live.txt" in found.output.splitlines()[0], found.output

    back = tmp_path / "rechunked"
    into_faiss = ["--store", "faiss", "--milvus-uri", str(tmp_path / "milvus.db")]
    rechunked = ["--out", str(back), "--max-tokens", "64", *onnx]
    rebuilt = runner.invoke(app, ["build", "--from-collection", "search", *into_faiss, *rechunked])
    assert rebuilt.exit_code == 0, rebuilt.output
    manifest = read_current_manifest(back)
    assert manifest.counts.documents == 2
    assert manifest.chunking.max_tokens == 64
    assert manifest.corpus.source.startswith("Milvus collection 'search'")

    missing = runner.invoke(app, ["build", "--from-index", str(tmp_path / "nothing"), *onnx])
    assert missing.exit_code == 1
    both = runner.invoke(app, ["build", "--from-index", str(index), "--if-stale", *onnx])
    assert both.exit_code == 1
    assert "not with --if-stale" in both.output
