from __future__ import annotations

import pytest

from indexer.filters import Filter
from indexer.fusion import FusionParams
from indexer.search import MODES, Mode, ModelMismatchError, Query, Searcher
from indexer.stores.faiss.store import FaissStore
from tests.utils.fakes import HashingEmbedder
from tests.utils.seeds import OPPOSITION_DOC, RUSSIA_DOC

QUERY = "Russian troops in Caracas"


@pytest.fixture
def embedder() -> HashingEmbedder:
    return HashingEmbedder()


@pytest.fixture
def searcher(seed_store: FaissStore, embedder: HashingEmbedder) -> Searcher:
    return Searcher(seed_store, embedder)


@pytest.mark.parametrize("mode", MODES)
def test_hits_are_ranked_by_the_modes_score_and_trace_back(searcher: Searcher, mode: Mode) -> None:
    hits = searcher.search(Query(QUERY, mode=mode, k=5))
    assert [h.rank for h in hits] == [1, 2, 3, 4, 5]
    assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)
    best = hits[0]
    assert "Russian troops" in best.passage.text
    stored = searcher.store.get(best.passage.doc_id)
    assert stored is not None
    document = stored.document
    assert document.text[best.passage.start : best.passage.end] == best.passage.text
    assert best.title == document.title


def test_the_score_is_the_modes_own_and_the_evidence_shows_both_rankings(
    searcher: Searcher,
) -> None:
    semantic = searcher.search(Query(QUERY, mode="semantic", k=3))
    assert all(h.score == h.evidence.semantic_score for h in semantic)
    assert all(
        h.evidence.keyword_score is None and h.evidence.fused_score is None for h in semantic
    )
    assert [h.evidence.semantic_rank for h in semantic] == [1, 2, 3]

    keyword = searcher.search(Query(QUERY, mode="keyword", k=3))
    assert all(h.score == h.evidence.keyword_score and h.score > 0 for h in keyword)
    assert [h.evidence.keyword_rank for h in keyword] == [1, 2, 3]

    hybrid = searcher.search(Query(QUERY, mode="hybrid", k=3))
    assert all(h.score == h.evidence.fused_score and 0 <= h.score <= 1 for h in hybrid)


def test_rrf_fusion_scores_sum_reciprocal_ranks(seed_store: FaissStore) -> None:
    searcher = Searcher(seed_store, HashingEmbedder(), FusionParams("rrf", rrf_k=60))
    for hit in searcher.search(Query(QUERY, mode="hybrid", k=5)):
        e = hit.evidence
        ranks = [r for r in (e.semantic_rank, e.keyword_rank) if r is not None]
        assert hit.score == pytest.approx(sum(1 / (60 + r) for r in ranks))


def test_hybrid_puts_a_passage_both_rankings_like_first(searcher: Searcher) -> None:
    semantic = searcher.search(Query(QUERY, mode="semantic", k=1))[0]
    keyword = searcher.search(Query(QUERY, mode="keyword", k=1))[0]
    hybrid = searcher.search(Query(QUERY, mode="hybrid", k=1))[0]
    if semantic.passage == keyword.passage:
        assert hybrid.passage == semantic.passage
    assert hybrid.evidence.semantic_rank is not None
    assert hybrid.evidence.keyword_rank is not None


def test_convex_fusion_scores_are_weighted_normalised_scores(seed_store: FaissStore) -> None:
    searcher = Searcher(seed_store, HashingEmbedder(), FusionParams("convex", semantic_weight=1.0))
    hybrid = searcher.search(Query(QUERY, mode="hybrid", k=5))
    semantic = searcher.search(Query(QUERY, mode="semantic", k=5))
    assert [h.passage for h in hybrid] == [h.passage for h in semantic]
    assert hybrid[0].score == pytest.approx(1.0)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("group", [False, True])
def test_offset_pages_through_one_consistent_ranking(
    searcher: Searcher, mode: Mode, group: bool
) -> None:
    query = Query("Venezuela opposition Maduro", mode=mode, k=8, group_by_document=group)
    everything = searcher.search(query)
    pages = [
        searcher.search(Query(query.text, mode=mode, k=2, offset=o, group_by_document=group))
        for o in range(0, 8, 2)
    ]
    flattened = [hit for page in pages for hit in page]
    assert flattened == everything
    assert [h.rank for h in flattened] == list(range(1, len(everything) + 1))


def test_paging_past_the_end_returns_nothing(searcher: Searcher) -> None:
    total = searcher.store.reader().passage_count
    assert len(searcher.search(Query("Venezuela", mode="semantic", k=100))) == total
    assert searcher.search(Query("Venezuela", mode="semantic", k=5, offset=total)) == []


@pytest.mark.parametrize("mode", MODES)
def test_a_document_filter_restricts_results_to_those_documents(
    searcher: Searcher, mode: Mode
) -> None:
    only = Filter.of_doc_ids([OPPOSITION_DOC])
    hits = searcher.search(Query(QUERY, mode=mode, k=100, filter=only))
    assert hits
    assert {h.passage.doc_id for h in hits} == {OPPOSITION_DOC}


def test_semantic_search_within_a_filter_reaches_every_passage(searcher: Searcher) -> None:
    both = Filter.of_doc_ids([OPPOSITION_DOC, RUSSIA_DOC])
    hits = searcher.search(Query(QUERY, mode="semantic", k=100, filter=both))
    assert len(hits) == searcher.store.reader().passage_count


@pytest.mark.parametrize("mode", MODES)
def test_unknown_document_ids_in_a_filter_match_nothing(searcher: Searcher, mode: Mode) -> None:
    # A live corpus: the document may have been deleted a moment ago; that is not an error.
    assert searcher.search(Query(QUERY, mode=mode, filter=Filter.of_doc_ids(["nope.txt"]))) == []


@pytest.mark.parametrize("mode", MODES)
def test_min_score_drops_weaker_results_in_every_mode(searcher: Searcher, mode: Mode) -> None:
    hits = searcher.search(Query(QUERY, mode=mode, k=100))
    threshold = hits[2].score
    kept = searcher.search(Query(QUERY, mode=mode, k=100, min_score=threshold))
    assert len(kept) >= 3
    assert len(kept) < len(hits)
    assert all(h.score >= threshold for h in kept)


def test_keyword_mode_finds_nothing_for_words_absent_from_the_corpus(searcher: Searcher) -> None:
    assert searcher.search(Query("zyzzyva quokka", mode="keyword")) == []
    assert searcher.search(Query("the and of", mode="keyword")) == []  # stop words only


def test_group_by_document_keeps_each_documents_best_passage(searcher: Searcher) -> None:
    passages = searcher.search(Query(QUERY, mode="semantic", k=100))
    grouped = searcher.search(Query(QUERY, mode="semantic", k=10, group_by_document=True))
    assert [h.passage.doc_id for h in grouped] == list(
        dict.fromkeys(h.passage.doc_id for h in passages)
    )
    for hit in grouped:
        best = next(h for h in passages if h.passage.doc_id == hit.passage.doc_id)
        assert hit.passage == best.passage
        same_document = sum(h.passage.doc_id == hit.passage.doc_id for h in passages)
        assert hit.other_matches == same_document - 1
    assert all(h.other_matches is None for h in passages)


def test_highlights_mark_words_sharing_a_stem_with_the_query(searcher: Searcher) -> None:
    [hit] = searcher.search(Query("Russia's troop deployments", mode="keyword", k=1))
    marked = [hit.passage.text[s:e] for s, e in hit.highlights]
    assert marked
    assert {w.lower() for w in marked} <= {"russia", "russia's", "troop", "troops", "deployments"}
    assert all(hit.highlights[i][1] <= hit.highlights[i + 1][0] for i in range(len(marked) - 1))


def test_search_many_embeds_all_semantic_queries_in_one_batch(
    searcher: Searcher, embedder: HashingEmbedder
) -> None:
    queries = [Query(QUERY, mode="hybrid"), Query("sanctions", mode="keyword"), Query("Lima Group")]
    answers = searcher.search_many(queries)
    assert embedder.encoded == [[QUERY, "Lima Group"]]
    assert answers == [searcher.search(q) for q in queries]


def test_a_searcher_refuses_an_index_built_with_another_model(seed_store: FaissStore) -> None:
    with pytest.raises(ModelMismatchError, match="built with model 'test/hashing-64'"):
        Searcher(seed_store, HashingEmbedder("another/model"))
