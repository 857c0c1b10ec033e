"""Documents made with chosen vectors (no model), so that rankings can be checked exactly: the
store contract's corpus, and that of any test that needs a store's documents without a model."""

from __future__ import annotations

import hashlib

import numpy as np

from indexer.types import Document, IndexedDocument, Passage

DIM = 16
WORDS = ["troops", "oil", "election", "court", "harvest", "storm", "market", "vaccine"]
SECTIONS = ["world", "business", "science"]


def unit(rng: np.random.Generator, n: int) -> np.ndarray:
    vectors = rng.normal(size=(n, DIM)).astype(np.float32)
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def article(number: int, rng: np.random.Generator, passages: int = 2) -> IndexedDocument:
    """A document whose passages each use one word of WORDS (so keyword searches can be
    predicted), with metadata that filters can select."""
    pieces = [f"{WORDS[(number + i) % len(WORDS)]} report {number}-{i}." for i in range(passages)]
    text = " ".join(pieces)
    spans, start = [], 0
    for piece in pieces:
        spans.append((start, start + len(piece)))
        start += len(piece) + 1
    document = Document(
        doc_id=f"doc-{number:03d}",
        title=f"Article {number}",
        text=text,
        metadata={
            "section": SECTIONS[number % len(SECTIONS)],
            "year": 2000 + number % 25,
            "published": f"20{number % 25:02d}-0{1 + number % 9}-15",
            "breaking": number % 7 == 0,
        },
    )
    own = tuple(Passage(document.doc_id, i, s, e, text[s:e]) for i, (s, e) in enumerate(spans))
    return IndexedDocument(document, own, unit(rng, passages))


def corpus(n: int = 60, seed: int = 0) -> list[IndexedDocument]:
    rng = np.random.default_rng(seed)
    return [article(i, rng, passages=1 + i % 3) for i in range(n)]


def one_passage(doc_id: str, text: str, dimension: int) -> IndexedDocument:
    """A document of one passage (all of ``text``) with a unit vector drawn from its id and
    text: the same document gets the same vector, in any process (not ``hash``: Python salts
    it per process), another text another one."""
    seed = hashlib.blake2b(f"{doc_id}\0{text}".encode(), digest_size=8).digest()
    rng = np.random.default_rng(int.from_bytes(seed))
    vector = rng.normal(size=(1, dimension))
    return IndexedDocument(
        Document(doc_id, doc_id.title(), text),
        (Passage(doc_id, 0, 0, len(text), text),),
        (vector / np.linalg.norm(vector)).astype(np.float32),
    )
