"""The search core: loading, chunking, embedding, index building and searching.

Imports no web framework, so it can be used from the CLI, the service, or a notebook.
"""

from indexer.types import Document, Hit, Passage

__all__ = ["Document", "Hit", "Passage"]
