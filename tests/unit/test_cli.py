"""The indexer CLI's paths that need no model: staleness checks and error reporting."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from indexer.cli import app
from tests.utils.paths import SEEDS
from tests.utils.seeds import write_articles

runner = CliRunner()


def test_build_if_stale_skips_an_up_to_date_index_without_loading_the_model(
    seed_index_dir: Path,
) -> None:
    args = ["build", "--source", str(SEEDS), "--out", str(seed_index_dir), "--if-stale"]
    result = runner.invoke(
        app, [*args, "--model", "test/hashing-64", "--max-tokens", "64", "--backend", "torch"]
    )
    assert result.exit_code == 0, result.output
    assert result.output == f"the index at {seed_index_dir} is up to date (2 documents)\n"


def test_build_reports_a_missing_source(tmp_path: Path) -> None:
    result = runner.invoke(
        app, ["build", "--source", str(tmp_path / "nope"), "--out", str(tmp_path / "i")]
    )
    assert result.exit_code == 1
    assert "error: corpus source" in result.output
    assert "does not exist" in result.output


def test_build_reports_bad_chunking_settings(tmp_path: Path) -> None:
    result = runner.invoke(app, ["build", "--source", str(SEEDS), "--max-tokens", "2"])
    assert result.exit_code == 1
    assert "SEARCH_CHUNK_MAX_TOKENS: Input should be greater than or equal to 8" in result.output


def test_a_milvus_store_named_like_a_reindexed_version_is_refused(tmp_path: Path) -> None:
    result = runner.invoke(
        app,
        ["build", "--source", str(SEEDS), "--store", "milvus", "--milvus-collection", "news__r2"],
    )
    assert result.exit_code == 1
    assert "SEARCH_MILVUS_COLLECTION" in result.output
    assert "is a reindexed version of another store" in result.output


def test_build_names_skipped_files_and_refuses_an_empty_corpus(tmp_path: Path) -> None:
    source = write_articles(tmp_path / "src", {"empty.txt": "   "})
    (source / "binary.txt").write_bytes(b"\xff\xfe\x00bad")
    result = runner.invoke(
        app,
        ["build", "--source", str(source), "--out", str(tmp_path / "index"), "--model", "test/x"],
    )
    assert result.exit_code == 1
    assert "empty.txt: empty file" in result.output
    assert "binary.txt: not UTF-8" in result.output
    assert "no documents to index" in result.output
    assert not (tmp_path / "index").exists()


def test_options_fall_back_to_the_environment_then_to_the_settings_defaults(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("SEARCH_CHUNK_MAX_TOKENS", "3")
    result = runner.invoke(app, ["build", "--source", str(SEEDS)])
    assert "SEARCH_CHUNK_MAX_TOKENS: Input should be greater than or equal to 8" in result.output
    result = runner.invoke(app, ["build", "--source", "/nonexistent", "--max-tokens", "64"])
    assert "corpus source /nonexistent does not exist" in result.output  # the option won


def test_search_on_a_missing_index_says_how_to_build_it(tmp_path: Path) -> None:
    result = runner.invoke(app, ["search", "anything", "--index", str(tmp_path / "none")])
    assert result.exit_code == 1
    assert "does not exist; build it with: python -m indexer build" in result.output


def test_search_rejects_an_empty_query(tmp_path: Path) -> None:
    result = runner.invoke(app, ["search", "   ", "--index", str(tmp_path)])
    assert result.exit_code == 1
    assert "the query is empty" in result.output


def test_eval_without_the_eval_extra_says_which_extra_to_install(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # None in sys.modules makes `import pytrec_eval` raise ImportError, as when it is missing.
    monkeypatch.setitem(sys.modules, "pytrec_eval", None)
    result = runner.invoke(app, ["eval", str(tmp_path / "collection"), "--model", "test/x"])
    assert result.exit_code == 1
    # One sentence, before any work (the collection does not even exist).
    assert result.output.count("\n") == 1, result.output
    assert result.output.startswith("error: the evaluation needs pytrec-eval-terrier")
    assert "install the eval extra (pip install 'semantic-search[eval]'" in result.output


def test_reindex_rebuilds_an_index_with_new_chunking(
    seed_index_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from indexer import cli
    from indexer.stores.faiss.layout import read_current_manifest
    from tests.utils.fakes import HashingEmbedder

    monkeypatch.setattr(cli, "_embedder", lambda settings: HashingEmbedder(settings.model))
    before = read_current_manifest(seed_index_dir)
    result = runner.invoke(
        app, ["reindex", "--index", str(seed_index_dir), "--max-tokens", "32", "--no-title-prefix"]
    )
    assert result.exit_code == 0, result.output
    assert "rebuilding: 2/2" in result.output
    assert result.output.endswith("32 tokens per passage, up to write 0\n")
    after = read_current_manifest(seed_index_dir)
    assert (after.chunking.max_tokens, after.title_prefix) == (32, False)
    assert after.model == before.model
    assert after.keyword == before.keyword
    assert after.build_id != before.build_id
    assert after.counts.passages > before.counts.passages


def test_reindex_refuses_an_index_a_service_holds(seed_index_dir: Path) -> None:
    from indexer.stores.faiss.store import FaissStore

    held = FaissStore.open(seed_index_dir)  # as a running service does
    try:
        result = runner.invoke(app, ["reindex", "--index", str(seed_index_dir)])
    finally:
        held.close()
    assert result.exit_code == 2
    lines = result.output.strip().splitlines()
    assert len(lines) == 1
    assert "is in use by another process" in lines[0]
    assert "POST /admin/reindex" in lines[0]


@pytest.mark.lite
def test_reindex_rebuilds_a_milvus_store_and_drops_the_old_version(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from dataclasses import replace

    from indexer import cli
    from indexer.build import build_index
    from indexer.loading import load_corpus
    from indexer.stores.milvus import reindexing
    from indexer.stores.milvus.client import MilvusTarget, connect
    from indexer.stores.milvus.store import MilvusStore
    from tests.utils.fakes import HashingEmbedder
    from tests.utils.seeds import SEED_PARAMS

    target = MilvusTarget(uri=str(tmp_path / "milvus.db"), collection="seeds")
    params = replace(SEED_PARAMS, store="milvus", index_factory="FLAT", search_params="")
    build_index(load_corpus(SEEDS), target, HashingEmbedder(), params, source_label="seeds")
    monkeypatch.setattr(cli, "_embedder", lambda settings: HashingEmbedder(settings.model))
    monkeypatch.setattr(reindexing, "SWITCH_GRACE_SECONDS", 0.5)
    monkeypatch.setenv("SEARCH_STORE", "milvus")
    monkeypatch.setenv("SEARCH_MILVUS_URI", target.uri)
    monkeypatch.setenv("SEARCH_MILVUS_COLLECTION", "seeds")
    monkeypatch.setenv("SEARCH_MODEL", HashingEmbedder.model_name)
    result = runner.invoke(app, ["reindex", "--max-tokens", "32"])
    assert result.exit_code == 0, result.output
    assert result.output.endswith("32 tokens per passage, up to write 0\n")
    store = MilvusStore.open(target, writable=False)
    try:
        assert store.manifest.chunking.max_tokens == 32
        assert store.reader().document_count == 2
        assert store.version.passages == "seeds__r1_passages"
        names = connect(target).list_collections()
        assert "seeds_passages" not in names  # the old version, dropped after its grace
        assert "seeds_meta" in names  # which names the version served
    finally:
        store.close()
