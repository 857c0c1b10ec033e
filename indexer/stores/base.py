"""What a store is: a live corpus of documents, their passages and vectors, searchable.

The searcher, the service and the index builder talk only to these protocols, so another
engine can be added without touching them; every store must pass the contract suite in
``tests/contract``. A store takes documents already chunked and embedded (``IndexedDocument``),
keeps them durably, and answers vector and keyword searches restricted by a filter. Searches
run on a ``Reader``: a consistent point-in-time view, so the two rankings of one hybrid query
and the passages they point to all come from the same state of the corpus.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Protocol, Self

from indexer.filters import Filter
from indexer.manifest import Manifest
from indexer.types import (
    Document,
    DocumentInfo,
    Ids,
    IndexedDocument,
    Matrix,
    Passage,
    Scores,
    StoredDocument,
)

__all__ = ["IndexedDocument", "StoredDocument"]  # value types, defined with the others

Prepare = Callable[[Sequence[Document]], list[IndexedDocument]]
"""Chunks and embeds documents with a reindex's new settings."""
Progress = Callable[[str, int, int], None]
"""Called with a phase name, items done and items in that phase."""


class ReindexError(Exception):
    """A reindex failed or was refused before its switch: the old version serves on."""


class StaleWriteError(Exception):
    """Documents prepared for settings that a reindex has replaced since: prepare them again."""


@dataclass(frozen=True, slots=True)
class Written:
    """The outcome of a write that the store has made durable."""

    seq: int
    """The store's sequence number after this write: every write increments it by one per
    document. ``wait_for(seq)`` returns once searches see it."""
    existed: tuple[bool, ...]
    """Per document: there was one with that id before (replaced or deleted)."""


class StoreWriteError(Exception):
    """A write could not be made durable; nothing of it was applied. Reads go on."""


class DocumentRefusedError(ValueError):
    """A document this store cannot hold (say, a passage longer than the engine's strings);
    nothing of the write was applied. The message names the document and the limit."""


class ReadOnlyStoreError(StoreWriteError):
    """The store cannot be written here (a read-only directory or mount, or no permission)."""


class StorageFullError(StoreWriteError):
    """The disk holding the store is full."""


class StoreUnavailableError(Exception):
    """The engine holding the store cannot be reached or failed to answer; retry later."""


class SearchUnsupportedError(Exception):
    """This store cannot answer this kind of search (say, keyword search on a Milvus without
    full-text search); the message says what would."""


class Reader(Protocol):
    """A point-in-time view of a store; safe to use from many threads."""

    @property
    def seq(self) -> int:
        """The last write this view contains."""
        ...

    @property
    def manifest(self) -> Manifest:
        """How the index this view shows was built (model, chunking, build id)."""
        ...

    @property
    def document_count(self) -> int: ...

    @property
    def passage_count(self) -> int: ...

    def vector_search(
        self, vector: Matrix, k: int, filter: Filter | None = None
    ) -> tuple[Scores, Ids]:
        """The ``k`` passages most similar to ``vector`` (inner product) among those whose
        document passes ``filter``: scores and passage ids, best first, ties by id."""
        ...

    def keyword_search(
        self, query: str, k: int, filter: Filter | None = None
    ) -> tuple[Scores, Ids]:
        """The ``k`` best BM25 matches of ``query`` with a positive score, like
        ``vector_search``."""
        ...

    def passage(self, passage_id: int) -> Passage: ...

    def document_info(self, passage_id: int) -> DocumentInfo:
        """The document a passage belongs to, without its text (which results do not carry,
        and which a remote store would otherwise fetch for every hit)."""
        ...

    def documents(
        self, offset: int, limit: int, filter: Filter | None = None
    ) -> list[StoredDocument]:
        """Documents (those passing ``filter``) in the order they were written (a replaced
        one moves to the end)."""
        ...

    def document_ids(self, filter: Filter | None = None) -> list[str]:
        """The ids of every document passing ``filter`` (all, without one), in that order."""
        ...

    def count_documents(self, filter: Filter | None = None) -> int:
        """How many documents pass ``filter`` (``document_count`` without one)."""
        ...


class Store(Protocol):
    """A durable, live corpus. ``put`` and ``delete`` return once the write is durable."""

    kind: ClassVar[str]

    @property
    def location(self) -> Any:
        """Where it lives, as ``open`` takes it: a directory (FAISS), a collection at a URI
        (Milvus)."""
        ...

    @property
    def manifest(self) -> Manifest:
        """How the corpus is chunked and embedded: writes must be prepared the same way."""
        ...

    @property
    def read_only(self) -> str | None:
        """Why writes are refused here, or None if they are accepted."""
        ...

    @classmethod
    def create(
        cls, location: Any, manifest: Manifest, documents: Sequence[IndexedDocument]
    ) -> Self:
        """A new store at ``location`` holding ``documents``, replacing nothing."""
        ...

    @classmethod
    def open(cls, location: Any, *, writable: bool = True) -> Self: ...

    def reader(self) -> Reader:
        """The latest published view (near-real-time: writes appear at the next refresh)."""
        ...

    def get(self, doc_id: str) -> StoredDocument | None:
        """A document as last written (real-time: it need not be searchable yet)."""
        ...

    def put(self, documents: Sequence[IndexedDocument], *, epoch: int | None = None) -> Written:
        """Add or replace documents (by id). Searchable after the next refresh."""
        ...

    @property
    def epoch(self) -> int:
        """Changes when a reindex switches the index's settings or model."""
        ...

    def delete(self, doc_ids: Sequence[str]) -> Written:
        """Remove documents; no reader taken after this returns contains them."""
        ...

    def reindex(
        self,
        manifest: Manifest,
        prepare: Prepare,
        *,
        progress: Progress | None = None,
        on_switch: Callable[[], None] | None = None,
    ) -> Manifest:
        """Rebuild every live document with ``prepare`` into a new version with
        ``manifest``'s settings, then switch to it atomically. Searches and writes go on
        meanwhile, and no write acknowledged during the rebuild is lost. ``on_switch`` runs at
        the switch, with this process's writes held; ``epoch`` changes after it. Raises
        ``ReindexError`` if the new version fails, leaving the old one serving."""
        ...

    def refresh(self) -> None:
        """Publish every write so far to new readers now."""
        ...

    def wait_for(self, seq: int, timeout: float) -> bool:
        """Block until readers contain write ``seq``; False if ``timeout`` passed first."""
        ...

    def close(self) -> None: ...
