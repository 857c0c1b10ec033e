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
rows its writes of the last second left (``writes._RecentWrites``), and reads Milvus as of its
writes before those. Another replica's write counts for a put once Milvus has applied it (a
tick or two after it was acknowledged); a delete reads at ``Strong``. Two replicas writing one
document within that moment can both leave their copy; readers show the one with the higher
sequence number, and a second after its write each replica removes the older (``copies``).

Milvus has no transactions across rows: a write inserts the new passages and document rows
first and then deletes the old ones, so a crash between the two can leave an unacknowledged
write's new rows next to the old ones until the document is written or deleted again; an
acknowledged write is in Milvus's own write-ahead log, which makes it durable.

``MilvusStore`` is here: making and opening a store, reading, writing (group commits, with
``writes``), and publishing views (``view``); its reindex is in ``reindexing``. The package
docstring (``indexer.stores.milvus``) lists the other modules.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from functools import partial
from typing import TYPE_CHECKING, Any, ClassVar, Self

import numpy as np
from cachetools import LRUCache

from indexer.manifest import FORMAT_VERSION, Counts, Manifest
from indexer.stores.base import (
    IndexedDocument,
    ReadOnlyStoreError,
    StaleWriteError,
    StoredDocument,
    StoreUnavailableError,
    StoreWriteError,
    Written,
)
from indexer.stores.milvus.claims import _claim_build, _claims, _live_claims
from indexer.stores.milvus.client import (
    _DELETE_BATCH,
    _ID_BATCH,
    _MAX_RESULTS,
    FULL_TEXT_SINCE,
    Consistency,
    MilvusStoreMissingError,
    MilvusTarget,
    _call,
    _drop_quietly,
    collection_names,
    connect,
    full_text_support,
)
from indexer.stores.milvus.copies import RECHECK_SECONDS, older_copies
from indexer.stores.milvus.filters import literal
from indexer.stores.milvus.reindexing import Reindexing
from indexer.stores.milvus.schema import (
    _PAYLOAD,
    _check_fits,
    _create_collections,
    _insert_documents,
    _load,
    _meta_row,
    _one_copy,
    _payload_of,
)
from indexer.stores.milvus.versions import (
    _VERSION_MARK,
    _open_version,
    _Version,
    read_manifest,
)
from indexer.stores.milvus.view import MilvusView, _empty
from indexer.stores.milvus.writes import _OldRows, _PendingPut, _RecentWrites
from indexer.types import Document, DocumentInfo, Ids, Passage, Scores

if TYPE_CHECKING:
    from pymilvus import MilvusClient

logger = logging.getLogger("indexer")

# A build this large is sealed at once, so Milvus indexes it now rather than searching the
# rows by brute force until its own segment size is reached. (A flush costs seconds.)
_SEAL_ROWS = 10_000
_GONE_TIMEOUT = 30.0


class MilvusStore(Reindexing):
    """A live corpus in Milvus (see the module docstring). Its reindex, and how it follows
    another process's, are ``Reindexing``'s (``reindexing.py``)."""

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
        # Documents this replica wrote, with when to look for a second copy (``copies``).
        self._rechecks: dict[str, float] = {}
        self._rechecks_lock = threading.Lock()
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
        self._copies_checker = threading.Thread(
            target=self._copies_loop, name="milvus-copies", daemon=True
        )
        self._copies_checker.start()

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
            passages, _, meta = names
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
            # All three at once: opening loads the meta first, then the others, and a 2.3
            # server takes about 3 s to load a new collection.
            _load(client, names)
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

    def _rows_of_documents(
        self, collection: str, doc_ids: Sequence[str], fields: list[str], **read: Any
    ) -> list[dict[str, Any]]:
        """Every row of ``doc_ids`` in ``collection`` (with its key), ``_ID_BATCH`` ids a query."""
        found: list[dict[str, Any]] = []
        for start in range(0, len(doc_ids), _ID_BATCH):
            batch = ", ".join(literal(d) for d in doc_ids[start : start + _ID_BATCH])
            found.extend(self._query_all(collection, f"doc_id in [{batch}]", fields, **read))
        return found

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
        due = time.monotonic() + RECHECK_SECONDS
        with self._rechecks_lock:
            self._rechecks.update(dict.fromkeys(final, due))
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
        self._copies_checker.join(timeout=10)
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
            return self._rows_of_documents(collection, unique, fields, **read)

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
        self._delete_rows(removed)
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
        self._wait_gone(removed)

    def _wait_gone(self, removed: Mapping[str, list[int]]) -> None:
        """Return once reads at the store's consistency level no longer see ``removed``."""
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
        ``Session`` read waits for); 0 where pymilvus keeps none (Milvus Lite, which applies
        each write before answering), -1 where its internals are not as expected."""
        try:
            from pymilvus.client import ts_utils

            address = self._client._get_connection().server_address
            return int(ts_utils.get_collection_ts(collection, address, "") or 0)
        except Exception:  # pymilvus internals: without them, reads wait as at Session
            return -1

    def _set_seq(self, seq: int) -> None:
        _call(lambda: self._client.upsert(self.meta_collection, [_meta_row("seq", str(seq))]))

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

    def _copies_loop(self) -> None:
        # A thread of its own: a bulk write's check reads at Strong, a time tick a batch,
        # which the refresh should not wait for.
        while not self._closed.wait(self.refresh_interval or 0.2):
            try:
                self._check_copies()
            except Exception as error:  # the checks stay due: the next round tries again
                logger.warning("looking for second copies failed (retrying): %s", error)

    def _check_copies(self) -> None:
        """Remove the older copy of documents this replica wrote a moment ago that another
        replica wrote at the same moment (see ``copies``)."""
        now = time.monotonic()
        with self._rechecks_lock:
            due = sorted(d for d, when in self._rechecks.items() if when <= now)
        version = self._version
        strong: dict[str, Any] = {"consistency_level": "Strong"}
        documents, passages = older_copies(
            self._rows_of_documents(
                version.documents, due, ["doc_id", "seq", "part", "parts"], **strong
            ),
            self._rows_of_documents(version.passages, due, ["doc_id", "seq", "chunk_id"], **strong),
        )
        removed = {version.documents: documents, version.passages: passages}
        if documents:
            self._delete_rows(removed)
        with self._rechecks_lock:  # checked (those written again since are due later)
            for doc_id in due:
                if self._rechecks.get(doc_id, now + 1) <= now:
                    del self._rechecks[doc_id]
        if not documents:
            return
        logger.info(
            "removed older copies left by replicas writing one document at once: %d text "
            "rows, %d passages",
            len(documents),
            len(passages),
        )
        self._wait_gone(removed)
        if version is self._version:
            self._publish(self._view.seq)  # the counts without them


__all__ = ["MilvusStore"]
