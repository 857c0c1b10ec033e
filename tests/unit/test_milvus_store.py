"""The Milvus store's own rules, on Milvus Lite: index parameters, capabilities, size limits."""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Sequence
from dataclasses import replace
from functools import partial
from itertools import islice
from pathlib import Path

import numpy as np
import pytest

from indexer.build import BuildParams, new_manifest
from indexer.keyword import Analyzer, KeywordParams
from indexer.stores import KINDS, Store
from indexer.stores.base import DocumentRefusedError, Rebuild
from indexer.stores.milvus import schema
from indexer.stores.milvus import store as milvus_store
from indexer.stores.milvus.client import (
    MilvusTarget,
    connect,
    full_text_support,
    parse_index_params,
)
from indexer.stores.milvus.store import MilvusStore
from indexer.stores.milvus.terms import OUR_TERMS, RAW_TEXT, analysed, milvus_token
from indexer.types import Document, IndexedDocument, Passage
from tests.utils.milvus_stores import LITE_AND_SERVER, milvus_uri
from tests.utils.needs import shared

FAISS = KINDS["faiss"]


def test_index_parameters_split_into_build_and_search_time() -> None:
    assert parse_index_params("HNSW", "M=16, efConstruction=200,ef=128") == (
        {"M": 16, "efConstruction": 200},
        {"ef": 128},
    )
    assert parse_index_params("IVF_FLAT", "nlist=1024,nprobe=16") == (
        {"nlist": 1024},
        {"nprobe": 16},
    )
    assert parse_index_params("FLAT", "") == ({}, {})
    # Numbers in any notation Python reads are numbers; anything else is passed on as text.
    assert parse_index_params("IVF_SQ8", "nlist=1e3, radius=1e-3, level=0.5, x=IP, y=nan") == (
        {"nlist": 1000, "radius": 0.001, "level": 0.5, "x": "IP", "y": "nan"},
        {},
    )
    with pytest.raises(ValueError, match="not one of"):
        parse_index_params("HNSW32", "")
    with pytest.raises(ValueError, match="is not name=value"):
        parse_index_params("HNSW", "M")
    # Ranges Milvus checks, checked here first: Milvus Lite does not, and M=0 aborts it.
    for refused in ("M=1", "M=0", "M=4096", "M=8.5", "efConstruction=0", "nlist=0"):
        with pytest.raises(ValueError, match="a whole number from"):
            parse_index_params("HNSW", refused)


@pytest.mark.parametrize(
    ("version", "has_it"),
    [
        ("milvus_lite-3.2.2", True),
        ("v2.3.5-lite", False),
        ("v2.4.9", False),
        ("v2.5.16", True),
        ("2.6.0", True),
        ("unknown", False),
    ],
)
def test_full_text_search_comes_with_milvus_2_5_and_milvus_lite(version: str, has_it: bool) -> None:
    assert full_text_support(version) is has_it


def test_a_collection_name_is_checked_before_milvus_sees_it() -> None:
    with pytest.raises(ValueError, match="letters, digits and underscores"):
        MilvusTarget(uri="x.db", collection="my-index")


@pytest.mark.lite
def test_a_passage_longer_than_a_milvus_string_is_refused_before_anything_is_written(
    tmp_path: Path,
) -> None:
    target = MilvusTarget(uri=str(tmp_path / "milvus.db"), collection="limits")
    manifest = new_manifest("test/x", 4, BuildParams(store="milvus", index_factory="FLAT"), "t")
    store = MilvusStore.create(target, manifest, [])
    try:
        text = "é" * 40_000  # 80 000 bytes in UTF-8: a run of text with no spaces
        fine = Document("fine.txt", "Fine", "short")
        huge = Document("huge.txt", "Huge", text)
        items = [
            IndexedDocument(fine, (Passage("fine.txt", 0, 0, 5, "short"),), np.ones((1, 4), "f4")),
            IndexedDocument(
                huge, (Passage("huge.txt", 0, 0, len(text), text),), np.ones((1, 4), "f4")
            ),
        ]
        with pytest.raises(DocumentRefusedError, match=r"'huge.txt': passage 0 is 80000 bytes"):
            store.put(items)
        assert store.get("fine.txt") is None
        assert store.seq == 0
    finally:
        store.close()


@pytest.mark.lite
def test_milvus_ranks_with_the_manifests_bm25_k1(tmp_path: Path) -> None:
    """pymilvus 3.0.2 flattens ``params={"bm25_k1": ...}`` into pairs Milvus Lite does not read
    (it then uses k1 = 1.5 whatever the manifest says): the nested form is the one it reads."""
    texts = {"few.txt": "harbour pilots", "many.txt": "harbour harbour harbour harbour pilots"}

    def scores(k1: float) -> dict[str, float]:
        params = BuildParams(store="milvus", index_factory="FLAT", keyword=KeywordParams(k1=k1))
        target = MilvusTarget(uri=str(tmp_path / f"k1-{k1}.db"), collection="bm25")
        items = [
            IndexedDocument(
                Document(doc_id, doc_id, text),
                (Passage(doc_id, 0, 0, len(text), text),),
                np.ones((1, 4), "f4"),
            )
            for doc_id, text in texts.items()
        ]
        store = MilvusStore.create(target, new_manifest("test/x", 4, params, "t"), items)
        try:
            reader = store.reader()
            values, ids = reader.keyword_search("harbour", 2)
            return {
                reader.passage(int(i)).doc_id: float(v) for v, i in zip(values, ids, strict=True)
            }
        finally:
            store.close()

    low, high = scores(0.2), scores(5.0)
    # More repeats of the word count for more as k1 grows; with k1 ignored the two are equal.
    assert low["many.txt"] / low["few.txt"] < high["many.txt"] / high["few.txt"]


def cisi_items(count: int) -> list[IndexedDocument]:
    """The first ``count`` CISI documents, each one passage (the text whole)."""
    items = []
    with shared("benchmarks/cisi/corpus.jsonl").open(encoding="utf-8") as handle:
        for line in islice(handle, count):
            record = json.loads(line)
            doc_id, text = str(record["_id"]), record["text"]
            items.append(
                IndexedDocument(
                    Document(doc_id, record["title"], text),
                    (Passage(doc_id, 0, 0, len(text), text),),
                    np.ones((1, 4), "f4"),
                )
            )
    return items


def cisi_queries() -> list[str]:
    with shared("benchmarks/cisi/queries.jsonl").open(encoding="utf-8") as handle:
        return [json.loads(line)["text"] for line in handle if line.strip()]


def top(store: Store, query: str, k: int) -> tuple[list[str], np.ndarray]:
    reader = store.reader()
    scores, ids = reader.keyword_search(query, k)
    return [reader.passage(int(i)).doc_id for i in ids], scores


def test_our_terms_reach_milvus_as_tokens_any_tokenizer_keeps_whole() -> None:
    terms = ["retriev", "1971", "café", "東京大学", "snake_case", "qqa", "qq"]
    tokens = [milvus_token(t) for t in terms]
    assert tokens[:2] == ["retriev", "1971"]  # plain terms read as they are
    assert all(re.fullmatch(r"[a-z0-9]+", t) for t in tokens)
    assert len(set(tokens)) == len(terms)
    assert all(t.startswith("qq") and len(t) == 18 for t in tokens[2:])
    assert analysed(Analyzer(), "The Cafés of 東京大学") == f"{milvus_token('café')} {tokens[3]}"


@pytest.mark.lite
def test_milvus_lite_ranks_keyword_searches_as_the_faiss_store(tmp_path: Path) -> None:
    """Milvus's BM25 counts our analyser's terms (stop words out, stems), stored beside the
    passage text: the same top 10 in the same order as the FAISS store's keyword index, for
    every CISI query, and the passages' own text in the results."""
    extra = {
        "cafe": "Café society in Zürich",
        "tokyo": "東京大学 の 図書館",
        "snake": "snake_case names",
    }
    items = cisi_items(300) + [
        IndexedDocument(Document(d, d, t), (Passage(d, 0, 0, len(t), t),), np.ones((1, 4), "f4"))
        for d, t in extra.items()
    ]
    params = BuildParams(store="milvus", index_factory="FLAT")
    manifest = new_manifest("test/x", 4, params, "t")
    milvus = MilvusStore.create(
        MilvusTarget(uri=str(tmp_path / "m.db"), collection="c"), manifest, items
    )
    faiss = FAISS.store.create(
        FAISS.location_in(tmp_path, "faiss"),
        new_manifest("test/x", 4, replace(params, store="faiss", index_factory="Flat"), "t"),
        items,
    )
    try:
        compared = 0
        # Terms beyond [a-z0-9] too (a server's tokenizer splits at "_"; see terms.py).
        for query in [*cisi_queries(), "cafés of zurich", "東京大学", "snake_case"]:
            expected, faiss_scores = top(faiss, query, 10)
            found, milvus_scores = top(milvus, query, 10)
            assert found == expected, query
            # Milvus's BM25 is Lucene's times (k1 + 1): the same IDF and lengths as ours.
            np.testing.assert_allclose(milvus_scores, faiss_scores * 2.2, rtol=1e-4)
            compared += bool(expected)
        assert compared > 73
        # Stemmed: "retrieving" finds documents that say "retrieval"; the text is the passage's.
        reader = milvus.reader()
        _, ids = reader.keyword_search("retrieving", 1000)
        texts = [reader.passage(int(i)).text for i in ids]
        assert any("retrieval" in t and "retrieving" not in t for t in texts)
        assert {t for t in texts} <= {i.passages[0].text for i in items}
    finally:
        milvus.close()
        faiss.close()


@pytest.mark.lite
def test_a_store_of_milvus_analysed_text_still_serves_until_a_reindex_moves_it_to_ours(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """A store made before kept the passage text for Milvus's analyzer: it is opened, searched
    and written as it is (with a warning naming the reindex), and a reindex rebuilds it with
    our terms, keeping every document."""
    target = MilvusTarget(uri=str(tmp_path / "m.db"), collection="old")
    manifest = new_manifest("test/x", 4, BuildParams(store="milvus", index_factory="FLAT"), "t")
    items = cisi_items(60)
    made_before = partial(schema.create_collections, keyword=RAW_TEXT)
    with monkeypatch.context() as patched:
        patched.setattr(milvus_store, "create_collections", made_before)
        MilvusStore.create(target, manifest, []).close()
    with caplog.at_level(logging.WARNING, logger="indexer"):
        store = MilvusStore.open(target)
    try:
        assert store.version.keyword == RAW_TEXT
        assert "python -m indexer reindex" in caplog.text
        store.put(items)
        store.refresh()
        # Milvus's analysis: the word as written matches, its other forms do not.
        assert top(store, "retrieval", 100)[0]
        late = "Zeppelins retrieve the ships"
        store.put(
            [
                IndexedDocument(
                    Document("late", "Late", late),
                    (Passage("late", 0, 0, len(late), late),),
                    np.ones((1, 4), "f4"),
                )
            ]
        )
        store.refresh()
        assert top(store, "zeppelins", 10)[0] == ["late"]
        assert top(store, "zeppelin", 10)[0] == []

        def prepare(documents: Sequence[Document]) -> list[IndexedDocument]:
            return [
                IndexedDocument(
                    d, (Passage(d.doc_id, 0, 0, len(d.text), d.text),), np.ones((1, 4), "f4")
                )
                for d in documents
            ]

        store.reindex(Rebuild(store.manifest.model_copy(), prepare), grace=0)
        assert store.version.keyword == OUR_TERMS
        assert top(store, "zeppelin", 10)[0] == ["late"]
        assert store.reader().document_count == 61
    finally:
        store.close()
    reopened = MilvusStore.open(target)
    try:
        assert reopened.version.keyword == OUR_TERMS  # read back from the schema
        assert top(reopened, "zeppelin", 10)[0] == ["late"]
    finally:
        reopened.close()


@pytest.mark.parametrize("where", LITE_AND_SERVER)
def test_milvus_builds_the_vector_index_with_the_manifests_parameters(
    where: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    """pymilvus 3.0.2 sends ``params={"M": 8}`` as flat pairs: the 2.3.5 server reads them,
    Milvus Lite ignores them (describe_index shows none, and even M=0 passes). Both read the
    nested form (the server refuses an out-of-range value in it; Lite builds with it)."""
    target = MilvusTarget(uri=milvus_uri(where, request, tmp_path), collection=f"params_{where}")
    build = BuildParams(
        store="milvus", index_factory="HNSW", search_params="M=8,efConstruction=64,ef=32"
    )
    store = MilvusStore.create(target, new_manifest("test/x", 4, build, "t"), [])
    client = connect(target)
    try:
        described = client.describe_index(store.version.passages, "vector")
    finally:
        client.close()
        store.close()
        MilvusStore.drop(target)
    # Read back in whichever form Milvus keeps them; the search-time ef is not the index's.
    given = {**described, **(described.get("params") or {})}
    assert {name: str(given.get(name)) for name in ("M", "efConstruction")} == {
        "M": "8",
        "efConstruction": "64",
    }
