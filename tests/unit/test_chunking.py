from __future__ import annotations

import itertools

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from indexer.chunking import Chunker, ChunkingParams, Tokenizer
from indexer.embedding import HuggingFaceTokenizer
from indexer.loading import load_corpus
from indexer.types import Document, Passage
from tests.utils.fakes import WordTokenizer
from tests.utils.paths import SEEDS

REAL_TOKENIZER = HuggingFaceTokenizer.from_model()

# Prose-like text with the characters that break naive offset arithmetic.
_ALPHABET = st.sampled_from(
    [
        *"abcdefghij ABC.?!,;:\"'“”‘’—–-()[]\n\n\t 0123456789éßü中文",
        "\r\n",
        "...",
        "U.S. ",
        "Mr. ",
        "😀",
    ]
)
prose = st.lists(_ALPHABET, max_size=600).map("".join)
any_text = st.text(max_size=400)


def assert_well_formed(
    document: Document, passages: list[Passage], tokenizer: Tokenizer, limit: int
) -> None:
    text = document.text
    covered = [False] * len(text)
    for index, passage in enumerate(passages):
        assert passage.chunk_id == index
        assert passage.doc_id == document.doc_id
        assert text[passage.start : passage.end] == passage.text
        assert passage.text.strip() == passage.text != ""
        assert len(tokenizer.token_spans(passage.text)) <= limit
        covered[passage.start : passage.end] = [True] * (passage.end - passage.start)
    missing = [i for i, c in enumerate(text) if not covered[i] and not c.isspace()]
    assert missing == [], f"characters outside every passage: {[text[i] for i in missing][:10]}"
    starts = [p.start for p in passages]
    assert starts == sorted(set(starts)), "passages must move forward through the document"


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    text=st.one_of(prose, any_text),
    limit=st.integers(8, 40),
    overlap=st.sampled_from([0.0, 0.2, 0.4]),
)
def test_passages_are_exact_slices_covering_the_text_within_the_limit(
    text: str, limit: int, overlap: float
) -> None:
    document = Document("d", "t", text)
    tokenizer = WordTokenizer()
    passages = Chunker(tokenizer, ChunkingParams(limit, overlap)).chunk(document)
    assert_well_formed(document, passages, tokenizer, limit)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(text=st.one_of(prose, any_text), limit=st.integers(8, 40))
def test_real_tokenizer_limits_hold_on_arbitrary_text(text: str, limit: int) -> None:
    document = Document("d", "t", text)
    passages = Chunker(REAL_TOKENIZER, ChunkingParams(limit, 0.2)).chunk(document)
    assert_well_formed(document, passages, REAL_TOKENIZER, limit)


@pytest.mark.parametrize("limit", [32, 64, 128, 256])
def test_seed_articles_chunk_cleanly_with_the_model_tokenizer(limit: int) -> None:
    for document in load_corpus(SEEDS).documents:
        passages = Chunker(REAL_TOKENIZER, ChunkingParams(limit)).chunk(document)
        assert_well_formed(document, passages, REAL_TOKENIZER, limit)
        assert len(passages) > 1


def test_whitespace_only_and_empty_documents_have_no_passages() -> None:
    chunker = Chunker(WordTokenizer())
    assert chunker.chunk(Document("d", "t", "")) == []
    assert chunker.chunk(Document("d", "t", " \n\n\t ")) == []


def test_a_short_document_is_one_passage_without_surrounding_whitespace() -> None:
    text = "\n\n  Title line\n\nOne sentence. Another one.  \n"
    [passage] = Chunker(WordTokenizer()).chunk(Document("d", "Title line", text))
    assert passage.text == "Title line\n\nOne sentence. Another one."
    assert (passage.start, passage.end) == (4, 42)


def test_windows_end_at_whole_sentences() -> None:
    sentences = [f"Sentence number {i} is here." for i in range(30)]  # 6 tokens each
    text = " ".join(sentences)
    passages = Chunker(WordTokenizer(), ChunkingParams(20, 0.0)).chunk(Document("d", "t", text))
    for passage in passages:
        assert passage.text.startswith("Sentence number")
        assert passage.text.endswith("is here.")
    assert [len(WordTokenizer().token_spans(p.text)) for p in passages] == [18] * 10


def test_overlap_repeats_whole_trailing_sentences_within_a_paragraph() -> None:
    sentences = [f"Fact {i} holds." for i in range(12)]  # 4 tokens each
    text = " ".join(sentences)
    passages = Chunker(WordTokenizer(), ChunkingParams(20, 0.4)).chunk(Document("d", "t", text))
    assert len(passages) > 2
    for previous, current in itertools.pairwise(passages):
        assert current.start < previous.end, "consecutive windows should share sentences"
        shared = text[current.start : previous.end]
        assert shared.startswith("Fact")
        assert shared.endswith("holds.")
        assert len(WordTokenizer().token_spans(shared)) <= 8


def test_paragraphs_are_not_split_when_they_fit_a_window() -> None:
    paragraphs = [" ".join(f"P{p} line {i}." for i in range(3)) for p in range(6)]  # 12 tokens each
    text = "\n\n".join(paragraphs)
    passages = Chunker(WordTokenizer(), ChunkingParams(30, 0.2)).chunk(Document("d", "t", text))
    for passage in passages:
        assert passage.text.startswith("P")
        assert passage.text.endswith("line 2.")
    assert [p.text.count("\n\n") for p in passages] == [1, 1, 1]


def test_an_over_long_sentence_is_split_between_words() -> None:
    text = " ".join(f"word{i}" for i in range(100))
    passages = Chunker(WordTokenizer(), ChunkingParams(16, 0.0)).chunk(Document("d", "t", text))
    assert [len(p.text.split()) for p in passages] == [16] * 6 + [4]
    assert " ".join(p.text for p in passages) == text


def test_chunking_params_reject_nonsense() -> None:
    with pytest.raises(ValueError, match="max_tokens"):
        ChunkingParams(max_tokens=2)
    with pytest.raises(ValueError, match="overlap"):
        ChunkingParams(overlap=0.9)
