from __future__ import annotations

import json
from pathlib import Path

import bm25s
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from indexer.keyword import STOPWORDS_EN, Analyzer, KeywordParams
from indexer.stores.faiss.keyword import KeywordIndex, KeywordView
from tests.utils.paths import REPO

TEXTS = [
    "Russian troops landed in Caracas.",
    "Russia deploys military specialists to Venezuela.",
    "The Lima Group met in Guatemala.",
    "Troops, troops and more troops.",
]
CISI = REPO.parent / "shared" / "benchmarks" / "cisi"


@pytest.fixture
def view() -> KeywordView:
    return KeywordIndex.build(TEXTS).publish()


def mask(allowed: list[int], size: int = len(TEXTS)) -> np.ndarray:
    flags = np.zeros(size, dtype=bool)
    flags[allowed] = True
    return flags


def test_analyzer_lowercases_drops_stop_words_and_stems() -> None:
    assert Analyzer().terms("The Troops were DEPLOYED to the islands") == [
        "troop",
        "were",
        "deploy",
        "island",
    ]


def test_the_stop_words_are_bm25s_english_list() -> None:
    from bm25s.stopwords import STOPWORDS_EN as BM25S_STOPWORDS

    assert set(BM25S_STOPWORDS) == STOPWORDS_EN


def test_search_ranks_rows_by_bm25_and_skips_rows_without_a_match(view: KeywordView) -> None:
    scores, rows = view.search("troops", 10)
    assert rows.tolist() == [3, 0]  # term frequency wins
    assert scores[0] > scores[1] > 0


def test_search_respects_k_and_allowed_rows(view: KeywordView) -> None:
    assert view.search("troops", 1)[1].tolist() == [3]
    assert view.search("troops", 10, allowed=mask([0, 1, 2]))[1].tolist() == [0]
    assert view.search("troops", 10, allowed=mask([]))[1].tolist() == []


def test_queries_without_known_terms_find_nothing(view: KeywordView) -> None:
    for query in ["", "the of and", "zyzzyva"]:
        scores, rows = view.search(query, 5)
        assert rows.tolist() == []
        assert scores.dtype == np.float32


def test_ties_are_broken_by_row_so_rankings_are_stable() -> None:
    view = KeywordIndex.build(["alpha beta", "alpha beta", "alpha beta"]).publish()
    assert view.search("alpha", 3)[1].tolist() == [0, 1, 2]


def test_scores_are_bm25s_lucene_scores_exactly() -> None:
    """The query-time scores equal what bm25s precomputes (the same arithmetic)."""
    with (CISI / "corpus.jsonl").open() as handle:
        texts = [json.loads(line)["text"] for line in handle][:400]
    with (CISI / "queries.jsonl").open() as handle:
        queries = [json.loads(line)["text"] for line in handle][:40]
    analyzer = Analyzer()
    reference = bm25s.BM25(k1=1.2, b=0.75, method="lucene", backend="numpy")
    reference.index([analyzer.terms(t) for t in texts], show_progress=False)
    view = KeywordIndex.build(texts).publish()
    compared = 0
    for query in queries:
        terms = [t for t in analyzer.terms(query) if t in reference.vocab_dict]
        if not terms:
            continue
        expected = np.asarray(reference.get_scores(terms), dtype=np.float32)
        scores, rows = view.search(query, len(texts))
        ours = np.zeros(len(texts), dtype=np.float32)
        ours[rows] = scores
        np.testing.assert_array_equal(ours, expected)
        compared += 1
    assert compared > 30


def scores_by_text(view: KeywordView, texts: list[str], query: str) -> dict[str, float]:
    scores, rows = view.search(query, 1000, allowed=None)
    return {texts[row]: float(score) for score, row in zip(scores, rows, strict=True)}


def live(view: KeywordView, removed: set[int]) -> np.ndarray:
    flags = np.ones(len(view.lengths), dtype=bool)
    flags[list(removed)] = False
    return flags


WORDS = ["troop", "russia", "caracas", "oil", "price", "market", "vote", "court", "rain", "snow"]
texts_strategy = st.lists(
    st.lists(st.sampled_from(WORDS), min_size=1, max_size=12).map(" ".join),
    min_size=1,
    max_size=25,
)


@settings(max_examples=60, deadline=None)
@given(
    first=texts_strategy,
    later=texts_strategy,
    removals=st.lists(st.integers(min_value=0, max_value=49), max_size=20),
    queries=st.lists(st.sampled_from(WORDS), min_size=1, max_size=3),
)
def test_a_live_index_scores_like_a_fresh_build_of_its_live_rows(
    first: list[str], later: list[str], removals: list[int], queries: list[str]
) -> None:
    """Adds and removes move the statistics exactly: scores equal a rebuild's, bit for bit,
    before and after compaction, across several publishes."""
    texts = first + later
    index = KeywordIndex.build(first)
    index.publish()
    index.add(later[: len(later) // 2])
    index.publish()
    index.add(later[len(later) // 2 :])
    removed = sorted({r for r in removals if r < len(texts)})
    index.remove([texts[r] for r in removed])
    view = index.publish()
    allowed = live(view, set(removed))
    kept = [i for i in range(len(texts)) if i not in set(removed)]
    fresh = KeywordIndex.build([texts[i] for i in kept]).publish()
    compacted = view.compact(np.asarray(kept, dtype=np.int64)).publish()
    query = " ".join(queries)
    got_scores, got_rows = view.search(query, 1000, allowed=allowed)
    want_scores, want_rows = fresh.search(query, 1000)
    assert [kept.index(r) for r in got_rows.tolist()] == want_rows.tolist()
    np.testing.assert_array_equal(got_scores, want_scores)
    compact_scores, compact_rows = compacted.search(query, 1000)
    assert compact_rows.tolist() == want_rows.tolist()
    np.testing.assert_array_equal(compact_scores, want_scores)


def test_a_published_view_does_not_change_when_the_writer_goes_on() -> None:
    index = KeywordIndex.build(TEXTS)
    before = index.publish()
    scores, rows = before.search("troops caracas", 10)
    index.add(["troops in caracas again", "more troops"] * 20)
    index.remove([TEXTS[0]])
    after = index.publish()
    again_scores, again_rows = before.search("troops caracas", 10)
    assert again_rows.tolist() == rows.tolist()
    np.testing.assert_array_equal(again_scores, scores)
    assert after.live_rows == len(TEXTS) + 40 - 1
    assert after.search("troops caracas", 100)[1].tolist() != rows.tolist()


def test_many_publishes_combine_delta_segments() -> None:
    index = KeywordIndex.build(TEXTS)
    for i in range(30):
        index.add([f"word{i} troops"])
        view = index.publish()
    assert len(view.segments) <= 10
    assert view.search("word7", 5)[1].tolist() == [len(TEXTS) + 7]
    assert len(view.search("troops", 100)[1]) == 2 + 30


def test_save_and_load_round_trip(view: KeywordView, tmp_path: Path) -> None:
    index = KeywordIndex.build(TEXTS)
    index.save(tmp_path)
    loaded = KeywordIndex.load(tmp_path, KeywordParams()).publish()
    assert len(loaded.lengths) == len(TEXTS)
    for query in ["troops", "Venezuela military", "Lima"]:
        assert loaded.search(query, 5)[1].tolist() == view.search(query, 5)[1].tolist()
        np.testing.assert_array_equal(loaded.search(query, 5)[0], view.search(query, 5)[0])


def test_only_a_compacted_index_is_saved(tmp_path: Path) -> None:
    index = KeywordIndex.build(TEXTS)
    index.add(["one more"])
    with pytest.raises(ValueError, match="compacted"):
        index.save(tmp_path)


def test_spans_cover_exactly_the_matching_words() -> None:
    analyzer = Analyzer()
    text = "Troops: the troop's deployment, deployed; TROOPS!"
    spans = analyzer.spans(text, set(analyzer.terms("troop deploy")))
    assert [text[s:e] for s, e in spans] == ["Troops", "troop", "deployment", "deployed", "TROOPS"]
    assert analyzer.spans(text, set()) == []
