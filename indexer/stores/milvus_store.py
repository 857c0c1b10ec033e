"""The Milvus store: the corpus lives in Milvus, so a replica holds no state of its own (but a
second's memory of its own writes).

The same ``pymilvus.MilvusClient`` code reaches Milvus Lite (a local file, one process), a
standalone server and a cluster, by URI. A store named ``search`` is three collections:

- ``search_passages``: one row per passage with its vector, text, offsets, document id, title
  and metadata (copied from the document, so Milvus filters before ranking and a hit needs no
  second lookup), the write's sequence number, and, where Milvus has full-text search (2.5+,
  Milvus Lite 3), the BM25 sparse vector Milvus derives from the passage's text;
- ``search_documents``: each document's full text (in pieces: a Milvus string holds at most
  65 535 bytes), title and metadata, for ``GET /documents``;
- ``search_meta``: the manifest (model, chunking, keyword settings) and the write counter.

Visibility works as in the FAISS store: every row carries the sequence number of its write,
and a reader only sees rows up to the sequence number it was published at, so a write becomes
searchable at the next refresh (every ``refresh_interval``) and ``wait_for`` works. A replica
learns of other replicas' writes through the shared counter at its own refresh. A delete (and
the old passages of a replaced document) is acknowledged once searches at the store's
consistency level no longer see it.

Writes are group commits: the puts that queue while one is being written go together in the
next round of Milvus calls. A round does not wait for Milvus's time tick: the replica keeps the
rows its writes of the last second left (``_RecentWrites``), and reads Milvus as of its writes
before those. Another replica's write counts for a put once Milvus has applied it (a tick or
two after it was acknowledged); a delete reads at ``Strong``. Two replicas writing one document
within that moment can leave both versions until it is written again (``get`` returns the one
with the higher sequence number).

Milvus has no transactions across rows: a write inserts the new passages and document rows
first and then deletes the old ones, so a crash between the two can leave an unacknowledged
write's new rows next to the old ones until the document is written or deleted again; an
acknowledged write is in Milvus's own write-ahead log, which makes it durable.
"""

from __future__ import annotations

import logging
import re
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from functools import cached_property, partial
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Literal, Self, TypeVar

import numpy as np
from cachetools import LRUCache

from indexer.filters import Filter
from indexer.ingest import passage_representation
from indexer.manifest import FORMAT_VERSION, Counts, Manifest, ManifestError
from indexer.stores.base import (
    DocumentRefusedError,
    IndexedDocument,
    Prepare,
    Progress,
    ReadOnlyStoreError,
    ReindexError,
    SearchUnsupportedError,
    StaleWriteError,
    StoredDocument,
    StoreUnavailableError,
    StoreWriteError,
    Written,
)
from indexer.stores.milvus_filters import expression, literal, typed_fields
from indexer.types import Document, DocumentInfo, Ids, Matrix, Passage, Scores

if TYPE_CHECKING:
    from pymilvus import MilvusClient

logger = logging.getLogger("indexer")
T = TypeVar("T")

Consistency = Literal["Strong", "Session", "Bounded", "Eventually"]
CONSISTENCY_LEVELS: tuple[Consistency, ...] = ("Strong", "Session", "Bounded", "Eventually")
MILVUS_EXTRA_INSTALL = "pip install 'semantic-search[milvus]'"
FULL_TEXT_SINCE = (2, 5)
"""The first Milvus server with full-text search (the BM25 function); Milvus Lite 3 has it."""
INDEX_TYPES = ("FLAT", "HNSW", "IVF_FLAT", "IVF_SQ8", "AUTOINDEX")
# Parameters applied at search time; every other one shapes the index when it is built.
_SEARCH_KEYS = frozenset({"ef", "nprobe"})
_MAX_STRING = 65_535  # bytes in one Milvus VARCHAR
_MAX_ID = 4_096  # bytes of a document id (the API allows 512 characters)
_TEXT_PIECE = _MAX_STRING // 4  # characters that always fit, at up to 4 bytes each in UTF-8
_MAX_RESULTS = 16_384  # Milvus's cap on limit (and offset + limit)
_INSERT_BATCH = 512
# A build this large is sealed at once, so Milvus indexes it now rather than searching the
# rows by brute force until its own segment size is reached. (A flush costs seconds.)
_SEAL_ROWS = 10_000
_ID_BATCH = 256  # document ids per `in [...]` lookup
_PAYLOAD = ["doc_id", "chunk_id", "start", "end", "text", "title", "metadata"]
_DUMMY_DIM = 2  # Milvus 2.3 wants a vector field in every collection
_GONE_TIMEOUT = 30.0
# A build's claim older than this is a crashed builder's: ignored, then dropped. A replica
# waits this long for another's build too (python -m indexer build --if-stale).
BUILD_CLAIM_SECONDS = 900.0
_DELETE_BATCH = 4_096  # primary keys per delete
# How long a replica answers for its own writes from memory (_RecentWrites): Milvus has applied
# a write within a tick or two (200 ms each), so reads as of writes this old do not wait.
_RECENT_SECONDS = 1.0
# A reindexed version of store ``search`` lives in ``search__r<n>_*``; the row ``current`` of
# ``search_meta`` names the version served (none: ``search_*`` itself).
_VERSION_MARK = "__r"
# After a reindex's switch the version before it is kept this long, and the writes replicas
# still make to it are copied over: each replica moves at its next refresh, or once it has
# loaded the new model.
SWITCH_GRACE_SECONDS = 60.0
_REINDEX_BATCH = 32  # documents prepared at a time by a reindex
_CATCH_UP_ROUNDS = 5  # before the switch, catch-up rounds while writes go on


@dataclass
class _OldRows:
    """A document's rows before a write, as (primary key, seq) pairs."""

    exists: bool = False
    """It has a first text piece: the document is there (not only a failed write's rows)."""
    documents: list[tuple[int, int]] = field(default_factory=list)
    passages: list[tuple[int, int]] = field(default_factory=list)


class _RecentWrites:
    """What this replica's writes of the last ``_RECENT_SECONDS`` left of each document, and
    the Milvus timestamps up to which reads need not wait (see ``_read_for_write``).

    Used by the writer alone, under the store's write lock."""

    def __init__(self, collections: Sequence[str]) -> None:
        self.collections = collections
        # Per document: when, the rows this replica's write left, and the keys it deleted
        # (Milvus allocates auto ids across collections, so one set serves both).
        self._documents: dict[str, tuple[float, _OldRows, set[int]]] = {}
        # (when, each collection's last-write timestamp then), oldest first.
        self._marks: list[tuple[float, dict[str, int]]] = []
        self._settled: dict[str, int] = {}
        """Per collection: a timestamp past every write no longer in ``_documents``."""

    def rows(self, doc_ids: Sequence[str]) -> dict[str, tuple[_OldRows, set[int]]]:
        self._expire()
        found = {d: self._documents[d] for d in doc_ids if d in self._documents}
        return {d: (rows, deleted) for d, (_, rows, deleted) in found.items()}

    def read_options(self, collection: str, latest: int) -> dict[str, Any]:
        """How to read ``collection`` so as to see every write of this client older than
        those remembered, without waiting for the newer ones."""
        settled = self._settled.get(collection)
        if latest <= 0 or settled is None:  # nothing to go by: wait for this client's writes
            return {"consistency_level": "Session"}
        # At Customized, pymilvus and Milvus keep an explicit guarantee timestamp (at
        # Eventually Milvus 2.3.5 ignores it).
        return {"consistency_level": "Customized", "guarantee_timestamp": max(settled, 1)}

    def record(
        self,
        documents: Mapping[str, _OldRows],
        deleted: Mapping[str, _OldRows],
        stamps: Mapping[str, int],
    ) -> None:
        """This replica's write left ``documents`` with those rows, having deleted the rows
        ``deleted`` names; ``stamps``: each collection's last-write timestamp after it."""
        now = time.monotonic()
        for doc_id, rows in documents.items():
            _, _, before = self._documents.pop(doc_id, (now, rows, set()))
            gone = deleted.get(doc_id)
            if gone is not None:
                before |= {pk for pk, _ in gone.documents} | {pk for pk, _ in gone.passages}
            self._documents[doc_id] = (now, rows, before)  # insertion order: oldest first
        self._marks.append((now, dict(stamps)))

    def reset(self) -> None:
        """Remember nothing: reads wait as at ``Session`` until new writes have settled."""
        self._documents.clear()
        self._marks.clear()
        self._settled.clear()

    def _expire(self) -> None:
        horizon = time.monotonic() - _RECENT_SECONDS
        while self._marks and self._marks[0][0] <= horizon:
            self._settled.update(self._marks.pop(0)[1])
        for doc_id, (when, _, _) in list(self._documents.items()):
            if when > horizon:
                break
            del self._documents[doc_id]


@dataclass
class _PendingPut:
    """A put waiting for its group's round; ``outcome`` is set once the round is over."""

    documents: tuple[IndexedDocument, ...]
    epoch: int | None = None
    outcome: Written | BaseException | None = None


@dataclass(frozen=True, slots=True)
class MilvusTarget:
    """Which Milvus, and which store in it: what ``MilvusStore.open`` takes."""

    uri: str
    """A local file for Milvus Lite, or ``http://host:19530`` for a server or cluster."""
    collection: str = "search"
    token: str = field(default="", repr=False)
    """``user:password`` or an API key, for a Milvus with authentication."""
    consistency: Consistency = "Session"

    def __post_init__(self) -> None:
        if re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]{0,200}", self.collection) is None:
            raise ValueError(
                f"Milvus collection name {self.collection!r}: letters, digits and underscores, "
                "not starting with a digit"
            )
        if self.consistency not in CONSISTENCY_LEVELS:
            raise ValueError(f"consistency {self.consistency!r} is not one of {CONSISTENCY_LEVELS}")

    @property
    def is_lite(self) -> bool:
        return "://" not in self.uri

    def __str__(self) -> str:
        return f"Milvus collection {self.collection!r} at {self.uri}"


def parse_index_params(index_type: str, params: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """``"M=16,efConstruction=200,ef=128"`` as (build parameters, search parameters)."""
    if index_type not in INDEX_TYPES:
        raise ValueError(f"Milvus index type {index_type!r} is not one of {', '.join(INDEX_TYPES)}")
    build: dict[str, Any] = {}
    search: dict[str, Any] = {}
    for item in filter(None, (part.strip() for part in params.split(","))):
        name, equals, value = item.partition("=")
        if not equals or not name.strip() or not value.strip():
            raise ValueError(f"Milvus index parameter {item!r} is not name=value")
        number = float(value) if re.fullmatch(r"-?\d+(\.\d+)?", value.strip()) else None
        parsed: Any = (
            value.strip() if number is None else (int(number) if number.is_integer() else number)
        )
        (search if name.strip() in _SEARCH_KEYS else build)[name.strip()] = parsed
    return build, search


def full_text_support(version: str) -> bool:
    """Does a Milvus reporting ``version`` have full-text search?"""
    if version.startswith("milvus_lite"):
        return True
    found = re.match(r"v?(\d+)\.(\d+)", version)
    return found is not None and (int(found[1]), int(found[2])) >= FULL_TEXT_SINCE


def connect(target: MilvusTarget) -> MilvusClient:
    """A client for ``target``; StoreUnavailableError if Milvus cannot be reached."""
    try:
        from pymilvus import MilvusClient
    except ImportError as error:
        raise StoreUnavailableError(
            f"the Milvus store needs pymilvus, not installed here: {MILVUS_EXTRA_INSTALL}"
        ) from error
    options: dict[str, Any] = {}
    if target.is_lite:
        Path(target.uri).parent.mkdir(parents=True, exist_ok=True)
        # Milvus Lite's local server answers pymilvus's keep-alive pings (every 10 s) with
        # "too many pings" and drops the connection: a process on the same machine needs none.
        options["grpc_options"] = {"grpc.keepalive_time_ms": 2**31 - 1}
    try:
        return MilvusClient(uri=target.uri, token=target.token, timeout=30, **options)
    except Exception as error:  # pymilvus raises several kinds for the same "cannot reach"
        raise StoreUnavailableError(
            f"cannot reach Milvus at {target.uri}: {_reason(error)}"
        ) from error


def collection_names(target: MilvusTarget) -> tuple[str, str, str]:
    base = target.collection
    return f"{base}_passages", f"{base}_documents", f"{base}_meta"


class MilvusStoreMissingError(LookupError):
    """No complete store under that name in that Milvus."""


def version_number(collection: str) -> int:
    """0 for a store's first version, n for ``<name>__r<n>``."""
    found = re.search(rf"{_VERSION_MARK}(\d+)$", collection)
    return int(found[1]) if found else 0


@dataclass(frozen=True)
class _Version:
    """One version of a store: where its rows are and how they were prepared. A reindex makes
    another; a view keeps the version it was published from."""

    data: MilvusTarget
    """Whose collection names hold it: the store's own, or ``<name>__r<n>``."""
    manifest: Manifest
    full_text: bool

    @property
    def passages(self) -> str:
        return collection_names(self.data)[0]

    @property
    def documents(self) -> str:
        return collection_names(self.data)[1]

    @property
    def meta(self) -> str:
        return collection_names(self.data)[2]

    @cached_property
    def search_params(self) -> dict[str, Any]:
        """Applied to every vector search (``ef``, ``nprobe``), as the manifest records them."""
        store = self.manifest.store
        return parse_index_params(store.spec, store.search_params)[1]


@dataclass(frozen=True)
class MilvusView:
    """A published view of a Milvus store (implements ``Reader``): rows up to ``seq``."""

    store: MilvusStore = field(repr=False)
    version: _Version = field(repr=False)
    seq: int
    document_count: int
    passage_count: int

    @property
    def manifest(self) -> Manifest:
        return self.version.manifest

    def vector_search(
        self, vector: Matrix, k: int, filter: Filter | None = None
    ) -> tuple[Scores, Ids]:
        search = dict(self.version.search_params)
        if "ef" in search:
            search["ef"] = max(int(search["ef"]), k)  # Milvus refuses an ef below the limit
        return self.store._search(
            self.version,
            np.asarray(vector, dtype=np.float32).reshape(-1).tolist(),
            "vector",
            {"metric_type": "IP", "params": search},
            k,
            self._where(filter),
        )

    def keyword_search(
        self, query: str, k: int, filter: Filter | None = None
    ) -> tuple[Scores, Ids]:
        problem = self.store._keyword_problem(self.version)
        if problem is not None:
            raise SearchUnsupportedError(problem)
        if not query.strip():
            return _empty()
        scores, ids = self.store._search(
            self.version,
            query,
            "sparse",
            {"metric_type": "BM25", "params": {}},
            k,
            self._where(filter),
        )
        # Milvus Lite returns BM25 scores negated; BM25 itself is never negative.
        scores = np.abs(scores)
        keep = scores > 0
        return scores[keep], ids[keep]

    def passage(self, passage_id: int) -> Passage:
        return self.store._payload(self.version, passage_id)[0]

    def document_info(self, passage_id: int) -> DocumentInfo:
        return self.store._payload(self.version, passage_id)[1]

    def documents(
        self, offset: int, limit: int, filter: Filter | None = None
    ) -> list[StoredDocument]:
        collection, where = self._document_rows(filter)
        rows = self.store._query_all(collection, where, ["doc_id"], skip=offset, limit=limit)
        # Once, should two replicas' writes of a moment have left two copies (see _stored).
        ids = list(dict.fromkeys(row["doc_id"] for row in rows))
        return self.store._stored(ids, self.seq, self.version)

    def document_ids(self, filter: Filter | None = None) -> list[str]:
        collection, where = self._document_rows(filter)
        rows = self.store._query_all(collection, where, ["doc_id"])
        return list(dict.fromkeys(row["doc_id"] for row in rows))

    def count_documents(self, filter: Filter | None = None) -> int:
        if filter is None:
            return self.document_count
        return self.store._count(*self._document_rows(filter))

    def _document_rows(self, filter: Filter | None) -> tuple[str, str]:
        """Where one row per visible document is, in write order: a document's first piece,
        or (filtered: the typed metadata is on the passages) its first passage."""
        if filter is None:
            return self.version.documents, f"part == 0 and seq <= {self.seq}"
        return self.version.passages, f"chunk_id == 0 and {self._where(filter)}"

    def _where(self, filter: Filter | None) -> str:
        condition = expression(filter)
        visible = f"seq <= {self.seq}"
        return f"{visible} and {condition}" if condition else visible


class MilvusStore:
    """A live corpus in Milvus (see the module docstring)."""

    kind: ClassVar[str] = "milvus"

    def __init__(
        self,
        target: MilvusTarget,
        client: MilvusClient,
        version: _Version,
        *,
        server_version: str,
        read_only: str | None,
        refresh_interval: float,
    ) -> None:
        self.target = target
        self._client = client
        self._version = version
        self._epoch = 0  # +1 at each switch to a reindexed version
        self.follower: Callable[[Manifest], Callable[[], None] | None] | None = None
        """Called (in the refresh thread) when another process has reindexed the store, with
        the new version's manifest; what it returns runs at the switch, with writes held. The
        service readies the new model and preparer here."""
        self._unfollowable: set[str] = set()
        self._following = threading.Lock()
        self._retiring: threading.Thread | None = None
        self.server_version = server_version
        self._read_only = read_only
        self.refresh_interval = refresh_interval
        self._payloads: LRUCache[int, tuple[Passage, DocumentInfo]] = LRUCache(maxsize=10_000)
        self._payload_lock = threading.Lock()
        self._write_lock = threading.Lock()
        self._queue_lock = threading.Lock()
        self._queue: list[_PendingPut] = []
        self._recent = _RecentWrites((version.passages, version.documents))
        # How to read the shared counter, for other replicas' writes (this one's are in
        # self._seq): short of Strong, no level waits for them, so read without waiting.
        self._others: Consistency | None = None if target.consistency == "Strong" else "Eventually"
        # Reads a write or a publish makes at once (see _read_for_write).
        self._readers = ThreadPoolExecutor(max_workers=3, thread_name_prefix="milvus-read")
        self._visible = threading.Condition()
        self._seq = self._stored_seq()
        self._view = self._publish_view(self._seq)
        self._closed = threading.Event()
        self._refresher = threading.Thread(
            target=self._refresh_loop, name="milvus-refresh", daemon=True
        )
        self._refresher.start()

    # -- making and opening -----------------------------------------------------------------

    @classmethod
    def create(
        cls, location: MilvusTarget, manifest: Manifest, documents: Sequence[IndexedDocument]
    ) -> Self:
        """Create the store's collections in Milvus and fill them; refuses to replace any."""
        client = connect(location)
        claim: str | None = None
        try:
            names = collection_names(location)
            # Claimed first, checked after: a build that finished meanwhile created its
            # collections before it dropped its claim, so one of the two is seen.
            claim = _claim_build(client, location)
            existing = [name for name in names if _call(partial(client.has_collection, name))]
            if existing:
                raise FileExistsError(
                    f"{location} already holds {', '.join(existing)}; refusing to replace it"
                )
            version = _call(client.get_server_version)
            full_text = full_text_support(version)
            started = time.perf_counter()
            _create_collections(client, location, manifest, full_text=full_text)
            seq = 0
            numbered = [(seq, item) for item in documents]
            written = _insert_documents(client, _Version(location, manifest, full_text), numbered)
            passages, documents_collection, meta = names
            if written >= _SEAL_ROWS:
                _call(lambda: client.flush(passages))  # seal: Milvus builds the index now
            final = manifest.model_copy(
                update={
                    "format_version": FORMAT_VERSION,
                    "counts": Counts(documents=len(documents), passages=written),
                    "built_at": datetime.now(UTC),
                    "build_seconds": round(time.perf_counter() - started, 3),
                    "corpus": manifest.corpus.model_copy(update={"checksums": {}}),
                }
            )
            # The manifest last: its presence says the store is complete.
            _call(lambda: client.upsert(meta, [_meta_row("seq", str(seq))]))
            _call(lambda: client.upsert(meta, [_meta_row("manifest", final.model_dump_json())]))
            del documents_collection
        except BaseException:
            if claim is not None:
                _drop_quietly(client, claim)
            client.close()
            raise
        if claim is not None:
            _drop_quietly(client, claim)
        return cls._opened(location, client, writable=True, refresh_interval=1.0)

    @classmethod
    def open(
        cls,
        location: MilvusTarget,
        *,
        writable: bool = True,
        refresh_interval: float = 1.0,
    ) -> Self:
        """The store ``location`` names; MilvusStoreMissingError if Milvus has none there."""
        return cls._opened(
            location, connect(location), writable=writable, refresh_interval=refresh_interval
        )

    @classmethod
    def _opened(
        cls, target: MilvusTarget, client: MilvusClient, *, writable: bool, refresh_interval: float
    ) -> Self:
        try:
            version = _open_version(client, target)
            store = cls(
                target,
                client,
                version,
                server_version=_call(client.get_server_version),
                read_only=None if writable else "opened for reading only",
                refresh_interval=refresh_interval,
            )
        except BaseException:
            client.close()
            raise
        return store

    @staticmethod
    def being_built(target: MilvusTarget) -> bool:
        """Is a build of ``target`` under way (or was one left half-done): a live claim, or
        collections without a manifest? Call when ``exists`` is False."""
        client = connect(target)
        try:
            if _live_claims(client, target):
                return True
            return any(_call(partial(client.has_collection, n)) for n in collection_names(target))
        finally:
            client.close()

    @staticmethod
    def exists(target: MilvusTarget) -> bool:
        """Does ``target`` hold a complete store (its manifest written)?"""
        client = connect(target)
        try:
            read_manifest(client, target)
        except MilvusStoreMissingError:
            return False
        finally:
            client.close()
        return True

    @staticmethod
    def drop(target: MilvusTarget) -> None:
        """Delete the store's collections (and every document in them)."""
        client = connect(target)
        try:
            versions = re.compile(rf"{re.escape(target.collection)}{_VERSION_MARK}\d+_\w+")
            for name in _call(client.list_collections):
                if name in collection_names(target) or versions.fullmatch(name):
                    _call(partial(client.drop_collection, name))
            for name in _claims(client, target):
                _call(partial(client.drop_collection, name))
        finally:
            client.close()

    # -- reading ----------------------------------------------------------------------------

    @property
    def location(self) -> MilvusTarget:
        return self.target

    @property
    def manifest(self) -> Manifest:
        return self._version.manifest

    @property
    def passages_collection(self) -> str:
        return self._version.passages

    @property
    def documents_collection(self) -> str:
        return self._version.documents

    @property
    def meta_collection(self) -> str:
        """The served version's: its manifest and write counter."""
        return self._version.meta

    @property
    def full_text(self) -> bool:
        return self._version.full_text

    @property
    def read_only(self) -> str | None:
        return self._read_only

    @property
    def epoch(self) -> int:
        return self._epoch

    @property
    def seq(self) -> int:
        return self._seq

    @property
    def keyword_problem(self) -> str | None:
        """Why keyword (and so hybrid) search is unavailable here, or None."""
        return self._keyword_problem(self._version)

    def _keyword_problem(self, version: _Version) -> str | None:
        if version.full_text:
            return None
        return (
            f"keyword and hybrid search need Milvus {'.'.join(map(str, FULL_TEXT_SINCE))} or "
            f"later (full-text search); this Milvus is {self.server_version} and "
            f"{version.passages} has no BM25 field: use mode=semantic"
        )

    def reader(self) -> MilvusView:
        return self._view

    def get(self, doc_id: str) -> StoredDocument | None:
        found = self._stored([doc_id], None)
        return found[0] if found else None

    def _search(
        self,
        version: _Version,
        data: Any,
        field_name: str,
        params: dict[str, Any],
        k: int,
        where: str,
    ) -> tuple[Scores, Ids]:
        if k <= 0:
            return _empty()
        results = _call(
            lambda: self._client.search(
                version.passages,
                data=[data],
                anns_field=field_name,
                limit=min(k, _MAX_RESULTS),
                filter=where,
                # The key too: a 2.3 server names no primary field in its results.
                output_fields=["pk", *_PAYLOAD],
                search_params=params,
                consistency_level=self.target.consistency,
            )
        )
        hits = _one_copy(results[0] if results else [])
        ids = np.fromiter((int(hit["pk"]) for hit in hits), dtype=np.int64, count=len(hits))
        scores = np.fromiter((hit["distance"] for hit in hits), dtype=np.float32, count=len(hits))
        with self._payload_lock:
            for hit in hits:
                self._payloads[int(hit["pk"])] = _payload_of(hit["entity"])
        return scores, ids

    def _payload(self, version: _Version, passage_id: int) -> tuple[Passage, DocumentInfo]:
        with self._payload_lock:
            cached = self._payloads.get(passage_id)
        if cached is not None:
            return cached
        rows = _call(
            lambda: self._client.query(
                version.passages,
                filter=f"pk == {int(passage_id)}",
                output_fields=_PAYLOAD,
                consistency_level=self.target.consistency,
            )
        )
        if not rows:
            raise KeyError(f"no passage {passage_id}")
        payload = _payload_of(rows[0])
        with self._payload_lock:
            self._payloads[passage_id] = payload
        return payload

    def _stored(
        self, doc_ids: Sequence[str], seq: int | None, version: _Version | None = None
    ) -> list[StoredDocument]:
        """The documents ``doc_ids`` as last written (up to ``seq``), in that order."""
        found = self._latest(version or self._version, doc_ids, seq)
        return [found[d][1] for d in doc_ids if d in found]

    def _latest(
        self, version: _Version, doc_ids: Sequence[str], seq: int | None, **read: Any
    ) -> dict[str, tuple[int, StoredDocument]]:
        """The documents ``doc_ids`` as last written (up to ``seq``), with their writes'
        sequence numbers."""
        found: dict[str, tuple[int, StoredDocument]] = {}
        visible = "" if seq is None else f" and seq <= {seq}"
        for start in range(0, len(doc_ids), _ID_BATCH):
            batch = doc_ids[start : start + _ID_BATCH]
            ids = f"doc_id in [{', '.join(literal(d) for d in batch)}]"
            # Rows come in key order, which is insertion order. Two replicas writing a document
            # at the same moment can both number their write alike (the shared counter has no
            # compare-and-set): a copy's first piece or passage starts it anew, so the copy
            # inserted last is the one read.
            pieces: dict[tuple[str, int], list[dict[str, Any]]] = {}
            for row in self._query_all(
                version.documents,
                ids + visible,
                ["doc_id", "seq", "part", "parts", "title", "text", "metadata"],
                **read,
            ):
                key = (row["doc_id"], row["seq"])
                if row["part"] == 0:
                    pieces[key] = []
                pieces.setdefault(key, []).append(row)
            latest: dict[str, tuple[int, list[dict[str, Any]]]] = {}
            for (doc_id, row_seq), rows in pieces.items():
                complete = len(rows) == rows[0]["parts"]
                if complete and row_seq > latest.get(doc_id, (-1, []))[0]:
                    latest[doc_id] = (row_seq, rows)
            passages: dict[tuple[str, int], list[Passage]] = {}
            for row in self._query_all(
                version.passages,
                ids + visible,
                ["doc_id", "seq", "chunk_id", "start", "end", "text"],
                **read,
            ):
                key = (row["doc_id"], row["seq"])
                if row["chunk_id"] == 0:
                    passages[key] = []
                passages.setdefault(key, []).append(
                    Passage(row["doc_id"], row["chunk_id"], row["start"], row["end"], row["text"])
                )
            for doc_id, (row_seq, rows) in latest.items():
                rows.sort(key=lambda r: r["part"])
                first = rows[0]
                document = Document(
                    doc_id, first["title"], "".join(r["text"] for r in rows), first["metadata"]
                )
                own = sorted(passages.get((doc_id, row_seq), []), key=lambda p: p.chunk_id)
                found[doc_id] = (row_seq, StoredDocument(document, tuple(own)))
        return found

    def _query_all(
        self,
        collection: str,
        where: str,
        fields: list[str],
        *,
        skip: int = 0,
        limit: int | None = None,
        **read: Any,
    ) -> Iterator[dict[str, Any]]:
        """Rows matching ``where`` in primary-key order (write order: keys are allocated in
        increasing order), paged by key so that no request passes Milvus's result cap."""
        cursor = -1
        wanted = skip + (limit if limit is not None else 2**62)
        seen = 0
        while seen < wanted:
            page = min(_MAX_RESULTS, wanted - seen)
            rows: list[dict[str, Any]] = _call(
                partial(
                    self._client.query,
                    collection,
                    filter=f"pk > {cursor} and ({where})",
                    output_fields=["pk", *fields],
                    limit=page,
                    **(read or {"consistency_level": self.target.consistency}),
                )
            )
            if not rows:
                return
            rows.sort(key=lambda r: r["pk"])
            for row in rows:
                if seen >= skip:
                    yield row
                seen += 1
            cursor = rows[-1]["pk"]

    def _count(self, collection: str, where: str, consistency: Consistency | None = None) -> int:
        rows = _call(
            lambda: self._client.query(
                collection,
                filter=where,
                output_fields=["count(*)"],
                consistency_level=consistency or self.target.consistency,
            )
        )
        return int(rows[0]["count(*)"])

    # -- writing ----------------------------------------------------------------------------

    def put(self, documents: Sequence[IndexedDocument], *, epoch: int | None = None) -> Written:
        dimension = self.manifest.model.dimension
        for item in documents:
            if item.vectors.shape != (len(item.passages), dimension):
                raise ValueError(
                    f"document {item.document.doc_id!r}: {len(item.passages)} passages need "
                    f"vectors of shape ({len(item.passages)}, {dimension}), not "
                    f"{item.vectors.shape}"
                )
        for item in documents:
            _check_fits(item, self.manifest.title_prefix)
        pending = _PendingPut(tuple(documents), epoch)
        with self._queue_lock:
            self._queue.append(pending)
        # Group commit: whoever holds the write lock writes every put queued meanwhile in one
        # Milvus round (one read, one insert per collection, one delete, one counter upsert),
        # so concurrent writers share the round's waits instead of queueing for one each.
        with self._write_lock:
            if pending.outcome is None:
                with self._queue_lock:
                    group, self._queue = self._queue, []
                self._commit(group)
        outcome = pending.outcome
        if isinstance(outcome, BaseException):
            raise outcome
        assert outcome is not None
        if self.refresh_interval == 0:
            self.refresh()
        return outcome

    def _commit(self, group: Sequence[_PendingPut]) -> None:
        """Write a group of puts as one: each gets its own Written (or its own error)."""
        for p in group:  # prepared for the version a reindex has replaced since
            if p.epoch is not None and p.epoch != self._epoch:
                p.outcome = StaleWriteError("the index was reindexed while these were prepared")
        group = [p for p in group if p.outcome is None]
        if not group:
            return
        try:
            written = self._put_group([p.documents for p in group])
        except (StoreUnavailableError, StoreWriteError) as error:
            for p in group:  # an exception of its own for each caller's traceback
                p.outcome = type(error)(str(error))
                p.outcome.__cause__ = error
            return
        except BaseException as error:
            for p in group:
                p.outcome = error
            return
        for p, outcome in zip(group, written, strict=True):
            p.outcome = outcome

    def _put_group(self, batches: Sequence[Sequence[IndexedDocument]]) -> list[Written]:
        self._writable()
        documents = [item for batch in batches for item in batch]
        if not documents:
            return [Written(self._seq, ()) for _ in batches]
        ids = [item.document.doc_id for item in documents]
        old, stored = self._read_for_write(ids)
        existed: list[bool] = []
        seen = {doc_id for doc_id, rows in old.items() if rows.exists}
        for doc_id in ids:  # a second copy in one group replaces the first
            existed.append(doc_id in seen)
            seen.add(doc_id)
        first = max(self._seq, stored) + 1
        last = first + len(documents) - 1
        # One write per id: the last copy, numbered by its place in the group.
        final = {item.document.doc_id: (first + i, item) for i, item in enumerate(documents)}
        new: dict[str, _OldRows] = {}
        try:
            _insert_documents(self._client, self._version, list(final.values()), new)
            # Every row read above, of whichever write: this one replaces them all.
            removed = self._remove(old.values())
            self._set_seq(last)
            self._settle(removed)
        except StoreUnavailableError as error:
            # What Milvus holds is unknown now (some rows may be in): read it as it is.
            self._recent.reset()
            raise StoreWriteError(f"Milvus did not take the write: {error}") from error
        self._recent.record(new, old, self._write_stamps())
        self._seq = max(self._seq, last)
        results, done = [], 0
        for batch in batches:
            done += len(batch)
            results.append(Written(first + done - 1, tuple(existed[done - len(batch) : done])))
        return results

    def delete(self, doc_ids: Sequence[str]) -> Written:
        with self._write_lock:
            self._writable()
            # At Strong: a delete also removes another replica's write of a moment ago (a put
            # leaves that to the next write of the document), and its publish waits a tick
            # anyway.
            old, stored = self._read_for_write(doc_ids, strong=True)
            present = tuple(doc_id in old and old[doc_id].exists for doc_id in doc_ids)
            gone = [rows for rows in old.values() if rows.exists]
            if gone:
                last = max(self._seq, stored) + len(gone)
                try:
                    removed = self._remove(gone)
                    self._set_seq(last)
                    self._settle(removed)
                except StoreUnavailableError as error:
                    self._recent.reset()
                    raise StoreWriteError(f"Milvus did not take the delete: {error}") from error
                deleted = {doc_id: _OldRows() for doc_id, rows in old.items() if rows.exists}
                self._recent.record(deleted, old, self._write_stamps())
                self._seq = max(self._seq, last)
                self._publish(self._seq)  # a delete is visible the moment it is acknowledged
        return Written(self._seq, present)

    def refresh(self) -> None:
        self._follow_switch()
        self._publish()

    def wait_for(self, seq: int, timeout: float) -> bool:
        with self._visible:
            return self._visible.wait_for(lambda: self._view.seq >= seq, timeout)

    def close(self) -> None:
        if self._closed.is_set():
            return
        self._closed.set()
        self._refresher.join(timeout=10)
        if self._retiring is not None:
            self._retiring.join(timeout=30)
        self._readers.shutdown(wait=True)
        self._client.close()

    def _writable(self) -> None:
        if self._read_only is not None:
            raise ReadOnlyStoreError(f"writes are disabled: {self._read_only}")

    def _read_for_write(
        self, doc_ids: Sequence[str], *, strong: bool = False
    ) -> tuple[dict[str, _OldRows], int]:
        """The rows ``doc_ids`` have now (by document) and the shared write counter.

        At ``Session`` a read waits until Milvus's time tick (every 200 ms, one or two of them)
        covers this client's last write to the collection, so a write that read at it waited
        for the previous one. Instead, this replica's own writes of the last
        ``_RECENT_SECONDS`` come from memory (``_recent``: the rows each left), and Milvus is
        read as of the writes before them, which it has long applied: no wait. Other replicas'
        writes are seen as a ``Session`` read sees them, once Milvus has applied them. At
        ``Strong`` every read waits for the next tick anyway, and sees everything.
        """
        unique = sorted(set(doc_ids))
        strong = strong or self.target.consistency == "Strong"
        known = {} if strong else self._recent.rows(unique)

        def rows(collection: str, fields: list[str]) -> list[dict[str, Any]]:
            read = (
                {"consistency_level": "Strong"}
                if strong
                else self._recent.read_options(collection, self._last_write_ts(collection))
            )
            found: list[dict[str, Any]] = []
            for start in range(0, len(unique), _ID_BATCH):
                batch = ", ".join(literal(d) for d in unique[start : start + _ID_BATCH])
                found.extend(self._query_all(collection, f"doc_id in [{batch}]", fields, **read))
            return found

        documents = self._readers.submit(rows, self.documents_collection, ["doc_id", "seq", "part"])
        passages = self._readers.submit(rows, self.passages_collection, ["doc_id", "seq"])
        # This replica's own count is self._seq; the shared one is for other replicas' writes,
        # which no consistency level short of Strong waits for.
        counter = self._readers.submit(self._stored_seq, None if strong else self._others)
        # A remembered document: the rows this replica's write left, and any other rows Milvus
        # shows (another replica's write) but those that write deleted.
        old: dict[str, _OldRows] = {}
        skip: set[int] = set()
        for doc_id, (left, deleted) in known.items():
            old[doc_id] = _OldRows(left.exists, [*left.documents], [*left.passages])
            skip |= deleted | {pk for pk, _ in left.documents} | {pk for pk, _ in left.passages}
        for row in documents.result():
            if row["pk"] not in skip:
                entry = old.setdefault(row["doc_id"], _OldRows())
                entry.documents.append((row["pk"], row["seq"]))
                entry.exists = entry.exists or row["part"] == 0
        for row in passages.result():
            if row["pk"] not in skip:
                old.setdefault(row["doc_id"], _OldRows()).passages.append((row["pk"], row["seq"]))
        return old, counter.result()

    def _remove(self, old: Iterable[_OldRows]) -> dict[str, list[int]]:
        """Delete ``old`` rows by primary key (a delete by any other expression makes Milvus
        query first, which waits for a time tick); the keys deleted, by collection."""
        old = list(old)
        removed = {
            self.passages_collection: [pk for o in old for pk, _ in o.passages],
            self.documents_collection: [pk for o in old for pk, _ in o.documents],
        }
        for collection, pks in removed.items():
            for start in range(0, len(pks), _DELETE_BATCH):
                batch = pks[start : start + _DELETE_BATCH]
                _call(partial(self._client.delete, collection, ids=batch))
        return removed

    def _settle(self, removed: Mapping[str, list[int]]) -> None:
        """Return once searches at the store's consistency level no longer see ``removed``.

        pymilvus's ``Session`` waits for the client's last insert or upsert to a collection,
        not its deletes (Milvus 2.3.5 returns no timestamp for them): a ``Session`` read right
        after this client's delete still sees the rows. But the counter's upsert, which comes
        after the round's deletes, has a timestamp: made the session's for the round's
        collections too, it makes this client's next ``Session`` read wait until Milvus has
        applied the deletes. At ``Strong`` every read waits for that; Milvus Lite applies a
        delete before answering. Otherwise (Bounded, Eventually) wait until reads stop
        seeing the rows.
        """
        if not any(removed.values()) or self.target.consistency == "Strong":
            return
        if self.target.consistency == "Session" and (
            self.target.is_lite or self._carry_session(self.meta_collection, removed)
        ):
            return
        deadline = time.monotonic() + _GONE_TIMEOUT
        for collection, pks in removed.items():
            for start in range(0, len(pks), _DELETE_BATCH):
                condition = f"pk in [{', '.join(map(str, pks[start : start + _DELETE_BATCH]))}]"
                while next(iter(self._query_all(collection, condition, [], limit=1)), None):
                    if time.monotonic() > deadline:
                        logger.warning(
                            "Milvus still shows deleted rows after %.0f s", _GONE_TIMEOUT
                        )
                        return
                    time.sleep(0.02)

    def _carry_session(self, source: str, targets: Iterable[str]) -> bool:
        """Make ``source``'s last write timestamp the session's for ``targets``; False where
        pymilvus keeps none."""
        stamp = self._last_write_ts(source)
        if stamp <= 0:
            return False
        try:
            from pymilvus.client import ts_utils

            address = self._client._get_connection().server_address
            for target in targets:
                if self._last_write_ts(target) < stamp:
                    ts_utils.update_collection_ts(target, stamp, address, "")
        except Exception:  # pymilvus internals (the version is pinned)
            return False
        return True

    def _stored_seq(
        self, consistency: Consistency | None = None, version: _Version | None = None
    ) -> int:
        rows = _call(
            lambda: self._client.query(
                (version or self._version).meta,
                filter='key == "seq"',
                output_fields=["value"],
                consistency_level=consistency or self.target.consistency,
            )
        )
        return int(rows[0]["value"]) if rows else 0

    def _write_stamps(self) -> dict[str, int]:
        return {c: self._last_write_ts(c) for c in self._recent.collections}

    def _last_write_ts(self, collection: str) -> int:
        """The Milvus timestamp of this client's last write to ``collection`` (what a
        ``Session`` read waits for), or 0 where pymilvus keeps none (Milvus Lite, which applies
        each write before answering)."""
        try:
            from pymilvus.client import ts_utils

            address = self._client._get_connection().server_address
            return int(ts_utils.get_collection_ts(collection, address, "") or 0)
        except Exception:  # pymilvus internals: without them, reads wait as at Session
            return -1

    def _set_seq(self, seq: int) -> None:
        _call(lambda: self._client.upsert(self.meta_collection, [_meta_row("seq", str(seq))]))

    # -- reindexing -------------------------------------------------------------------------
    # A reindex builds a new version (its own three collections, ``<name>__r<n>_*``) from the
    # served one while searches and writes go on, then switches the ``current`` row of the
    # store's meta, which every replica reads at its refresh: Elasticsearch's alias swap.
    # Rows keep the sequence number of the write they copy, so catching up compares numbers:
    # a document whose number in the old version differs from the one copied was written (or
    # deleted) there since. After the switch, writes that replicas still make to the old
    # version (until their next refresh) are copied for a grace period; a document written
    # through the new version meanwhile keeps that write.

    def reindex(
        self,
        manifest: Manifest,
        prepare: Prepare,
        *,
        progress: Progress | None = None,
        on_switch: Callable[[], None] | None = None,
        grace: float | None = None,
    ) -> Manifest:
        """Rebuild every live document with ``prepare`` into a version with ``manifest``'s
        settings, then switch every replica to it (see the section comment). Raises
        ``ReindexError`` if the new version fails, leaving the old one serving. The old
        version is dropped ``grace`` seconds (default ``SWITCH_GRACE_SECONDS``) after the
        switch, in the background."""
        report = progress or (lambda phase, done, total: None)
        grace = SWITCH_GRACE_SECONDS if grace is None else grace
        if self._read_only is not None:
            raise ReindexError(f"cannot reindex: writes are disabled ({self._read_only})")
        if self._retiring is not None and self._retiring.is_alive():
            raise ReindexError("the previous reindex's old version is still being retired")
        started = time.perf_counter()
        old = self._version
        client = self._client
        number = 1 + max(
            [version_number(old.data.collection), *self._leftover_versions(old).values()]
        )
        data = replace(self.target, collection=f"{self.target.collection}{_VERSION_MARK}{number}")
        try:
            claim = _claim_build(client, data)
            if [c for c in self._version_claims() if c != claim]:
                if claim is not None:
                    _drop_quietly(client, claim)
                raise FileExistsError(f"another process is reindexing {self.target}")
        except FileExistsError as error:
            logger.error("cannot reindex now: %s", error)
            raise ReindexError(str(error)) from None
        try:
            for leftover in self._leftover_versions(old):  # a crashed reindex's
                _drop_version(client, leftover, keep_meta=leftover == self.target.collection)
            full_text = full_text_support(self.server_version)
            _create_collections(client, data, manifest, full_text=full_text)
            new = _Version(data, manifest, full_text)
            _load(client, collection_names(data))
            copied: dict[str, int] = {}
            live = self._live_seqs(old)
            for start in range(0, len(live), _REINDEX_BATCH):
                self._check_open()
                report("rebuilding", start, len(live))
                self._copy(old, new, list(live)[start : start + _REINDEX_BATCH], copied, prepare)
            report("rebuilding", len(live), len(live))
            for _ in range(_CATCH_UP_ROUNDS):  # what was written meanwhile, writes going on
                self._check_open()
                report("catching up", 0, 0)
                if self._sync(old, new, copied, prepare)[0] <= _REINDEX_BATCH:
                    break
            with self._write_lock:  # this process's writes wait from here to the switch
                self._check_open()
                report("switching", 0, 0)
                _, documents = self._sync(old, new, copied, prepare)
                seq = max(self._seq, self._stored_seq("Strong"), *copied.values())
                final = self._verified(new, manifest, documents, seq, started)
                _call(lambda: client.upsert(new.meta, [_meta_row("seq", str(seq))]))
                _call(
                    lambda: client.upsert(
                        new.meta, [_meta_row("manifest", final.model_dump_json())]
                    )
                )
                new = _Version(data, final, full_text)
                root = collection_names(self.target)[2]
                # The commit point: every replica serves the new version from its next refresh.
                try:
                    _call(lambda: client.upsert(root, [_meta_row("current", data.collection)]))
                except StoreUnavailableError:  # unless Milvus took it and the answer was lost
                    if _current(client, self.target, "Strong") != data.collection:
                        raise
                self._use(new, seq)
                if on_switch is not None:
                    try:
                        on_switch()
                    except Exception:  # past the commit point: the switch stands
                        logger.exception("after the reindex switch")
                self._epoch += 1  # after on_switch: a stale write is prepared again, anew
        except BaseException as error:
            if self._version is not old:  # past the commit point: the switch stands
                raise
            _drop_version(client, data.collection, keep_meta=False)
            if claim is not None:
                _drop_quietly(client, claim)
            refused = (ReindexError, StoreUnavailableError, DocumentRefusedError, ValueError)
            if isinstance(error, refused):
                logger.error("refusing the reindexed version; the old one serves on: %s", error)
                raise ReindexError(str(error)) from None
            raise
        self._publish()
        logger.info(
            "reindexed %d documents into %s (%s); %s retires in %.0f s",
            final.counts.documents,
            data.collection,
            final.model.name,
            old.data.collection,
            grace,
        )
        self._retiring = threading.Thread(
            target=self._retire,
            args=(old, new, copied, prepare, grace, claim),
            name="milvus-retire",
            daemon=True,
        )
        self._retiring.start()
        return final

    def wait_retired(self, timeout: float | None = None) -> None:
        """Return once the version a reindex replaced is dropped (after its grace period)."""
        if self._retiring is not None:
            self._retiring.join(timeout)

    def _verified(
        self, new: _Version, manifest: Manifest, documents: int, seq: int, started: float
    ) -> Manifest:
        """The new version's final manifest, once it holds every live document."""
        held = self._count(new.documents, "part == 0", "Strong")
        if held != documents:
            raise ReindexError(
                f"the rebuilt version holds {held} documents, the live one {documents}"
            )
        return manifest.model_copy(
            update={
                "format_version": FORMAT_VERSION,
                "counts": Counts(
                    documents=held, passages=self._count(new.passages, "chunk_id >= 0", "Strong")
                ),
                "seq": seq,
                "built_at": datetime.now(UTC),
                "build_seconds": round(time.perf_counter() - started, 3),
            }
        )

    def _live_seqs(self, version: _Version) -> dict[str, int]:
        """Every document of ``version`` with its write's sequence number, in write order."""
        seqs: dict[str, int] = {}
        rows = self._query_all(
            version.documents, "part == 0", ["doc_id", "seq"], consistency_level="Strong"
        )
        for row in rows:
            seqs[row["doc_id"]] = max(row["seq"], seqs.get(row["doc_id"], -1))
        return seqs

    def _copy(
        self,
        old: _Version,
        new: _Version,
        doc_ids: Sequence[str],
        copied: dict[str, int],
        prepare: Prepare,
    ) -> None:
        """Prepare ``doc_ids`` as ``old`` holds them now and write them to ``new`` with their
        sequence numbers, replacing what ``new`` had of them."""
        found = self._latest(old, doc_ids, None, consistency_level="Strong")
        ids = [d for d in doc_ids if d in found]
        if not ids:
            return
        prepared = prepare([found[d][1].document for d in ids])
        for item in prepared:
            _check_fits(item, new.manifest.title_prefix)
        before = self._rows_of(new, ids)
        _insert_documents(
            self._client, new, [(found[d][0], p) for d, p in zip(ids, prepared, strict=True)]
        )
        self._delete_rows(before)
        for d in ids:
            copied[d] = found[d][0]

    def _sync(
        self, old: _Version, new: _Version, copied: dict[str, int], prepare: Prepare
    ) -> tuple[int, int]:
        """Bring ``new`` up to ``old``'s writes since they were copied: the documents changed
        and the live documents in ``old``."""
        old_seqs = self._live_seqs(old)
        new_seqs = self._live_seqs(new)
        # Changed there and not written through the new version since the switch.
        changed = [
            d
            for d, s in old_seqs.items()
            if copied.get(d) != s and new_seqs.get(d) == copied.get(d)
        ]
        gone = [d for d, s in copied.items() if d not in old_seqs and new_seqs.get(d) == s]
        for d in [d for d in copied if d not in old_seqs]:
            del copied[d]
        for start in range(0, len(changed), _REINDEX_BATCH):
            self._copy(old, new, changed[start : start + _REINDEX_BATCH], copied, prepare)
        if gone:
            self._delete_rows(self._rows_of(new, gone))
        return len(changed) + len(gone), len(old_seqs)

    def _rows_of(self, version: _Version, doc_ids: Sequence[str]) -> dict[str, list[int]]:
        """The primary keys of ``doc_ids``' rows in ``version``, by collection."""
        keys: dict[str, list[int]] = {version.passages: [], version.documents: []}
        for start in range(0, len(doc_ids), _ID_BATCH):
            batch = ", ".join(literal(d) for d in doc_ids[start : start + _ID_BATCH])
            for collection, found in keys.items():
                rows = self._query_all(
                    collection, f"doc_id in [{batch}]", [], consistency_level="Strong"
                )
                found.extend(row["pk"] for row in rows)
        return keys

    def _delete_rows(self, keys: Mapping[str, list[int]]) -> None:
        for collection, pks in keys.items():
            for start in range(0, len(pks), _DELETE_BATCH):
                batch = pks[start : start + _DELETE_BATCH]
                _call(partial(self._client.delete, collection, ids=batch))

    def _retire(
        self,
        old: _Version,
        new: _Version,
        copied: dict[str, int],
        prepare: Prepare,
        grace: float,
        claim: str | None,
    ) -> None:
        """Copy the writes replicas still make to ``old`` for ``grace`` seconds, then drop it."""
        deadline = time.monotonic() + grace
        while not self._closed.wait(min(self.refresh_interval or 0.2, grace)):
            try:
                changed, _ = self._sync(old, new, copied, prepare)
                if changed:
                    with self._write_lock:
                        self._recent.reset()  # rows this replica's puts remember may be gone
                        seq = max(self._seq, self._stored_seq("Strong"), *copied.values())
                        self._set_seq(seq)
                        self._seq = seq
            except Exception as error:  # the next round tries again
                logger.warning("copying late writes to %s failed: %s", new.data.collection, error)
            if time.monotonic() >= deadline:
                break
        if self._closed.is_set():
            return  # the next reindex drops what is left
        _drop_version(self._client, old.data.collection, keep_meta=old.data == self.target)
        if claim is not None:
            _drop_quietly(self._client, claim)

    def _leftover_versions(self, served: _Version) -> dict[str, int]:
        """Versions of this store in Milvus besides ``served`` (a crashed reindex's, or one
        retired after its grace), by number."""
        found: dict[str, int] = {}
        pattern = re.compile(
            rf"({re.escape(self.target.collection)}(?:{_VERSION_MARK}\d+)?)_passages"
        )
        for name in _call(self._client.list_collections):
            match = pattern.fullmatch(name)
            if match and match[1] != served.data.collection:
                found[match[1]] = version_number(match[1])
        return found

    def _version_claims(self) -> list[str]:
        """Live claims of reindexes of this store (none on Milvus Lite: one process)."""
        base = re.escape(self.target.collection)
        pattern = re.compile(rf"({base}{_VERSION_MARK}\d+)_build_claim_\w+")
        names = _call(self._client.list_collections)
        found: list[str] = []
        for version in {m[1] for m in map(pattern.fullmatch, names) if m}:
            versioned = replace(self.target, collection=version)
            found.extend(name for _, name in _live_claims(self._client, versioned))
        return found

    def _follow_switch(self) -> None:
        """Serve the version another process's reindex switched to, if it has."""
        collection = _current(self._client, self.target, self._others)
        with self._following:  # the refresh thread and a refresh() call: one follows
            if version_number(collection) > version_number(self._version.data.collection):
                self._follow(collection)

    def _follow(self, collection: str) -> None:
        if collection in self._unfollowable:
            return
        data = replace(self.target, collection=collection)
        try:
            version = _version_at(self._client, self.target, data)
            switch = self.follower(version.manifest) if self.follower is not None else None
        except Exception as error:
            logger.error(
                "cannot serve the reindexed version %s; the one before serves on until it is "
                "dropped: %s",
                collection,
                error,
            )
            self._unfollowable.add(collection)
            return
        with self._write_lock:
            self._use(version, max(self._seq, self._stored_seq("Strong", version)))
            if switch is not None:
                try:
                    switch()
                except Exception:
                    logger.exception("after moving to the reindexed version")
            self._epoch += 1
        self._publish()
        logger.info(
            "serving the reindexed version %s (%s)", collection, version.manifest.model.name
        )

    def _use(self, version: _Version, seq: int) -> None:
        """Serve ``version`` from now on (under the write lock)."""
        self._version = version
        self._recent = _RecentWrites((version.passages, version.documents))
        with self._payload_lock:
            self._payloads.clear()
        self._seq = seq

    def _check_open(self) -> None:
        if self._closed.is_set():
            raise ReindexError("the index was closed during the reindex")

    # -- publishing -------------------------------------------------------------------------

    def _publish_view(self, seq: int) -> MilvusView:
        version = self._version
        # Both at once: each may wait for the same time tick.
        documents = self._readers.submit(
            self._count, version.documents, f"part == 0 and seq <= {seq}"
        )
        passages = self._count(version.passages, f"seq <= {seq}")
        return MilvusView(self, version, seq, documents.result(), passages)

    def _publish(self, seq: int | None = None) -> None:
        """Publish a view at ``seq``, or at the shared counter (other replicas' writes too)."""
        if seq is None:  # this replica's own count is in memory: no wait for its writes
            seq = max(self._seq, self._stored_seq(self._others))
        view = self._publish_view(seq)
        with self._visible:
            # A view of the version before a switch that finished meanwhile is dropped.
            current = view.version is self._version
            if current and (view.seq >= self._view.seq or self._view.version is not view.version):
                self._view = view
            self._visible.notify_all()

    def _refresh_loop(self) -> None:
        while not self._closed.wait(self.refresh_interval or 0.2):
            try:
                self._follow_switch()
                if max(self._seq, self._stored_seq(self._others)) != self._view.seq:
                    self._publish()
            except StoreUnavailableError as error:
                logger.warning("refreshing from Milvus failed (retrying): %s", error)


def read_manifest(client: MilvusClient, target: MilvusTarget) -> Manifest:
    """The manifest of the store at ``target`` (its current version); MilvusStoreMissingError
    if there is none."""
    _load_meta(client, target)
    current = _current(client, target, "Strong")
    return _version_manifest(client, replace(target, collection=current))


def _current(client: MilvusClient, target: MilvusTarget, consistency: Consistency | None) -> str:
    """The collection name of the version ``target``'s meta says is served (its own, until a
    reindex)."""
    rows = _call(
        lambda: client.query(
            collection_names(target)[2],
            filter='key == "current"',
            output_fields=["value"],
            consistency_level=consistency or target.consistency,
        )
    )
    return str(rows[0]["value"]) if rows else target.collection


def _open_version(client: MilvusClient, target: MilvusTarget) -> _Version:
    """The served version of the store at ``target``, loaded for searching."""
    _load_meta(client, target)
    return _version_at(
        client, target, replace(target, collection=_current(client, target, "Strong"))
    )


def _version_at(client: MilvusClient, target: MilvusTarget, data: MilvusTarget) -> _Version:
    """The version of ``target`` in ``data``'s collections, loaded for searching."""
    names = collection_names(data)
    missing = [n for n in names if not _call(partial(client.has_collection, n))]
    if missing:
        raise MilvusStoreMissingError(f"{target} holds no index (no {', '.join(missing)})")
    _load(client, names)  # searches need them loaded
    manifest = _version_manifest(client, data)
    fields = _call(partial(client.describe_collection, names[0]))["fields"]
    return _Version(data, manifest, full_text=any(f["name"] == "sparse" for f in fields))


def _load_meta(client: MilvusClient, target: MilvusTarget) -> None:
    meta = collection_names(target)[2]
    if not _call(lambda: client.has_collection(meta)):
        raise MilvusStoreMissingError(f"{target} holds no index (no collection {meta})")
    try:
        _call(lambda: client.load_collection(meta))
    except StoreUnavailableError:
        # A build creates the collection, then its index: a reader between the two (a replica
        # waiting for another's build) finds it unloadable, as a store not yet complete.
        if not _call(lambda: client.list_indexes(meta)):
            raise MilvusStoreMissingError(
                f"{target} is being created (no index on {meta} yet)"
            ) from None
        raise


def _version_manifest(client: MilvusClient, data: MilvusTarget) -> Manifest:
    _load_meta(client, data)
    meta = collection_names(data)[2]
    rows = _call(
        lambda: client.query(
            meta, filter='key == "manifest"', output_fields=["value"], consistency_level="Strong"
        )
    )
    if not rows:
        raise MilvusStoreMissingError(f"{data} holds no complete index (no manifest yet)")
    try:
        manifest = Manifest.model_validate_json(rows[0]["value"])
    except ValueError as error:
        raise ManifestError(f"the manifest in {meta} is not valid: {error}") from error
    if manifest.format_version != FORMAT_VERSION:
        raise ManifestError(
            f"{data} has format version {manifest.format_version}, this version reads "
            f"{FORMAT_VERSION}"
        )
    return manifest


# -- build claims ------------------------------------------------------------------------
# Replicas started together may all find a store missing and build it. Creating a collection
# is no lock (a 2.3 server accepts a second create with the same schema), so each builder
# creates a claim collection of its own and the earliest created (the server's timestamps are
# totally ordered) builds; the others wait for its manifest. A Milvus Lite file is held by one
# process, so it needs no claim.


def _claim_prefix(target: MilvusTarget) -> str:
    return f"{target.collection}_build_claim_"


def _claims(client: MilvusClient, target: MilvusTarget) -> list[str]:
    prefix = _claim_prefix(target)
    return [n for n in _call(client.list_collections) if n.startswith(prefix)]


def _created(client: MilvusClient, name: str) -> int | None:
    """A collection's creation timestamp (a Milvus hybrid timestamp); None if it is gone."""
    try:
        described = _call(partial(client.describe_collection, name))
    except StoreUnavailableError:
        return None
    stamp = described.get("created_timestamp")
    return int(stamp) if stamp else None


def _age_seconds(stamp: int, now: int) -> float:
    return ((now >> 18) - (stamp >> 18)) / 1000  # the physical part is in milliseconds


def _live_claims(client: MilvusClient, target: MilvusTarget) -> list[tuple[int, str]]:
    """The claims of builds under way, earliest first; stale ones are dropped."""
    if target.is_lite:
        return []
    found = [(_created(client, name), name) for name in _claims(client, target)]
    stamps = [stamp for stamp, _ in found if stamp is not None]
    if not stamps:
        return []
    newest = max(stamps)
    live = []
    for stamp, name in found:
        if stamp is None:
            continue
        if _age_seconds(stamp, newest) > BUILD_CLAIM_SECONDS:
            _drop_quietly(client, name)
        else:
            live.append((stamp, name))
    return sorted(live)


def _claim_build(client: MilvusClient, target: MilvusTarget) -> str | None:
    """Claim the building of ``target``; FileExistsError if another process claimed it
    first. Returns the claim to drop once built (None on Milvus Lite)."""
    if target.is_lite:
        return None
    from pymilvus import DataType

    mine = _claim_prefix(target) + uuid.uuid4().hex[:16]
    schema = client.create_schema(auto_id=False)
    schema.add_field("pk", DataType.INT64, is_primary=True)
    schema.add_field("_v", DataType.FLOAT_VECTOR, dim=_DUMMY_DIM)
    _call(lambda: client.create_collection(mine, schema=schema))
    live = _live_claims(client, target)
    if live and live[0][1] != mine:
        _drop_quietly(client, mine)
        raise FileExistsError(
            f"{target} already holds a build in progress (another process claimed it first)"
        )
    return mine


def _drop_version(client: MilvusClient, base: str, *, keep_meta: bool) -> None:
    """Drop the collections of the version in ``base``; with ``keep_meta`` (a store's first
    version, whose meta also names the version served) only its manifest and counter rows."""
    passages, documents, meta = collection_names(replace(MilvusTarget("_"), collection=base))
    for name in (passages, documents):
        _drop_quietly(client, name)
    if not keep_meta:
        _drop_quietly(client, meta)
        return
    try:
        _call(partial(client.delete, meta, ids=["manifest", "seq"]))
    except StoreUnavailableError as error:
        logger.warning("could not clear %s: %s", meta, error)


def _drop_quietly(client: MilvusClient, name: str) -> None:
    try:
        _call(partial(client.drop_collection, name))
    except StoreUnavailableError as error:
        logger.warning("could not drop %s: %s", name, error)


def _create_collections(
    client: MilvusClient, target: MilvusTarget, manifest: Manifest, *, full_text: bool
) -> None:
    from pymilvus import DataType, Function, FunctionType

    passages, documents, meta = collection_names(target)
    build, _ = parse_index_params(manifest.store.spec, manifest.store.search_params)

    schema = client.create_schema(auto_id=True)
    schema.add_field("pk", DataType.INT64, is_primary=True)
    schema.add_field("doc_id", DataType.VARCHAR, max_length=_MAX_ID)
    schema.add_field("chunk_id", DataType.INT64)
    schema.add_field("start", DataType.INT64)
    schema.add_field("end", DataType.INT64)
    schema.add_field("seq", DataType.INT64)
    schema.add_field("title", DataType.VARCHAR, max_length=_MAX_STRING)
    schema.add_field("text", DataType.VARCHAR, max_length=_MAX_STRING)
    schema.add_field("metadata", DataType.JSON)
    schema.add_field("fields", DataType.JSON)
    schema.add_field("vector", DataType.FLOAT_VECTOR, dim=manifest.model.dimension)
    index = client.prepare_index_params()
    index.add_index("vector", index_type=manifest.store.spec, metric_type="IP", params=build)
    if full_text:
        schema.add_field(
            "keyword_text",
            DataType.VARCHAR,
            max_length=_MAX_STRING,
            enable_analyzer=True,
            analyzer_params=_analyzer(manifest.keyword.stemmer),
        )
        schema.add_field("sparse", DataType.SPARSE_FLOAT_VECTOR)
        schema.add_function(
            Function(
                name="bm25",
                function_type=FunctionType.BM25,
                input_field_names=["keyword_text"],
                output_field_names=["sparse"],
            )
        )
        index.add_index(
            "sparse",
            index_type="SPARSE_INVERTED_INDEX",
            metric_type="BM25",
            params={"bm25_k1": manifest.keyword.k1, "bm25_b": manifest.keyword.b},
        )
    _create_collection(client, passages, schema, index)

    schema = client.create_schema(auto_id=True)
    schema.add_field("pk", DataType.INT64, is_primary=True)
    schema.add_field("doc_id", DataType.VARCHAR, max_length=_MAX_ID)
    schema.add_field("seq", DataType.INT64)
    schema.add_field("part", DataType.INT64)
    schema.add_field("parts", DataType.INT64)
    schema.add_field("title", DataType.VARCHAR, max_length=_MAX_STRING)
    schema.add_field("text", DataType.VARCHAR, max_length=_MAX_STRING)
    schema.add_field("metadata", DataType.JSON)
    schema.add_field("_v", DataType.FLOAT_VECTOR, dim=_DUMMY_DIM)
    _create_collection(client, documents, schema, _dummy_index(client))

    schema = client.create_schema(auto_id=False)
    schema.add_field("key", DataType.VARCHAR, max_length=64, is_primary=True)
    schema.add_field("value", DataType.VARCHAR, max_length=_MAX_STRING)
    schema.add_field("_v", DataType.FLOAT_VECTOR, dim=_DUMMY_DIM)
    _create_collection(client, meta, schema, _dummy_index(client))


def _create_collection(client: MilvusClient, name: str, schema: Any, index: Any) -> None:
    """Create and index a collection (``load`` then makes it searchable). The index is built in
    the background: pymilvus's own wait polls every 0.5 s, which made an empty store take 2 s."""
    _call(lambda: client.create_collection(name, schema=schema))
    _call(lambda: client.create_index(name, index, sync=False))


def _load(client: MilvusClient, names: Sequence[str], timeout: float = 300) -> None:
    """Load collections for searching, all at once: a 2.3 server takes ~3 s for each."""
    for name in names:
        _call(partial(client.load_collection, name, _async=True))
    deadline = time.monotonic() + timeout
    for name in names:
        while "Loaded" not in str(_call(partial(client.get_load_state, name)).get("state")):
            if time.monotonic() > deadline:
                raise StoreUnavailableError(f"Milvus did not load {name} in {timeout:.0f} s")
            time.sleep(0.05)


def _dummy_index(client: MilvusClient) -> Any:
    index = client.prepare_index_params()
    index.add_index("_v", index_type="FLAT", metric_type="L2")
    return index


def _analyzer(stemmer: str) -> dict[str, Any]:
    """Milvus's analyzer closest to our keyword index's: lower-case, English stop words,
    Snowball stemming. (Milvus Lite 3.2 accepts the filters but only lower-cases.)"""
    return {
        "tokenizer": "standard",
        "filter": [
            "lowercase",
            {"type": "stop", "stop_words": ["_english_"]},
            {"type": "stemmer", "language": stemmer},
        ],
    }


def _insert_documents(
    client: MilvusClient,
    version: _Version,
    documents: Sequence[tuple[int, IndexedDocument]],
    keys: dict[str, _OldRows] | None = None,
) -> int:
    """Insert the rows of ``documents`` into ``version``, each with its write's sequence
    number, in shared batches; the passages written. With ``keys``, each document's new rows
    go there."""
    passages, documents_collection = version.passages, version.documents
    manifest, full_text = version.manifest, version.full_text
    passage_rows: list[dict[str, Any]] = []
    document_rows: list[dict[str, Any]] = []
    written = 0

    def flush(force: bool) -> None:
        nonlocal passage_rows, document_rows, written
        if passage_rows and (force or len(passage_rows) >= _INSERT_BATCH):
            rows, passage_rows = passage_rows, []
            done = _call(lambda: client.insert(passages, rows))
            written += len(rows)
            if keys is not None:
                for row, pk in zip(rows, done["ids"], strict=True):
                    keys.setdefault(row["doc_id"], _OldRows(True)).passages.append((pk, row["seq"]))
        if document_rows and (force or len(document_rows) >= _INSERT_BATCH):
            rows, document_rows = document_rows, []
            done = _call(lambda: client.insert(documents_collection, rows))
            if keys is not None:
                for row, pk in zip(rows, done["ids"], strict=True):
                    keys.setdefault(row["doc_id"], _OldRows(True)).documents.append(
                        (pk, row["seq"])
                    )

    for seq, item in documents:
        document = item.document
        metadata = dict(document.metadata)
        fields = typed_fields(metadata)
        for passage, vector in zip(item.passages, item.vectors, strict=True):
            row: dict[str, Any] = {
                "doc_id": document.doc_id,
                "chunk_id": passage.chunk_id,
                "start": passage.start,
                "end": passage.end,
                "seq": seq,
                "title": document.title,
                "text": passage.text,
                "metadata": metadata,
                "fields": fields,
                "vector": vector.tolist(),
            }
            if full_text:
                row["keyword_text"] = passage_representation(
                    passage, document.title, manifest.title_prefix
                )
            passage_rows.append(row)
        pieces = [
            document.text[i : i + _TEXT_PIECE] for i in range(0, len(document.text), _TEXT_PIECE)
        ] or [""]
        for part, piece in enumerate(pieces):
            document_rows.append(
                {
                    "doc_id": document.doc_id,
                    "seq": seq,
                    "part": part,
                    "parts": len(pieces),
                    "title": document.title,
                    "text": piece,
                    "metadata": metadata,
                    "_v": [0.0] * _DUMMY_DIM,
                }
            )
        flush(force=False)
    flush(force=True)
    return written


def _check_fits(item: IndexedDocument, title_prefix: bool) -> None:
    """Refuse a document whose strings Milvus cannot hold, before anything is written."""
    document = item.document
    fields = [("its id", document.doc_id, _MAX_ID), ("its title", document.title, _MAX_STRING)]
    for passage in item.passages:
        fields.append((f"passage {passage.chunk_id}", passage.text, _MAX_STRING))
        keyword = passage_representation(passage, document.title, title_prefix)
        fields.append((f"passage {passage.chunk_id} with its title", keyword, _MAX_STRING))
    for what, text, limit in fields:
        size = len(text.encode("utf-8"))
        if size > limit:
            raise DocumentRefusedError(
                f"document {document.doc_id[:100]!r}: {what} is {size} bytes in UTF-8; Milvus "
                f"holds at most {limit} (a run of text without spaces makes one huge passage)"
            )


def _meta_row(key: str, value: str) -> dict[str, Any]:
    return {"key": key, "value": value, "_v": [0.0] * _DUMMY_DIM}


def _payload_of(entity: Mapping[str, Any]) -> tuple[Passage, DocumentInfo]:
    passage = Passage(
        entity["doc_id"], entity["chunk_id"], entity["start"], entity["end"], entity["text"]
    )
    return passage, DocumentInfo(entity["doc_id"], entity["title"], entity["metadata"] or {})


def _one_copy(hits: Sequence[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """Each passage once: where two copies of a document are in (two replicas' writes of one
    moment, or a replacement between its insert and its delete), the one inserted last."""
    latest: dict[tuple[str, int], int] = {}
    for hit in hits:
        key = (hit["entity"]["doc_id"], hit["entity"]["chunk_id"])
        latest[key] = max(latest.get(key, -1), int(hit["pk"]))
    if len(latest) == len(hits):
        return list(hits)
    keep = set(latest.values())
    return [hit for hit in hits if int(hit["pk"]) in keep]


def _empty() -> tuple[Scores, Ids]:
    return np.empty(0, dtype=np.float32), np.empty(0, dtype=np.int64)


def _call(request: Callable[[], T]) -> T:
    """Run a Milvus request; a Milvus or connection failure becomes StoreUnavailableError."""
    try:
        return request()
    except (FileExistsError, MilvusStoreMissingError):
        raise
    except Exception as error:
        if _is_milvus_error(error):
            raise StoreUnavailableError(_reason(error)) from error
        raise


def _is_milvus_error(error: Exception) -> bool:
    module = type(error).__module__
    return module.startswith(("pymilvus", "grpc")) or isinstance(error, ConnectionError)


def _reason(error: Exception) -> str:
    message = getattr(error, "message", None) or str(error) or type(error).__name__
    return " ".join(str(message).split())


__all__ = [
    "CONSISTENCY_LEVELS",
    "MilvusStore",
    "MilvusStoreMissingError",
    "MilvusTarget",
    "MilvusView",
    "read_manifest",
]
