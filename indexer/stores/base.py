"""What a store is: a live corpus of documents, their passages and vectors, searchable.

The searcher, the service and the index builder talk only to these protocols, so another
engine can be added without touching them; every store must pass the contract suite in
``tests/contract``. A store takes documents already chunked and embedded (``IndexedDocument``),
keeps them durably, and answers vector and keyword searches restricted by a filter. Searches
run on a ``Reader``: a consistent point-in-time view, so the two rankings of one hybrid query
and the passages they point to all come from the same state of the corpus.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Protocol, Self

from indexer.durable import write_atomically
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
Follower = Callable[[Manifest], Callable[[], None] | None]
"""Called when another process has reindexed a shared store, with the new version's manifest;
what it returns runs at this process's switch to it, with writes held."""


class StoreError(Exception):
    """Anything a store refuses or cannot do; the message says what and, where it can, what to
    do. The service maps each kind below to an HTTP status (``app/errors.py``)."""


class StoreMissingError(StoreError, LookupError):
    """No store at that location: nothing was built there, or its build has not completed."""


class StoreOpenError(StoreError):
    """A store is there but cannot be opened: damaged, or of a format this version does not
    read."""


class StoreLockedError(StoreError):
    """Another process holds the store for writing (one process writes to a local index)."""


class StoreExistsError(StoreError, FileExistsError):
    """A store is there and may not be replaced (the message says why, and how to force it),
    or another process is building it right now."""


class StoreUnavailableError(StoreError):
    """The engine holding the store cannot be reached or failed to answer; retry later."""


class StoreWriteError(StoreError):
    """A write could not be made durable; nothing of it was applied. Reads go on."""


class ReadOnlyStoreError(StoreWriteError):
    """The store cannot be written here (a read-only directory or mount, or no permission)."""


class StorageFullError(StoreWriteError):
    """The disk holding the store is full."""


class StaleWriteError(StoreError):
    """Documents prepared for settings that a reindex has replaced since: prepare them again."""


class ReindexError(StoreError):
    """A reindex failed or was refused before its switch: the old version serves on."""


class OutOfScopeError(StoreError):
    """A guarded write would replace a document its guard does not pass (another tenant's)."""


class DocumentRefusedError(StoreError, ValueError):
    """A document this store cannot hold (say, a passage longer than the engine's strings);
    nothing of the write was applied. The message names the document and the limit."""


class SearchUnsupportedError(StoreError):
    """This store cannot answer this kind of search (say, keyword search on a Milvus without
    full-text search); the message says what would."""


class SnapshotError(StoreError):
    """A snapshot cannot be taken now, or an archive cannot be restored; the message says why."""


class SnapshotUnsupportedError(SnapshotError):
    """This kind of store is not snapshotted by this service; the message says what to use."""


class IncompatibleSnapshotError(SnapshotError):
    """The archive was written for another format version."""


def passes(guard: Filter | None, stored: StoredDocument | None) -> bool:
    """Does a stored document (None: there is none) pass a write's guard?"""
    if stored is None or guard is None:
        return stored is not None
    return guard.matches(stored.document.doc_id, stored.document.metadata)


def refuse_outside(
    guard: Filter | None,
    doc_ids: Sequence[str],
    stored: Callable[[str], StoredDocument | None],
) -> None:
    """OutOfScopeError if a guarded put of ``doc_ids`` would replace a document outside
    ``guard``; run it under the store's write lock, so nothing changes between check and write."""
    if guard is None:
        return
    for doc_id in doc_ids:
        found = stored(doc_id)
        if found is not None and not passes(guard, found):
            raise OutOfScopeError(
                f"the id {doc_id!r} is taken by a document outside this key's scope; "
                "choose another id"
            )


@dataclass(frozen=True, slots=True)
class Written:
    """The outcome of a write that the store has made durable."""

    seq: int
    """The store's sequence number after this write: every write increments it by one per
    document (on a Milvus server, by a stride per document, each replica numbering in a slot
    of its own so that no two writes share a number). ``wait_for(seq)`` returns once searches
    see it."""
    existed: tuple[bool, ...]
    """Per document: there was one with that id before (replaced or deleted)."""


@dataclass(frozen=True, slots=True)
class StoreMetric:
    """A figure a store reports for ``/metrics``, read when scraped."""

    name: str
    help: str
    value: float
    counter: bool = False
    """A count that only grows (else a gauge)."""


class Snapshot(Protocol):
    """A consistent archive of a store, pinned when taken and streamed from there."""

    @property
    def seq(self) -> int:
        """The last write the archive holds."""
        ...

    @property
    def label(self) -> str:
        """Which state of the store it holds, for messages (a version's name)."""
        ...

    def chunks(self) -> Iterator[bytes]:
        """The archive's bytes (a tar file); the pinned files are released at the end."""
        ...

    def close(self) -> None:
        """Release the pinned files (again: a no-op)."""
        ...


def save_snapshot(snapshot: Snapshot, out: Path) -> None:
    """Write ``snapshot`` to ``out`` durably (``indexer.durable.write_atomically``: a crash
    never leaves a partial archive under the name asked for), and release it."""
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        write_atomically(out, snapshot.chunks())
    finally:
        snapshot.close()  # also where writing failed before its chunks were read


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


@dataclass(frozen=True, slots=True)
class Rebuild:
    """What a reindex asks of a store (``Store.reindex``)."""

    manifest: Manifest
    """The new version's settings: model, chunking, keyword, title prefix."""
    prepare: Prepare
    """Chunks and embeds documents with those settings."""
    progress: Progress | None = None
    on_switch: Callable[[], None] | None = None
    """Runs at the switch, with this process's writes held (the service swaps its model
    there); past the commit point, so its failure is logged and the switch stands."""

    def report(self, phase: str, done: int, total: int) -> None:
        if self.progress is not None:
            self.progress(phase, done, total)


class Store(Protocol):
    """A durable, live corpus. ``put`` and ``delete`` return once the write is durable.

    Besides reading and writing, a store says what it can and cannot do, so that the service
    and the CLI never ask which kind it is: ``keyword_problem``, ``follow`` (stores other
    processes serve too), ``metrics`` and ``retire_seconds``. (Snapshots are the kind's:
    ``StoreKind.snapshot``.)
    """

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
        """A new store at ``location`` holding ``documents``, replacing nothing
        (StoreExistsError)."""
        ...

    @classmethod
    def open(cls, location: Any, *, writable: bool = True, refresh_interval: float = 1.0) -> Self:
        """The store at ``location``: StoreMissingError where there is none, StoreOpenError
        where it cannot be read, StoreLockedError where another process writes to it."""
        ...

    def reader(self) -> Reader:
        """The latest published view (near-real-time: writes appear at the next refresh)."""
        ...

    def get(self, doc_id: str) -> StoredDocument | None:
        """A document as last written (real-time: it need not be searchable yet)."""
        ...

    def put(
        self,
        documents: Sequence[IndexedDocument],
        *,
        epoch: int | None = None,
        guard: Filter | None = None,
    ) -> Written:
        """Add or replace documents (by id). Searchable after the next refresh. With
        ``guard``, nothing is written if one of them would replace a document that does not
        pass it (OutOfScopeError): checked in the same step as the write."""
        ...

    @property
    def epoch(self) -> int:
        """Changes when a reindex switches the index's settings or model."""
        ...

    def delete(self, doc_ids: Sequence[str], *, guard: Filter | None = None) -> Written:
        """Remove documents; no reader taken after this returns contains them. With
        ``guard``, a document that does not pass it is left alone, as if absent."""
        ...

    def reindex(self, rebuild: Rebuild) -> Manifest:
        """Rebuild every live document with ``rebuild.prepare`` into a new version with
        ``rebuild.manifest``'s settings, then switch to it atomically. Searches and writes go
        on meanwhile, and no write acknowledged during the rebuild is lost. ``epoch`` changes
        after ``rebuild.on_switch``. Raises ``ReindexError`` if the new version fails, leaving
        the old one serving."""
        ...

    def refresh(self) -> None:
        """Publish every write so far to new readers now."""
        ...

    def wait_for(self, seq: int, timeout: float) -> bool:
        """Block until readers contain write ``seq``; False if ``timeout`` passed first."""
        ...

    @property
    def keyword_problem(self) -> str | None:
        """Why keyword (and so hybrid) search is unavailable here, or None."""
        ...

    def follow(self, follower: Follower) -> None:
        """Call ``follower`` when another process has reindexed this store (a store only one
        process serves never calls it)."""
        ...

    def metrics(self) -> list[StoreMetric]:
        """The store's own figures for ``/metrics`` (besides the counts every reader has)."""
        ...

    @property
    def retire_seconds(self) -> float:
        """How long after a reindex's switch the replaced version stays (other processes
        serving the store move over meanwhile); 0 where it goes at once."""
        ...

    def wait_retired(self, timeout: float | None = None) -> None:
        """Return once the version the last reindex replaced is gone."""
        ...

    def close(self) -> None: ...


@dataclass(frozen=True, slots=True)
class Kept:
    """Why a store that is there is served as it is rather than rebuilt from files."""

    reason: str
    """What the store holds, after its description: "has taken 3 writes through the API"."""
    lost: str
    """What rebuilding it anyway (``--force``) would lose."""


class StoreKind(Protocol):
    """One kind of store, as the core picks, makes, opens and checks it from settings: the
    registry (``indexer.stores.registry``) holds one of these per kind, and nothing outside a
    kind's subpackage names its classes. A *location* is what the kind's ``Store.open`` takes
    (a directory, a Milvus target); ``settings`` are the service's or the CLI's, which include
    the kind's own settings model (``settings_model``)."""

    name: str
    """As ``SEARCH_STORE`` names it, and as manifests record it."""
    summary: str
    """Where its stores live, in terms of its settings (for the settings' description)."""
    store: type[Store]
    settings_model: type[Any]
    """Its own settings (a pydantic-settings model), part of ``IndexSettings``."""
    exact_index: str
    """The index that searches exhaustively (evaluations measure ranking, not recall)."""
    index_examples: Sequence[tuple[str, str]]
    """Index types with parameters it accepts, from exact to approximate (the contract suite
    runs every one)."""

    def location(self, settings: Any) -> Any:
        """The location ``settings`` name."""
        ...

    def location_in(self, directory: Path, name: str) -> Any:
        """A location for a throwaway store called ``name`` under ``directory`` (an
        evaluation's, a test's)."""
        ...

    def describe(self, location: Any) -> str:
        """The location in a sentence: "the index at data/index"."""
        ...

    def index_settings(self, settings: Any) -> tuple[str, str]:
        """The index type and parameters ``settings`` give, in the kind's terms."""
        ...

    def check_index(self, spec: str, params: str, dimension: int) -> None:
        """ValueError, saying why, if the kind cannot make that index (before a slow build)."""
        ...

    def read_manifest(self, location: Any) -> Manifest:
        """The manifest of the store there, without opening it for searches:
        StoreMissingError, StoreOpenError, or StoreUnavailableError."""
        ...

    def open(self, location: Any, *, writable: bool = True, refresh_interval: float = 1.0) -> Store:
        """As ``Store.open``."""
        ...

    def create(
        self,
        location: Any,
        manifest: Manifest,
        documents: Sequence[IndexedDocument],
        *,
        force: bool,
        started: float,
    ) -> Manifest:
        """Write a new store holding ``documents``; its final manifest. What is there is
        replaced only as ``check_replaceable`` allows (``force``: a store holding writes);
        ``started`` (``time.perf_counter``) is when the build began, for ``build_seconds``."""
        ...

    def discard_unfinished(self, location: Any) -> bool:
        """Remove what a build of ``location`` that died left behind (a resumed build calls
        this before it writes): a FAISS build's staging directory, a Milvus store's collections
        without a manifest and the dead build's claim. A complete store is left as it is.
        True if something was removed."""
        ...

    def check_replaceable(self, location: Any, *, force: bool) -> None:
        """Refuse to build over what is there: StoreExistsError (a store that holds writes,
        unless ``force``; another build under way), StoreLockedError (a service holds it),
        StoreOpenError (something that is not a store)."""
        ...

    def kept(self, location: Any) -> Kept | None:
        """Why the store there must be served as it is by a build that only rebuilds what is
        stale (``--if-stale``), or None: rebuild it if it is stale or missing."""
        ...

    def check_servable(self, location: Any) -> None:
        """StoreLockedError, with what to do, if a service could not write to it here."""
        ...

    def build_options(self, settings: Any) -> str:
        """The ``python -m indexer build`` options that reach this location."""
        ...

    def drop(self, location: Any) -> None:
        """Delete the store and every document in it."""
        ...

    def snapshot(self, location: Any) -> Snapshot:
        """A consistent archive of the store there as of now, taken without pausing the
        process that serves it; SnapshotUnsupportedError where this kind is not snapshotted
        here (the message says what to use instead), SnapshotError where it cannot be now."""
        ...

    def restore(self, archive: Path, location: Any, *, force: bool) -> int:
        """Rebuild the store at ``location`` from a ``snapshot`` archive (``force``: replacing
        what is there); the last write it holds. IncompatibleSnapshotError for an archive of
        another format, SnapshotError for one that does not check out."""
        ...
