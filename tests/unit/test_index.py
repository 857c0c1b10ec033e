from __future__ import annotations

import json
from pathlib import Path
from unittest import mock

import faiss
import pytest

from indexer.index import (
    BuildError,
    BuildParams,
    IndexLoadError,
    SearchIndex,
    build_index,
    stale_reason,
)
from indexer.loading import load_corpus
from indexer.manifest import FORMAT_VERSION, read_manifest
from tests.conftest import SEED_PARAMS, SEEDS, write_articles
from tests.fakes import HashingEmbedder


def test_index_directory_has_manifest_vectors_passages_and_documents(seed_index_dir: Path) -> None:
    assert sorted(p.name for p in seed_index_dir.iterdir()) == [
        "bm25",
        "documents.jsonl",
        "manifest.json",
        "passages.jsonl",
        "vectors.faiss",
    ]
    manifest = json.loads((seed_index_dir / "manifest.json").read_text())
    assert manifest["format_version"] == FORMAT_VERSION
    assert manifest["model"] == {"name": "test/hashing-64", "dimension": 64}
    assert manifest["chunking"] == {"max_tokens": 64, "overlap": 0.2, "segmenter": "nupunkt"}
    assert manifest["keyword"] == {
        "k1": 1.2,
        "b": 0.75,
        "method": "lucene",
        "stemmer": "english",
    }
    assert manifest["title_prefix"] is True
    assert manifest["counts"]["documents"] == 2
    assert set(manifest["corpus"]["checksums"]) == {p.name for p in SEEDS.iterdir()}
    passages = [
        json.loads(line) for line in (seed_index_dir / "passages.jsonl").read_text().splitlines()
    ]
    assert manifest["counts"]["passages"] == len(passages) > 2
    assert manifest["built_at"].endswith("Z")


def test_opened_index_round_trips_passages_against_documents(seed_index: SearchIndex) -> None:
    assert len(seed_index.store) == len(seed_index.passages)
    for passage in seed_index.passages:
        document = seed_index.documents[passage.doc_id]
        assert document.text[passage.start : passage.end] == passage.text


def test_rebuild_replaces_the_index_and_leaves_no_temporary_directories(
    seed_index_dir: Path, tmp_path: Path
) -> None:
    corpus = load_corpus(write_articles(tmp_path / "other", {"x.txt": "Other\n\nA new corpus."}))
    build_index(corpus, seed_index_dir, HashingEmbedder(), BuildParams(), source_label="other")
    assert SearchIndex.open(seed_index_dir).manifest.counts.documents == 1
    assert sorted(p.name for p in seed_index_dir.parent.iterdir()) == ["index", "other"]


def test_a_crash_mid_build_keeps_the_previous_index(seed_index_dir: Path) -> None:
    before = (seed_index_dir / "manifest.json").read_bytes()
    with (
        mock.patch("indexer.index.write_manifest", side_effect=OSError("disk full")),
        pytest.raises(OSError, match="disk full"),
    ):
        build_index(
            load_corpus(SEEDS),
            seed_index_dir,
            HashingEmbedder(),
            BuildParams(),
            source_label="s",
        )
    assert (seed_index_dir / "manifest.json").read_bytes() == before
    assert [p.name for p in seed_index_dir.parent.iterdir()] == ["index"]


def test_build_refuses_to_overwrite_a_directory_that_is_not_an_index(tmp_path: Path) -> None:
    precious = write_articles(tmp_path / "notes", {"keep.txt": "Do not delete me."})
    with pytest.raises(BuildError, match="not an index directory"):
        build_index(
            load_corpus(SEEDS), precious, HashingEmbedder(), BuildParams(), source_label="s"
        )
    assert (precious / "keep.txt").read_text() == "Do not delete me."


def test_build_with_no_documents_fails_clearly(tmp_path: Path) -> None:
    corpus = load_corpus(write_articles(tmp_path / "src", {"empty.txt": ""}))
    with pytest.raises(BuildError, match="no documents to index"):
        build_index(corpus, tmp_path / "out", HashingEmbedder(), BuildParams(), source_label="src")


def test_stale_reason_detects_every_kind_of_change(seed_index_dir: Path, tmp_path: Path) -> None:
    corpus = load_corpus(SEEDS)
    params = SEED_PARAMS
    assert stale_reason(seed_index_dir, corpus, "test/hashing-64", params) is None
    assert "model" in (stale_reason(seed_index_dir, corpus, "other-model", params) or "")
    assert "max_tokens=128" in (
        stale_reason(seed_index_dir, corpus, "test/hashing-64", BuildParams()) or ""
    )
    edited = write_articles(
        tmp_path / "edited", {p.name: p.read_text(encoding="utf-8") for p in SEEDS.iterdir()}
    )
    (edited / "000_0909487afc4c8a60.txt").write_text("Changed\n\ntext", encoding="utf-8")
    (edited / "new.txt").write_text("New\n\narticle", encoding="utf-8")
    reason = stale_reason(seed_index_dir, load_corpus(edited), "test/hashing-64", params)
    assert reason == "the corpus changed (1 added, 1 changed, 0 removed)"
    assert "does not exist" in (
        stale_reason(tmp_path / "none", corpus, "test/hashing-64", params) or ""
    )


def test_opening_a_missing_or_damaged_index_says_what_is_wrong(
    seed_index_dir: Path, tmp_path: Path
) -> None:
    with pytest.raises(IndexLoadError, match=r"manifest\.json does not exist"):
        SearchIndex.open(tmp_path / "missing")
    (seed_index_dir / "vectors.faiss").write_bytes(b"garbage")
    with pytest.raises(IndexLoadError, match="is damaged"):
        SearchIndex.open(seed_index_dir)
    (seed_index_dir / "manifest.json").write_text("{}")
    with pytest.raises(IndexLoadError, match="not a valid manifest"):
        SearchIndex.open(seed_index_dir)


def test_manifest_of_a_future_format_is_refused(seed_index_dir: Path) -> None:
    path = seed_index_dir / "manifest.json"
    manifest = json.loads(path.read_text())
    manifest["format_version"] = FORMAT_VERSION + 1
    path.write_text(json.dumps(manifest))
    with pytest.raises(ValueError, match="format version"):
        read_manifest(seed_index_dir)


def test_the_index_directory_is_readable_by_other_users(seed_index_dir: Path) -> None:
    # The service often runs as another user than the one who built the index.
    assert seed_index_dir.stat().st_mode & 0o777 == 0o755


def test_build_refuses_to_replace_a_file(tmp_path: Path) -> None:
    target = tmp_path / "index"
    target.write_text("precious")
    with pytest.raises(BuildError, match="not a directory"):
        build_index(load_corpus(SEEDS), target, HashingEmbedder(), BuildParams(), source_label="s")
    assert target.read_text() == "precious"


def test_the_vector_index_type_is_a_build_setting_recorded_in_the_manifest(tmp_path: Path) -> None:
    # efConstruction shapes the build (set before vectors are added), efSearch each search.
    params = BuildParams(index_factory="HNSW16", search_params="efConstruction=77,efSearch=64")
    out = tmp_path / "hnsw"
    build_index(load_corpus(SEEDS), out, HashingEmbedder(), params, source_label="seeds")
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["store"] == {
        "kind": "faiss",
        "spec": "HNSW16",
        "search_params": "efConstruction=77,efSearch=64",
    }
    stored = faiss.read_index(str(out / "vectors.faiss"))  # owns the inner index: keep it
    hnsw = faiss.downcast_index(stored.index).hnsw
    assert (hnsw.efConstruction, hnsw.efSearch) == (77, 64)
    index = SearchIndex.open(out)
    vector = HashingEmbedder().encode([index.passages[3].text])
    assert index.store.search(vector, 1)[1][0].tolist() == [3]
    corpus = load_corpus(SEEDS)
    assert stale_reason(out, corpus, "test/hashing-64", params) is None
    assert "HNSW16" in (stale_reason(out, corpus, "test/hashing-64", BuildParams()) or "")


@pytest.mark.parametrize(
    ("params", "message"),
    [
        (BuildParams(index_factory="HNSW-please"), "FAISS cannot make index 'HNSW-please'"),
        (BuildParams(search_params="nprobe=8"), "could not set parameter nprobe"),  # Flat has none
        (BuildParams(index_factory="IVF1024,Flat"), "Number of training points"),
    ],
)
def test_bad_vector_index_settings_fail_the_build_in_one_line(
    tmp_path: Path, params: BuildParams, message: str
) -> None:
    embedder = HashingEmbedder()
    with pytest.raises(BuildError, match=message) as failure:
        build_index(load_corpus(SEEDS), tmp_path / "index", embedder, params, source_label="s")
    assert "\n" not in str(failure.value)
    assert not (tmp_path / "index").exists()
    if "IVF" not in params.index_factory:  # a mistyped setting fails before the embedding work
        assert embedder.encoded == []
