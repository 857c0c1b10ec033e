from __future__ import annotations

import json
from pathlib import Path
from unittest import mock

import faiss
import pytest

from indexer.build import BuildError, BuildParams, build_index, stale_at
from indexer.ingest import Preparer
from indexer.loading import load_corpus
from indexer.manifest import FORMAT_VERSION, read_manifest
from indexer.stores.base import StoreMissingError, StoreOpenError
from indexer.stores.faiss.kind import api_writes
from indexer.stores.faiss.store import FaissStore
from indexer.types import Document
from tests.utils.fakes import HashingEmbedder
from tests.utils.paths import SEEDS
from tests.utils.seeds import SEED_PARAMS, write_articles


def version(index_dir: Path) -> Path:
    return index_dir / (index_dir / "CURRENT").read_text().strip()


def test_index_directory_has_a_current_version_and_a_translog(seed_index_dir: Path) -> None:
    assert sorted(p.name for p in seed_index_dir.iterdir()) == ["CURRENT", "translog", "v000001"]
    assert sorted(p.name for p in version(seed_index_dir).iterdir()) == [
        "documents.jsonl",
        "keyword",
        "manifest.json",
        "passages.jsonl",
        "vectors.faiss",
    ]
    manifest = json.loads((version(seed_index_dir) / "manifest.json").read_text())
    assert manifest["format_version"] == FORMAT_VERSION
    assert manifest["model"] == {"name": "test/hashing-64", "dimension": 64}
    assert manifest["chunking"] == {"max_tokens": 64, "overlap": 0.2, "segmenter": "nupunkt"}
    assert manifest["keyword"] == {"k1": 1.2, "b": 0.75, "stemmer": "english"}
    assert manifest["title_prefix"] is True
    assert manifest["seq"] == 0
    assert manifest["counts"]["documents"] == 2
    assert set(manifest["corpus"]["checksums"]) == {p.name for p in SEEDS.iterdir()}
    passages = [
        json.loads(line)
        for line in (version(seed_index_dir) / "passages.jsonl").read_text().splitlines()
    ]
    assert manifest["counts"]["passages"] == len(passages) > 2
    assert set(passages[0]) == {"doc_id", "chunk_id", "start", "end"}  # the text is the document's
    assert manifest["built_at"].endswith("Z")


def test_opened_index_round_trips_passages_against_documents(seed_store: FaissStore) -> None:
    reader = seed_store.reader()
    stored = reader.documents(0, 10)
    assert sum(len(s.passages) for s in stored) == reader.passage_count
    for document in stored:
        for passage in document.passages:
            assert document.document.text[passage.start : passage.end] == passage.text


def test_rebuild_replaces_the_index_and_leaves_no_temporary_directories(
    seed_index_dir: Path, tmp_path: Path
) -> None:
    corpus = load_corpus(write_articles(tmp_path / "other", {"x.txt": "Other\n\nA new corpus."}))
    build_index(corpus, seed_index_dir, HashingEmbedder(), BuildParams(), source_label="other")
    assert read_manifest(version(seed_index_dir)).counts.documents == 1
    assert sorted(p.name for p in seed_index_dir.parent.iterdir()) == ["index", "other"]


def test_a_crash_mid_build_keeps_the_previous_index(seed_index_dir: Path) -> None:
    before = (version(seed_index_dir) / "manifest.json").read_bytes()
    with (
        mock.patch("indexer.stores.faiss.state.write_manifest", side_effect=OSError("disk full")),
        pytest.raises(OSError, match="disk full"),
    ):
        build_index(
            load_corpus(SEEDS),
            seed_index_dir,
            HashingEmbedder(),
            BuildParams(),
            source_label="s",
        )
    assert (version(seed_index_dir) / "manifest.json").read_bytes() == before
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
    assert stale_at(seed_index_dir, corpus, "test/hashing-64", params) is None
    assert "model" in (stale_at(seed_index_dir, corpus, "other-model", params) or "")
    assert "max_tokens=128" in (
        stale_at(seed_index_dir, corpus, "test/hashing-64", BuildParams()) or ""
    )
    edited = write_articles(
        tmp_path / "edited", {p.name: p.read_text(encoding="utf-8") for p in SEEDS.iterdir()}
    )
    (edited / "000_0909487afc4c8a60.txt").write_text("Changed\n\ntext", encoding="utf-8")
    (edited / "new.txt").write_text("New\n\narticle", encoding="utf-8")
    reason = stale_at(seed_index_dir, load_corpus(edited), "test/hashing-64", params)
    assert reason == "the corpus changed (1 added, 1 changed, 0 removed)"
    assert "does not exist" in (
        stale_at(tmp_path / "none", corpus, "test/hashing-64", params) or ""
    )


def test_opening_a_missing_or_damaged_index_says_what_is_wrong(
    seed_index_dir: Path, tmp_path: Path
) -> None:
    with pytest.raises(StoreMissingError, match="does not exist"):
        FaissStore.open(tmp_path / "missing")
    (version(seed_index_dir) / "vectors.faiss").write_bytes(b"garbage")
    with pytest.raises(StoreOpenError, match="is damaged"):
        FaissStore.open(seed_index_dir)
    (version(seed_index_dir) / "manifest.json").write_text("{}")
    with pytest.raises(StoreOpenError, match="not a valid manifest"):
        FaissStore.open(seed_index_dir)


def test_a_version_whose_files_disagree_with_its_manifest_is_refused(seed_index_dir: Path) -> None:
    passages = version(seed_index_dir) / "passages.jsonl"
    passages.write_text("".join(passages.read_text().splitlines(keepends=True)[:-1]))
    with pytest.raises(StoreOpenError, match=r"passages\.jsonl does not match its checksum"):
        FaissStore.open(seed_index_dir)
    # A version from before file checksums: the counts still catch it.
    manifest = version(seed_index_dir) / "manifest.json"
    manifest.write_text(json.dumps({**json.loads(manifest.read_text()), "files": {}}))
    with pytest.raises(StoreOpenError, match="its manifest says"):
        FaissStore.open(seed_index_dir)


def test_a_damaged_vectors_file_is_refused_at_open_in_one_line(seed_index_dir: Path) -> None:
    vectors = version(seed_index_dir) / "vectors.faiss"
    data = bytearray(vectors.read_bytes())
    data[-5] ^= 0x01  # a vector changed: FAISS would load it without a word
    vectors.write_bytes(bytes(data))
    with pytest.raises(
        StoreOpenError, match=r"vectors\.faiss does not match its checksum"
    ) as caught:
        FaissStore.open(seed_index_dir)
    assert "\n" not in str(caught.value)


def test_an_index_of_the_previous_format_is_refused_with_its_age(tmp_path: Path) -> None:
    old = write_articles(tmp_path / "old", {"manifest.json": '{"format_version": 2}'})
    with pytest.raises(StoreOpenError, match="older format"):
        FaissStore.open(old)


def test_manifest_of_a_future_format_is_refused(seed_index_dir: Path) -> None:
    path = version(seed_index_dir) / "manifest.json"
    manifest = json.loads(path.read_text())
    manifest["format_version"] = FORMAT_VERSION + 1
    path.write_text(json.dumps(manifest))
    with pytest.raises(ValueError, match="format version"):
        read_manifest(version(seed_index_dir))


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
    manifest = json.loads((version(out) / "manifest.json").read_text())
    assert manifest["store"] == {
        "kind": "faiss",
        "spec": "HNSW16",
        "search_params": "efConstruction=77,efSearch=64",
    }
    hnsw = faiss.downcast_index(faiss.read_index(str(version(out) / "vectors.faiss"))).hnsw
    assert (hnsw.efConstruction, hnsw.efSearch) == (77, 64)
    store = FaissStore.open(out, writable=False)
    reader = store.reader()
    vector = HashingEmbedder().encode([reader.passage(3).text])
    assert reader.vector_search(vector, 1)[1].tolist() == [3]
    store.close()
    corpus = load_corpus(SEEDS)
    assert stale_at(out, corpus, "test/hashing-64", params) is None
    assert "HNSW16" in (stale_at(out, corpus, "test/hashing-64", BuildParams()) or "")


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


def _write_through_the_api(index_dir: Path, doc_id: str = "live.txt") -> None:
    store = FaissStore.open(index_dir)
    preparer = Preparer(HashingEmbedder(), SEED_PARAMS.chunking, True)
    store.put(preparer.prepare([Document(doc_id, "Live", "Written through the API.")]))
    store.close()


def test_an_index_that_took_writes_is_never_replaced_unless_forced(seed_index_dir: Path) -> None:
    assert api_writes(seed_index_dir) == 0
    _write_through_the_api(seed_index_dir)
    assert api_writes(seed_index_dir) == 1
    corpus, embedder = load_corpus(SEEDS), HashingEmbedder()
    with pytest.raises(BuildError, match="holds 1 write made through the API") as refused:
        build_index(corpus, seed_index_dir, embedder, SEED_PARAMS, source_label="seeds")
    assert "--force" in str(refused.value)
    store = FaissStore.open(seed_index_dir, writable=False)
    assert store.get("live.txt") is not None
    store.close()
    build_index(corpus, seed_index_dir, embedder, SEED_PARAMS, source_label="seeds", force=True)
    assert api_writes(seed_index_dir) == 0


def test_an_index_held_by_a_running_store_is_never_replaced(seed_index_dir: Path) -> None:
    serving = FaissStore.open(seed_index_dir)  # what the service does
    try:
        with pytest.raises(BuildError, match="in use by another process"):
            build_index(
                load_corpus(SEEDS),
                seed_index_dir,
                HashingEmbedder(),
                SEED_PARAMS,
                source_label="seeds",
                force=True,
            )
    finally:
        serving.close()
