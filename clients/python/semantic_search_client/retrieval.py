"""What the LangChain and LlamaIndex retrievers share: a passage's id and metadata."""

from __future__ import annotations

from typing import Any

from semantic_search_client.models import SearchResult

# Offsets and scores locate and rank a passage; they mean nothing to a model reading it.
POSITIONAL_KEYS = ("start", "end", "chunk_id", "rank", "score", "scores")


def passage_id(result: SearchResult) -> str:
    """Stable for a passage of a document version: ``<doc_id>#<chunk_id>``."""
    return f"{result.doc_id}#{result.chunk_id}"


def passage_metadata(result: SearchResult) -> dict[str, Any]:
    """Where the passage is (``text == document.text[start:end]``), how it scored, and its
    document's own metadata (under ``metadata``)."""
    return {
        "doc_id": result.doc_id,
        "title": result.title,
        "start": result.start,
        "end": result.end,
        "chunk_id": result.chunk_id,
        "rank": result.rank,
        "score": result.score,
        "scores": result.scores.model_dump(),
        "metadata": dict(result.metadata),
    }
