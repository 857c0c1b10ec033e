"""The Milvus store: the corpus lives in Milvus, so a replica holds no state of its own (but a
second's memory of its own writes).

The same ``pymilvus.MilvusClient`` code reaches Milvus Lite (a local file, one process), a
standalone server and a cluster, by URI. A store named ``search`` is three collections:

- ``search_passages``: one row per passage with its vector, text, offsets, document id, title
  and metadata (copied from the document, so Milvus filters before ranking and a hit needs no
  second lookup), the write's sequence number, and, where Milvus has full-text search (2.5+,
  Milvus Lite 3), the BM25 sparse vector Milvus derives from the passage's keyword terms (our
  analyser's: ``terms``);
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
rows its writes of the last second left (``writes.RecentWrites``), and reads Milvus as of its
writes before those. Another replica's write counts for a put once Milvus has applied it (a
tick or two after it was acknowledged); a delete reads at ``Strong``. Two replicas writing one
document within that moment can both leave their copy; readers show the one with the higher
sequence number, and a second after its write each replica removes the older (``copies``).

Sequence numbers are unique across replicas: each replica numbers its writes in a slot of its
own (``numbering``), and keeps a row in the store's meta with the highest number it gave; the
store's counter is the highest of those rows.

Milvus has no transactions across rows: a write inserts the new passages and document rows
first and then deletes the old ones. So before inserting, a write records its numbers in its
replica's row (``pending``), and clears them once the old rows are deleted: a replica killed
between the two leaves them there, and every replica's refresh looks at those documents and
removes all but the newest copy (``copies``; an incomplete copy once the killed replica's row
has gone stale). An acknowledged write is in Milvus's own write-ahead log, which makes it
durable.

``MilvusStore`` is here: making and opening a store, writing (group commits, with ``writes``),
and publishing views (``view``); its reads are a ``reads.MilvusReads`` it shares with its views
and its reindexer (``reindexing.MilvusReindexer``). The package docstring
(``indexer.stores.milvus``) lists the other modules.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from functools import partial
from typing import TYPE_CHECKING, Any, ClassVar, Self

from indexer.filters import Filter
from indexer.manifest import FORMAT_VERSION, Counts, Manifest
from indexer.stores.base import (
    Follower,
    IndexedDocument,
    ReadOnlyStoreError,
    Rebuild,
    StaleWriteError,
    StoredDocument,
    StoreExistsError,
    StoreMetric,
    StoreMissingError,
    StoreUnavailableError,
    StoreWriteError,
    Written,
    passes,
)
from indexer.stores.milvus import bulk, reindexing
from indexer.stores.milvus.claims import build_claims, claim_build, live_claims, slot_claims
from indexer.stores.milvus.client import (
    Consistency,
    MilvusTarget,
    call,
    collection_names,
    connect,
    drop_quietly,
    full_text_support,
)
from indexer.stores.milvus.copies import RECHECK_SECONDS, older_copies, written_in
from indexer.stores.milvus.numbering import ROW_PREFIX, Numbering, ReplicaRow, replica_rows
from indexer.stores.milvus.reads import MilvusReads, counter_of
from indexer.stores.milvus.reindexing import MilvusReindexer
from indexer.stores.milvus.schema import (
    check_fits,
    create_collections,
    delete_rows,
    insert_documents,
    load_collections,
    meta_row,
)
from indexer.stores.milvus.versions import (
    VERSION_MARK,
    Version,
    open_version,
    read_manifest,
)
from indexer.stores.milvus.view import MilvusView, keyword_problem
from indexer.stores.milvus.writes import OldRows, PendingPut, RecentWrites, check_guards

if TYPE_CHECKING:
    from pymilvus import MilvusClient

logger = logging.getLogger("indexer")

# A build this large is sealed at once, so Milvus indexes it now rather than searching the
# rows by brute force until its own segment size is reached. (A flush costs seconds.)
_SEAL_ROWS = 10_000


class MilvusStore:
    """A live corpus in Milvus (see the module docstring). Its reindex, and how it follows
    another process's, are its ``MilvusReindexer``'s (``reindexing.py``)."""

    kind: ClassVar[str] = "milvus"

    def __init__(
        self,
        target: MilvusTarget,
        client: MilvusClient,
        version: Version,
        *,
        server_version: str,
        read_only: str | None,
        refresh_interval: float,
    ) -> None:
        self.target = target
        self._client = client
        self._reads = MilvusReads(client, target.consistency)
        self._version = version
        self._epoch = 0  # +1 at each switch to a reindexed version
        self.follower: Follower | None = None
        """Called (in the refresh thread) when another process has reindexed the store, with
        the new version's manifest; what it returns runs at the switch, with writes held. The
        service readies the new model and preparer here."""
        self.server_version = server_version
        self.read_only = read_only
        """Why writes are refused (opened for reading only), or None."""
        self.refresh_interval = refresh_interval
        self.write_lock = threading.Lock()
        """Held by a write, and by a reindex's switch (writes wait for it)."""
        self._queue_lock = threading.Lock()
        self._queue: list[PendingPut] = []
        self._recent = RecentWrites((version.passages, version.documents))
        # Documents this replica wrote, with when to look for a second copy (``copies``).
        self._rechecks: dict[str, float] = {}
        self._rechecks_lock = threading.Lock()
        # How to read the shared counter, for other replicas' writes (this one's are in
        # self._seq): short of Strong, no level waits for them, so read without waiting.
        self._others: Consistency | None = None if target.consistency == "Strong" else "Eventually"
        # Reads a write or a publish makes at once (see _read_for_write).
        self._readers = ThreadPoolExecutor(max_workers=3, thread_name_prefix="milvus-read")
        self._visible = threading.Condition()
        self._numbering = Numbering(client, target)
        self._row_seq = 0  # the highest number this replica's row holds
        # Ranges of this replica's rounds that failed midway (pending until repaired), and
        # other replicas' cut-short ranges already repaired, by (claim, range).
        self._unsettled: list[tuple[int, int]] = []
        self._settled: set[tuple[str, tuple[int, int]]] = set()
        self._seq = self._reads.stored_seq(version)
        if read_only is None:
            self._take_slot()
        self._view = self._publish_view(self._seq)
        self.closed = threading.Event()
        self._reindexer = MilvusReindexer(self, self._reads)
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
        cls,
        location: MilvusTarget,
        manifest: Manifest,
        documents: Sequence[IndexedDocument],
        *,
        started: float | None = None,
    ) -> Self:
        """Create the store's collections in Milvus and fill them; refuses to replace any.
        ``started``: when the build began (``time.perf_counter``), for ``build_seconds``."""
        client = connect(location)
        claim: str | None = None
        try:
            names = collection_names(location)
            # Claimed first, checked after: a build that finished meanwhile created its
            # collections before it dropped its claim, so one of the two is seen.
            claim = claim_build(client, location)
            existing = [name for name in names if call(partial(client.has_collection, name))]
            if existing:
                raise StoreExistsError(
                    f"{location} already holds {', '.join(existing)}; refusing to replace it "
                    "(if a build stopped midway left them, run it again with --resume)"
                )
            server_version = call(client.get_server_version)
            full_text = full_text_support(server_version)
            started = time.perf_counter() if started is None else started
            create_collections(client, location, manifest, full_text=full_text)
            seq = 0
            numbered = [(seq, item) for item in documents]
            version = Version(location, manifest, full_text)
            imported = None
            if sum(len(item.passages) for item in documents) >= bulk.BULK_ROWS:
                imported = bulk.import_documents(client, version, numbered)
            passages, _, meta = names
            if imported is not None:
                written = imported  # imported rows come in sealed segments: no flush
            else:
                written = insert_documents(client, version, numbered)
                if written >= _SEAL_ROWS:
                    call(lambda: client.flush(passages))  # seal: Milvus builds the index now
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
            call(lambda: client.upsert(meta, [meta_row("seq", str(seq))]))
            call(lambda: client.upsert(meta, [meta_row("manifest", final.model_dump_json())]))
            # All three at once: opening loads the meta first, then the others, and a 2.3
            # server takes about 3 s to load a new collection.
            load_collections(client, names)
        except BaseException:
            if claim is not None:
                drop_quietly(client, claim)
            client.close()
            raise
        if claim is not None:
            drop_quietly(client, claim)
        return cls._opened(location, client, writable=True, refresh_interval=1.0)

    @classmethod
    def open(
        cls,
        location: MilvusTarget,
        *,
        writable: bool = True,
        refresh_interval: float = 1.0,
    ) -> Self:
        """The store ``location`` names; StoreMissingError if Milvus has none there."""
        return cls._opened(
            location, connect(location), writable=writable, refresh_interval=refresh_interval
        )

    @classmethod
    def _opened(
        cls, target: MilvusTarget, client: MilvusClient, *, writable: bool, refresh_interval: float
    ) -> Self:
        try:
            version = open_version(client, target)
            store = cls(
                target,
                client,
                version,
                server_version=call(client.get_server_version),
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
            if live_claims(client, target):
                return True
            return any(call(partial(client.has_collection, n)) for n in collection_names(target))
        finally:
            client.close()

    @staticmethod
    def exists(target: MilvusTarget) -> bool:
        """Does ``target`` hold a complete store (its manifest written)?"""
        client = connect(target)
        try:
            read_manifest(client, target)
        except StoreMissingError:
            return False
        finally:
            client.close()
        return True

    @staticmethod
    def drop(target: MilvusTarget) -> None:
        """Delete the store's collections (and every document in them)."""
        client = connect(target)
        try:
            versions = re.compile(rf"{re.escape(target.collection)}{VERSION_MARK}\d+_\w+")
            for name in call(client.list_collections):
                if name in collection_names(target) or versions.fullmatch(name):
                    call(partial(client.drop_collection, name))
            for name in [*build_claims(client, target), *slot_claims(client, target)]:
                call(partial(client.drop_collection, name))
        finally:
            client.close()

    # -- reading ----------------------------------------------------------------------------

    @property
    def location(self) -> MilvusTarget:
        """Where the store is, as ``Store.open`` takes it."""
        return self.target

    @property
    def manifest(self) -> Manifest:
        return self._version.manifest  # the served version's: another process may reindex it

    @property
    def full_text(self) -> bool:
        return self._version.full_text  # BM25 in the passages: Milvus 2.5+ and Lite

    @property
    def epoch(self) -> int:
        return self._epoch

    @property
    def seq(self) -> int:
        return self._seq

    @property
    def slot(self) -> int:
        """This replica's numbering slot (``numbering``)."""
        return self._numbering.slot

    @property
    def version(self) -> Version:
        """The version served (a reindex switches it)."""
        return self._version

    @property
    def keyword_problem(self) -> str | None:
        """Why keyword (and so hybrid) search is unavailable here, or None."""
        return keyword_problem(self._version, self.server_version)

    def reader(self) -> MilvusView:
        return self._view

    def get(self, doc_id: str) -> StoredDocument | None:
        found = self._reads.stored(self._version, [doc_id], None)
        return found[0] if found else None

    # -- writing ----------------------------------------------------------------------------

    def put(
        self,
        documents: Sequence[IndexedDocument],
        *,
        epoch: int | None = None,
        guard: Filter | None = None,
    ) -> Written:
        dimension = self.manifest.model.dimension
        for item in documents:
            if item.vectors.shape != (len(item.passages), dimension):
                raise ValueError(
                    f"document {item.document.doc_id!r}: {len(item.passages)} passages need "
                    f"vectors of shape ({len(item.passages)}, {dimension}), not "
                    f"{item.vectors.shape}"
                )
        for item in documents:
            check_fits(item, self._version)
        pending = PendingPut(tuple(documents), epoch, guard)
        with self._queue_lock:
            self._queue.append(pending)
        # Group commit: whoever holds the write lock writes every put queued meanwhile in one
        # Milvus round (one read, one insert per collection, one delete, one counter upsert),
        # so concurrent writers share the round's waits instead of queueing for one each.
        with self.write_lock:
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

    def _commit(self, group: Sequence[PendingPut]) -> None:
        """Write a group of puts as one: each gets its own Written (or its own error)."""
        for p in group:  # prepared for the version a reindex has replaced since
            if p.epoch is not None and p.epoch != self._epoch:
                p.outcome = StaleWriteError("the index was reindexed while these were prepared")
        # Under the write lock, so this process writes nothing between check and write; another
        # replica's write in between is the race every Milvus write has (module docstring).
        check_guards([p for p in group if p.outcome is None], self.get)
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
        self._check_slot()
        old, stored = self._read_for_write(ids)
        existed: list[bool] = []
        seen = {doc_id for doc_id, rows in old.items() if rows.exists}
        for doc_id in ids:  # a second copy in one group replaces the first
            existed.append(doc_id in seen)
            seen.add(doc_id)
        numbers = self._numbering.numbers(max(self._seq, stored), len(documents))
        first, last = numbers[0], numbers[-1]
        # One write per id: the last copy, numbered by its place in the group.
        final = {item.document.doc_id: (numbers[i], item) for i, item in enumerate(documents)}
        new: dict[str, OldRows] = {}
        try:
            # Before any row: the numbers taken, and that a write of them is under way.
            self._write_row(last, [*self._unsettled, (first, last)])
            insert_documents(self._client, self._version, list(final.values()), new)
            # Every row read above, of whichever write: this one replaces them all.
            removed = self._remove(old.values())
            self._write_row(last, self._unsettled)
            self._settle(removed)
        except StoreUnavailableError as error:
            # What Milvus holds is unknown now (some rows may be in): read it as it is, and
            # repair these documents once Milvus answers (the round is over: see copies).
            self._recent.reset()
            self._unsettled.append((first, last))
            raise StoreWriteError(f"Milvus did not take the write: {error}") from error
        self._recent.record(new, old, self._write_stamps())
        self._seq = max(self._seq, last)
        due = time.monotonic() + RECHECK_SECONDS
        with self._rechecks_lock:
            self._rechecks.update(dict.fromkeys(final, due))
        results, done = [], 0
        for batch in batches:
            done += len(batch)
            seq = numbers[done - 1] if batch else self._seq
            results.append(Written(seq, tuple(existed[done - len(batch) : done])))
        return results

    def delete(self, doc_ids: Sequence[str], *, guard: Filter | None = None) -> Written:
        with self.write_lock:
            self._writable()
            if guard is not None:  # those outside it are left alone, as if absent
                # One read for all of them (a delete by filter can name thousands).
                stored = self._reads.stored(self._version, list(dict.fromkeys(doc_ids)), None)
                allowed = {s.document.doc_id for s in stored if passes(guard, s)}
                kept = [d for d in doc_ids if d in allowed]
                written = self._delete(kept)
                within = iter(written.existed)
                return Written(
                    written.seq, tuple(next(within) if d in allowed else False for d in doc_ids)
                )
            return self._delete(doc_ids)

    def _delete(self, doc_ids: Sequence[str]) -> Written:
        """Delete under the write lock (held by the caller)."""
        # At Strong: a delete also removes another replica's write of a moment ago (a put
        # leaves that to the next write of the document), and its publish waits a tick
        # anyway.
        self._check_slot()
        old, stored = self._read_for_write(doc_ids, strong=True)
        present = tuple(doc_id in old and old[doc_id].exists for doc_id in doc_ids)
        gone = [rows for rows in old.values() if rows.exists]
        if gone:
            last = self._numbering.numbers(max(self._seq, stored), len(gone))[-1]
            try:
                removed = self._remove(gone)
                self._write_row(last, self._unsettled)
                self._settle(removed)
            except StoreUnavailableError as error:
                self._recent.reset()
                raise StoreWriteError(f"Milvus did not take the delete: {error}") from error
            deleted = {doc_id: OldRows() for doc_id, rows in old.items() if rows.exists}
            self._recent.record(deleted, old, self._write_stamps())
            self._seq = max(self._seq, last)
            self.publish(self._seq)  # a delete is visible the moment it is acknowledged
        return Written(self._seq, present)

    def refresh(self) -> None:
        self._reindexer.follow_switch(self._others)
        self.publish()

    def wait_for(self, seq: int, timeout: float) -> bool:
        with self._visible:
            return self._visible.wait_for(lambda: self._view.seq >= seq, timeout)

    def close(self) -> None:
        if self.closed.is_set():
            return
        self.closed.set()
        self._refresher.join(timeout=10)
        self._copies_checker.join(timeout=10)
        self._reindexer.wait_retired(timeout=30)
        self._readers.shutdown(wait=True)
        self._numbering.release()
        self._client.close()

    def _writable(self) -> None:
        if self.read_only is not None:
            raise ReadOnlyStoreError(f"writes are disabled: {self.read_only}")

    def _read_for_write(
        self, doc_ids: Sequence[str], *, strong: bool = False
    ) -> tuple[dict[str, OldRows], int]:
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
            return self._reads.rows_of_documents(collection, unique, fields, **read)

        documents = self._readers.submit(rows, self._version.documents, ["doc_id", "seq", "part"])
        passages = self._readers.submit(rows, self._version.passages, ["doc_id", "seq"])
        # This replica's own count is self._seq; the shared one is for other replicas' writes,
        # which no consistency level short of Strong waits for.
        counter = self._readers.submit(
            self._reads.stored_seq, self._version, None if strong else self._others
        )
        # A remembered document: the rows this replica's write left, and any other rows Milvus
        # shows (another replica's write) but those that write deleted.
        old: dict[str, OldRows] = {}
        skip: set[int] = set()
        for doc_id, (left, deleted) in known.items():
            old[doc_id] = OldRows(left.exists, [*left.documents], [*left.passages])
            skip |= deleted | {pk for pk, _ in left.documents} | {pk for pk, _ in left.passages}
        for row in documents.result():
            if row["pk"] not in skip:
                entry = old.setdefault(row["doc_id"], OldRows())
                entry.documents.append((row["pk"], row["seq"]))
                entry.exists = entry.exists or row["part"] == 0
        for row in passages.result():
            if row["pk"] not in skip:
                old.setdefault(row["doc_id"], OldRows()).passages.append((row["pk"], row["seq"]))
        return old, counter.result()

    def _remove(self, old: Iterable[OldRows]) -> dict[str, list[int]]:
        """Delete ``old`` rows by primary key (a delete by any other expression makes Milvus
        query first, which waits for a time tick); the keys deleted, by collection."""
        old = list(old)
        removed = {
            self._version.passages: [pk for o in old for pk, _ in o.passages],
            self._version.documents: [pk for o in old for pk, _ in o.documents],
        }
        delete_rows(self._client, removed)
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
            self.target.is_lite or self._carry_session(self._version.store_meta, removed)
        ):
            return
        self._reads.wait_gone(removed)

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
        call(lambda: self._client.upsert(self._version.meta, [meta_row("seq", str(seq))]))

    def _take_slot(self) -> None:
        """Claim a numbering slot, and number from above every write there is (the slot's
        previous holder's included): its row's unfinished writes become this one's to repair."""
        rows = self._reads.replica_rows(self._version, "Strong")
        self._numbering.claim_slot(rows)
        self._seq = max(self._seq, self._reads.stored_seq(self._version, "Strong"))
        previous = [r for r in rows if r.slot == self._numbering.slot]
        self._unsettled = [*self._unsettled, *(p for r in previous for p in r.pending)]
        self._write_row(self._seq, self._unsettled)

    def _check_slot(self) -> None:
        """Before a write (under the write lock): a replica frozen for long may have lost its
        slot to another (``numbering``); then it claims another."""
        if not self._numbering.still_held():
            logger.warning("this replica's numbering slot was taken over: claiming another")
            self._take_slot()

    def _write_row(self, seq: int, pending: Sequence[tuple[int, int]]) -> None:
        """Upsert this replica's row: the highest number it gave, its writes under way."""
        self._row_seq = max(self._row_seq, seq)
        row = self._numbering.row(self._row_seq, pending)
        key = f"{ROW_PREFIX}{row.slot}"
        meta = self._version.store_meta
        call(lambda: self._client.upsert(meta, [meta_row(key, row.meta_value())]))
        self._numbering.beaten()

    # -- switching versions (the reindexer's) -----------------------------------------------

    def switch_to(
        self, version: Version, seq: int, on_switch: Callable[[], None] | None, what: str
    ) -> None:
        """Serve ``version`` from now on, at write ``seq`` (the caller holds ``write_lock``).
        ``on_switch`` runs then (a failure is logged as ``what``: the switch stands); the
        epoch changes after it, so a write prepared before is prepared again, anew."""
        self._version = version
        self._recent = RecentWrites((version.passages, version.documents))
        self._seq = seq
        if on_switch is not None:
            try:
                on_switch()
            except Exception:
                logger.exception(what)
        self._epoch += 1

    def advance_seq(self, seq: int) -> None:
        """Raise the write counter to ``seq`` after another version's writes were copied into
        this one (the caller holds ``write_lock``): the rows recent writes left may be gone."""
        self._recent.reset()
        self._set_seq(seq)
        self._seq = seq

    def reindex(self, rebuild: Rebuild, *, grace: float | None = None) -> Manifest:
        """See ``MilvusReindexer.reindex``: ``grace`` is how long the replaced version is kept
        (default ``reindexing.SWITCH_GRACE_SECONDS``)."""
        return self._reindexer.reindex(rebuild, grace=grace)

    @property
    def retire_seconds(self) -> float:
        return reindexing.SWITCH_GRACE_SECONDS

    def follow(self, follower: Follower) -> None:
        self.follower = follower

    def metrics(self) -> list[StoreMetric]:
        return []  # Milvus has its own metrics (its /metrics port)

    def wait_retired(self, timeout: float | None = None) -> None:
        """Return once the version a reindex replaced is dropped (after its grace period)."""
        self._reindexer.wait_retired(timeout)

    # -- publishing -------------------------------------------------------------------------

    def _publish_view(self, seq: int) -> MilvusView:
        version = self._version
        # Both at once: each may wait for the same time tick.
        documents = self._readers.submit(
            self._reads.count, version.documents, f"part == 0 and seq <= {seq}"
        )
        passages = self._reads.count(version.passages, f"seq <= {seq}")
        return MilvusView(
            self._reads, version, self.server_version, seq, documents.result(), passages
        )

    def publish(self, seq: int | None = None) -> None:
        """Publish a view at ``seq``, or at the shared counter (other replicas' writes too)."""
        if seq is None:  # this replica's own count is in memory: no wait for its writes
            seq = max(self._seq, self._reads.stored_seq(self._version, self._others))
        view = self._publish_view(seq)
        with self._visible:
            # A view of the version before a switch that finished meanwhile is dropped.
            current = view.version is self._version
            if current and (view.seq >= self._view.seq or self._view.version is not view.version):
                self._view = view
            self._visible.notify_all()

    def _refresh_loop(self) -> None:
        # Whether the last view was published while another replica's write was under way:
        # its counts may hold both copies, so the next refresh publishes again.
        midway = False
        while not self.closed.wait(self.refresh_interval or 0.2):
            try:
                self._reindexer.follow_switch(self._others)
                self._beat()
                rows = self._reads.meta_rows(self._version, self._others)
                if max(self._seq, counter_of(rows)) != self._view.seq or midway:
                    self.publish()
                    others = [r for r in replica_rows(rows) if r.slot != self._numbering.slot]
                    midway = any(r.pending for r in others)
            except StoreUnavailableError as error:
                logger.warning("refreshing from Milvus failed (retrying): %s", error)

    def _beat(self) -> None:
        """Keep this replica's slot claim alive (``numbering``); a write beats too."""
        if self.read_only is not None or not self._numbering.beat_due():
            return
        if self.write_lock.acquire(blocking=False):  # else a write is under way: it beats
            try:
                self._write_row(self._row_seq, self._unsettled)
            finally:
                self.write_lock.release()

    def _copies_loop(self) -> None:
        # A thread of its own: a bulk write's check reads at Strong, a time tick a batch,
        # which the refresh should not wait for.
        while not self.closed.wait(self.refresh_interval or 0.2):
            try:
                self._check_copies()
            except Exception as error:  # the checks stay due: the next round tries again
                logger.warning("looking for second copies failed (retrying): %s", error)

    def _check_copies(self) -> None:
        """Remove the older copies of documents this replica wrote a moment ago that another
        replica wrote at the same moment, and of documents any replica's write left midway
        (its replica row's ``pending``): see ``copies``."""
        if self.read_only is not None:  # no deletes from a replica opened for reading
            return
        now = time.monotonic()
        with self._rechecks_lock:
            due = sorted(d for d, when in self._rechecks.items() if when <= now)
        version = self._version
        ranges, abandoned = self._cut_short(self._reads.replica_rows(version, "Strong"))
        documents: list[int] = []
        passages: list[int] = []
        ids = sorted({*due, *written_in(self._reads, version, ranges)})
        if ids:
            strong: dict[str, Any] = {"consistency_level": "Strong"}
            rows = self._reads.rows_of_documents
            documents, passages = older_copies(
                rows(version.documents, ids, ["doc_id", "seq", "part", "parts"], **strong),
                rows(version.passages, ids, ["doc_id", "seq", "chunk_id"], **strong),
                lambda seq: any(first <= seq <= last for _, (first, last) in abandoned),
            )
        removed = {version.documents: documents, version.passages: passages}
        if documents or passages:
            delete_rows(self._client, removed)
        with self._rechecks_lock:  # checked (those written again since are due later)
            for doc_id in due:
                if self._rechecks.get(doc_id, now + 1) <= now:
                    del self._rechecks[doc_id]
        # Writes known to be over are repaired for good now.
        self._settled.update((claim, span) for claim, span in abandoned if claim)
        own = {span for claim, span in abandoned if not claim}
        if own:
            with self.write_lock:
                self._unsettled = [s for s in self._unsettled if s not in own]
        if not (documents or passages):
            return
        logger.info(
            "removed second copies (replicas writing one document at once, or a write cut "
            "short): %d text rows, %d passages",
            len(documents),
            len(passages),
        )
        self._reads.wait_gone(removed)
        if version is self._version:
            self.publish(self._view.seq)  # the counts without them

    def _cut_short(
        self, rows: Sequence[ReplicaRow]
    ) -> tuple[list[tuple[int, int]], list[tuple[str, tuple[int, int]]]]:
        """The number ranges of writes to look at: other replicas' under way (or cut short
        by a crash), and this one's failed rounds; and, of those, the ones known to be over
        (a stale replica's, this one's), by claim ("" for this replica's own)."""
        ranges: list[tuple[int, int]] = []
        over: list[tuple[str, tuple[int, int]]] = []
        for row in rows:
            if row.slot == self._numbering.slot:
                continue  # this replica's own: it knows which are under way
            holder = row.claim or f"slot {row.slot}"  # Milvus Lite's slots have no claim
            for span in row.pending:
                if (holder, span) in self._settled:
                    continue
                ranges.append(span)
                if row.stale():
                    over.append((holder, span))
        mine = list(self._unsettled)
        return ranges + mine, over + [("", span) for span in mine]


__all__ = ["MilvusStore"]
