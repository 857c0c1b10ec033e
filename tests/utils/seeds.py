"""The seed articles as tests use them: their ids, small-window build settings, helpers to read
an index's passages or write articles to disk, and natural questions about them (each with a
phrase of the passage that answers it; the questions paraphrase the articles on purpose:
copying their wording would only test keyword overlap)."""

from __future__ import annotations

from pathlib import Path

import faiss
import numpy as np

from indexer.build import BuildParams
from indexer.chunking import ChunkingParams
from indexer.stores.faiss.layout import current_version
from indexer.stores.faiss.store import FaissStore
from indexer.types import Passage

RUSSIA_DOC = "004_6fdace10fca785c4.txt"
OPPOSITION_DOC = "000_0909487afc4c8a60.txt"
# Small windows, so the two seed articles make enough passages to page and group.
SEED_PARAMS = BuildParams(chunking=ChunkingParams(max_tokens=64))


def all_passages(index_dir: Path) -> list[Passage]:
    """Every passage of the index at ``index_dir``, in document order."""
    store = FaissStore.open(index_dir, writable=False)
    try:
        reader = store.reader()
        return [p for s in reader.documents(0, reader.document_count) for p in s.passages]
    finally:
        store.close()


def write_articles(directory: Path, articles: dict[str, str]) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    for name, text in articles.items():
        (directory / name).write_text(text, encoding="utf-8")
    return directory


OPPOSITION, RUSSIA = OPPOSITION_DOC, RUSSIA_DOC
# (question, document, a phrase of the answering passage)
SEED_QUESTIONS: list[tuple[str, str, str]] = [
    (
        "Which newspaper got hold of the recording of Pompeo's private remarks?",
        OPPOSITION,
        "leaked audio was given to the Washington Post",
    ),
    (
        "How many people would claim to be Maduro's successor, according to Pompeo?",
        OPPOSITION,
        "forty-plus people",
    ),
    (
        "When did Guaido declare himself the country's acting leader?",
        OPPOSITION,
        "self-proclamation on January 23",
    ),
    (
        "How did the US diplomat describe Guaido's grip on the opposition leadership?",
        OPPOSITION,
        "tenuous",
    ),
    (
        "Why did the anti-Maduro coalition fall apart in 2018?",
        OPPOSITION,
        "MUD alliance all but disintegrating",
    ),
    ("Who might run for president in a future vote?", OPPOSITION, "Maria Corina Machado"),
    (
        "How did the head of the constituent assembly respond to the recording?",
        OPPOSITION,
        "great incompetence",
    ),
    (
        "What did Beijing and Moscow say about outside meddling?",
        OPPOSITION,
        "non-interference in the internal affairs",
    ),
    (
        "What did the Chinese leader say about his government's part in the crisis?",
        OPPOSITION,
        "constructive role",
    ),
    (
        "Did Moscow pull its advisers out as the American president claimed?",
        OPPOSITION,
        "continue to work in Venezuela",
    ),
    ("What medicine production deals did the two governments agree on?", OPPOSITION, "insulin"),
    (
        "How many deaths have been blamed on American economic penalties?",
        OPPOSITION,
        "40,000 deaths",
    ),
    (
        "Which countries make up the Lima Group?",
        OPPOSITION,
        "13 Latin American countries and Canada",
    ),
    (
        "What was Chile's position on using armed force against Caracas?",
        OPPOSITION,
        "opposes military interference",
    ),
    (
        "What did the Secretary of State say the population is suffering under?",
        RUSSIA,
        "besieged by dictatorship",
    ),
    (
        "Which governments stand behind Maduro?",
        RUSSIA,
        "supported by nations including Russia and China",
    ),
    ("Why do Maduro's critics reject the last presidential vote?", RUSSIA, "vote rigging"),
    (
        "Which minister was said to have sided with the April uprising?",
        RUSSIA,
        "Padrino Lopez had agreed",
    ),
    (
        "What did Russia's deputy foreign minister pledge to Venezuela's army?",
        RUSSIA,
        "strengthen the military potential",
    ),
    ("Which air defence equipment needs Russian technicians to run it?", RUSSIA, "S-300"),
    (
        "How did Washington describe the arrival of Russian soldiers in March?",
        RUSSIA,
        "reckless escalation",
    ),
]


def index_vectors(index_dir: Path) -> np.ndarray:
    """Every vector of the index at ``index_dir`` (a build's: rows in passage order)."""
    index = faiss.read_index(str(current_version(index_dir) / "vectors.faiss"))
    return np.asarray(index.reconstruct_n(0, index.ntotal), dtype=np.float32)
