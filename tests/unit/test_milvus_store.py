"""The Milvus store's own rules, on Milvus Lite: index parameters, capabilities, size limits."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from indexer.build import BuildParams, new_manifest
from indexer.keyword import KeywordParams
from indexer.stores.base import DocumentRefusedError
from indexer.stores.milvus.client import MilvusTarget, full_text_support, parse_index_params
from indexer.stores.milvus.store import MilvusStore
from indexer.types import Document, IndexedDocument, Passage


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
