from __future__ import annotations

import pytest

from indexer.index import IndexLoadError, SearchIndex
from indexer.search import Searcher, UnknownDocumentError
from tests.conftest import OPPOSITION_DOC, RUSSIA_DOC
from tests.fakes import HashingEmbedder


@pytest.fixture
def searcher(seed_index: SearchIndex) -> Searcher:
    return Searcher(seed_index, HashingEmbedder())


def test_hits_are_ranked_by_score_and_trace_back_to_their_document(searcher: Searcher) -> None:
    hits = searcher.search("Russian troops in Caracas", k=5)
    assert [h.rank for h in hits] == [1, 2, 3, 4, 5]
    assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)
    best = hits[0]
    assert "Russian troops" in best.passage.text
    document = searcher.index.documents[best.passage.doc_id]
    assert document.text[best.passage.start : best.passage.end] == best.passage.text
    assert best.title == document.title


def test_offset_pages_through_one_consistent_ranking(searcher: Searcher) -> None:
    everything = searcher.search("Venezuela opposition", k=8)
    second_page = searcher.search("Venezuela opposition", k=4, offset=4)
    assert [h.passage for h in second_page] == [h.passage for h in everything[4:]]
    assert [h.rank for h in second_page] == [5, 6, 7, 8]


def test_paging_past_the_end_returns_nothing(searcher: Searcher) -> None:
    total = len(searcher.index.passages)
    assert len(searcher.search("Venezuela", k=100)) == total
    assert searcher.search("Venezuela", k=5, offset=total) == []


def test_sources_restrict_results_to_those_documents(searcher: Searcher) -> None:
    hits = searcher.search("Russian troops in Caracas", k=100, sources=[OPPOSITION_DOC])
    assert hits
    assert {h.passage.doc_id for h in hits} == {OPPOSITION_DOC}
    assert len(hits) == searcher.index.passage_count(OPPOSITION_DOC)
    both = searcher.search("Russian troops in Caracas", k=100, sources=[OPPOSITION_DOC, RUSSIA_DOC])
    assert len(both) == len(searcher.index.passages)


def test_unknown_sources_are_named(searcher: Searcher) -> None:
    with pytest.raises(UnknownDocumentError) as raised:
        searcher.search("x", sources=[RUSSIA_DOC, "nope.txt", "also-nope.txt"])
    assert raised.value.doc_ids == ["also-nope.txt", "nope.txt"]


def test_min_score_drops_weaker_passages(searcher: Searcher) -> None:
    hits = searcher.search("Russian troops in Caracas", k=100)
    threshold = hits[2].score
    kept = searcher.search("Russian troops in Caracas", k=100, min_score=threshold)
    assert kept
    assert all(h.score >= threshold for h in kept)
    assert len(kept) < len(hits)
    assert searcher.search("Russian troops in Caracas", min_score=1.0) == []


def test_a_searcher_refuses_an_index_built_with_another_model(seed_index: SearchIndex) -> None:
    with pytest.raises(IndexLoadError, match="built with model 'test/hashing-64'"):
        Searcher(seed_index, HashingEmbedder("another/model"))
