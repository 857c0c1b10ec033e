"""Deterministic stand-ins for the model: fast, and similar texts still score as similar."""

from __future__ import annotations

import hashlib
import re

import numpy as np

from indexer.embedding import Vectors

_TOKEN = re.compile(r"\w+|[^\w\s]")


class WordTokenizer:
    """One token per word or punctuation mark."""

    def token_spans(self, text: str) -> list[tuple[int, int]]:
        return [match.span() for match in _TOKEN.finditer(text)]


class HashingEmbedder:
    """Bag of hashed lower-cased words: texts sharing words get a high cosine similarity."""

    model_name = "test/hashing-64"
    dimension = 64

    def __init__(self, model_name: str = model_name) -> None:
        self.model_name = model_name
        self.encoded: list[list[str]] = []

    def encode(self, texts: list[str], *, batch_size: int = 64, progress: bool = False) -> Vectors:
        self.encoded.append(list(texts))
        vectors = np.zeros((len(texts), self.dimension), dtype=np.float32)
        for row, text in enumerate(texts):
            for word in re.findall(r"\w+", text.lower()):
                digest = hashlib.blake2b(word.encode(), digest_size=8).digest()
                vectors[row, digest[0] % self.dimension] += 1.0 if digest[1] % 2 else -1.0
        norms = np.linalg.norm(vectors, axis=1, keepdims=True)
        norms[norms == 0] = 1.0
        return vectors / norms

    def tokenizer(self) -> WordTokenizer:
        return WordTokenizer()
