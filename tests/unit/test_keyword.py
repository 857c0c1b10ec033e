from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from indexer.keyword import Analyzer, KeywordIndex, KeywordParams

TEXTS = [
    "Russian troops landed in Caracas.",
    "Russia deploys military specialists to Venezuela.",
    "The Lima Group met in Guatemala.",
    "Troops, troops and more troops.",
]


@pytest.fixture
def index() -> KeywordIndex:
    return KeywordIndex.build(TEXTS)


def test_analyzer_lowercases_drops_stop_words_and_stems() -> None:
    assert Analyzer().terms("The Troops were DEPLOYED to the islands") == [
        "troop",
        "were",
        "deploy",
        "island",
    ]


def test_search_ranks_rows_by_bm25_and_skips_rows_without_a_match(index: KeywordIndex) -> None:
    scores, rows = index.search("troops", 10)
    assert rows.tolist() == [3, 0]  # term frequency wins
    assert scores[0] > scores[1] > 0


def test_search_respects_k_and_allowed_rows(index: KeywordIndex) -> None:
    assert index.search("troops", 1)[1].tolist() == [3]
    assert index.search("troops", 10, allowed=[0, 1, 2])[1].tolist() == [0]
    assert index.search("troops", 10, allowed=[])[1].tolist() == []


def test_queries_without_known_terms_find_nothing(index: KeywordIndex) -> None:
    for query in ["", "the of and", "zyzzyva"]:
        scores, rows = index.search(query, 5)
        assert rows.tolist() == []
        assert scores.dtype == np.float32


def test_ties_are_broken_by_row_so_rankings_are_stable() -> None:
    index = KeywordIndex.build(["alpha beta", "alpha beta", "alpha beta"])
    assert index.search("alpha", 3)[1].tolist() == [0, 1, 2]


def test_save_and_load_round_trip(index: KeywordIndex, tmp_path: Path) -> None:
    index.save(tmp_path)
    loaded = KeywordIndex.load(tmp_path, KeywordParams())
    assert len(loaded) == len(TEXTS)
    for query in ["troops", "Venezuela military", "Lima"]:
        assert loaded.search(query, 5)[1].tolist() == index.search(query, 5)[1].tolist()


def test_spans_cover_exactly_the_matching_words() -> None:
    analyzer = Analyzer()
    text = "Troops: the troop's deployment, deployed; TROOPS!"
    spans = analyzer.spans(text, set(analyzer.terms("troop deploy")))
    assert [text[s:e] for s, e in spans] == ["Troops", "troop", "deployment", "deployed", "TROOPS"]
    assert analyzer.spans(text, set()) == []
