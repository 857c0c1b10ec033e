"""What Milvus's BM25 function reads: our keyword analysis (``indexer.keyword.Analyzer``), not
Milvus's own, so that keyword search on Milvus ranks as on the FAISS store.

Milvus Lite 3.2 only lower-cases whatever analyzer it is asked for (no stop words, no
stemming), and a server's analyzers are not ours either. So a passage's BM25 input is its
terms as our analyzer makes them, one token each, joined by spaces, and a query is analysed
the same way: Milvus then counts exactly our terms, and its BM25 (Lucene's, with the
manifest's k1 and b) gives bm25s's order. The passage's own text stays in ``text``, for
results and highlights.

Stores made before this kept the passage text in ``keyword_text`` with Milvus's analyzer:
they are read and written as they are (``RAW_TEXT``) until a reindex rebuilds them.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from typing import Any

from indexer.keyword import Analyzer

# A token every tokenizer keeps whole and unchanged: Lite's (a \w+ split), a server's
# `standard` (runs of letters and digits), Unicode word breaks, lower-casing.
_PLAIN = re.compile(r"[a-z0-9]+")
# Other terms (accents, other scripts, underscores) become this and a hash of the term; a plain
# term that starts with it is hashed too, so that no two terms share a token.
_HASHED = "qq"


def milvus_token(term: str) -> str:
    """One term of ours as a token that Milvus's tokenizer returns unchanged."""
    if _PLAIN.fullmatch(term) and not term.startswith(_HASHED):
        return term
    return _HASHED + hashlib.blake2b(term.encode("utf-8"), digest_size=8).hexdigest()


def analysed(analyzer: Analyzer, text: str) -> str:
    """``text``'s terms as Milvus's BM25 should count them: one token each, space-separated."""
    return " ".join(milvus_token(term) for term in analyzer.terms(text))


@dataclass(frozen=True)
class KeywordField:
    """The passages' VARCHAR field that feeds Milvus's BM25 function, and what goes in it."""

    name: str
    ours: bool
    """It holds our analyser's terms (``analysed``); else the passage text, which Milvus's
    analyzer splits."""
    description: str
    """What the schema says of it, for whoever describes the collection."""

    def analyzer_params(self, stemmer: str) -> dict[str, Any]:
        if self.ours:
            return {"tokenizer": "standard"}  # splits at the spaces; the terms are final
        # Stores made before: what was asked of Milvus (Lite 3.2 only lower-cases).
        return {
            "tokenizer": "standard",
            "filter": [
                "lowercase",
                {"type": "stop", "stop_words": ["_english_"]},
                {"type": "stemmer", "language": stemmer},
            ],
        }

    def text(self, analyzer: Analyzer, text: str) -> str:
        """What to store for a passage represented by ``text``, or to search for a query."""
        return analysed(analyzer, text) if self.ours else text


OUR_TERMS = KeywordField(
    "keyword_terms",
    ours=True,
    description="BM25 input: the title-prefixed passage as indexer.keyword.Analyzer's terms "
    "(lower-cased, stop words out, stemmed), one token each",
)
RAW_TEXT = KeywordField(
    "keyword_text", ours=False, description="BM25 input: the title-prefixed passage text"
)
KEYWORD_FIELDS = (OUR_TERMS, RAW_TEXT)


def keyword_field(field_names: set[str]) -> KeywordField | None:
    """The BM25 input field of a passages collection with these fields (None: no BM25)."""
    return next((f for f in KEYWORD_FIELDS if f.name in field_names), None)
