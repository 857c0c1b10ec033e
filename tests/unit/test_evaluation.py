from __future__ import annotations

import json
from pathlib import Path

import pytest

from indexer.build import BuildParams, build_index
from indexer.evaluation import as_json, evaluate, format_table, load_collection
from indexer.loading import load_corpus
from indexer.search import Searcher
from indexer.stores.faiss.store import FaissStore
from tests.utils.fakes import HashingEmbedder

CORPUS = [
    {"_id": "d1", "title": "Cataloguing", "text": "Library cataloguing rules for books."},
    {"_id": "d2", "title": "Indexing", "text": "Automatic indexing of scientific abstracts."},
    {"_id": "d3", "title": "Citations", "text": "Citation analysis of journals and indexing."},
]
QUERIES = [
    {"_id": "q1", "text": "cataloguing books"},
    {"_id": "q2", "text": "citation indexing"},
    {"_id": "q3", "text": "a query nobody judged"},
]
QRELS = "query-id\tcorpus-id\tscore\nq1\td1\t1\nq2\td3\t2\nq2\td2\t1\n"


@pytest.fixture
def collection_dir(tmp_path: Path) -> Path:
    root = tmp_path / "tiny"
    (root / "qrels").mkdir(parents=True)
    (root / "corpus.jsonl").write_text("".join(json.dumps(d) + "\n" for d in CORPUS))
    (root / "queries.jsonl").write_text("".join(json.dumps(q) + "\n" for q in QUERIES))
    (root / "qrels" / "test.tsv").write_text(QRELS)
    return root


def test_only_judged_queries_are_loaded_with_graded_judgements(collection_dir: Path) -> None:
    collection = load_collection(collection_dir)
    assert collection.queries == {"q1": "cataloguing books", "q2": "citation indexing"}
    assert collection.qrels == {"q1": {"d1": 1}, "q2": {"d3": 2, "d2": 1}}


def test_evaluate_scores_documents_by_their_best_passage(
    collection_dir: Path, tmp_path: Path
) -> None:
    out = tmp_path / "index"
    corpus = load_corpus(collection_dir / "corpus.jsonl")
    build_index(corpus, out, HashingEmbedder(), BuildParams(), source_label="tiny")
    searcher = Searcher(FaissStore.open(out, writable=False), HashingEmbedder())
    [keyword] = evaluate(searcher, load_collection(collection_dir), ["keyword"])
    # q1 finds d1 first; q2 finds d3 then d2 (the ideal order): every measure is perfect.
    assert keyword.mode == "keyword"
    assert keyword.queries == 2
    assert (keyword.ndcg_at_10, keyword.recall_at_100, keyword.mrr_at_10) == (1.0, 1.0, 1.0)
    assert keyword.queries_per_second > 0

    table = format_table([keyword])
    assert table.splitlines()[0].split() == ["mode", "nDCG@10", "Recall@100", "MRR@10", "queries/s"]
    assert table.splitlines()[1].startswith("keyword      1.0000")
    assert json.loads(as_json([keyword], collection="tiny"))["results"][0]["ndcg_at_10"] == 1.0
