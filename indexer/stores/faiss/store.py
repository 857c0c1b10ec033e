"""The local store: FAISS and BM25 in memory, durable through a translog and merged versions.

Elasticsearch's model, on one machine:

- **write**: a put or delete is appended to the translog and fsynced, then applied to the
  in-memory index (``LocalIndex``), then acknowledged. It survives ``kill -9`` from then on.
- **refresh**: a background thread publishes the writes of the last ``refresh_interval``
  seconds as a new view for searches (near-real-time). Deletes publish at once: once a
  delete is acknowledged, no search returns the document.
- **merge**: when enough rows were added or removed, a background thread compacts a view into
  a new version directory (vectors, keyword index, documents; removed rows gone), switches
  CURRENT to it and drops the translog generations it contains. Writes go on meanwhile; the
  ones that arrive during the merge are applied to the merged index before the switch.
- **reindex**: like a merge, but every live document is prepared again (new chunking, keyword
  settings or model) into a version with new settings; writes that arrive meanwhile are
  prepared again from the documents in their records, never from their old-model vectors. The
  last few are caught up with writes held, and the new version's ``seq`` covers them all, so
  replaying the translog after it can never apply an old-model vector to it.
- **open**: the current version, then every translog record after its sequence number.
"""

from __future__ import annotations

import errno
import logging
import shutil
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import ClassVar, Self

from indexer.filters import Filter
from indexer.manifest import Manifest, ManifestError, read_manifest
from indexer.stores.base import (
    Follower,
    IndexedDocument,
    ReadOnlyStoreError,
    Rebuild,
    ReindexError,
    StaleWriteError,
    StorageFullError,
    StoredDocument,
    StoreExistsError,
    StoreMetric,
    StoreOpenError,
    StoreWriteError,
    Written,
    passes,
    refuse_outside,
)
from indexer.stores.faiss.layout import (
    TRANSLOG_DIR,
    IndexLock,
    commit_version,
    current_version,
    new_version_dir,
    remove_unused,
    set_current,
    write_index,
)
from indexer.stores.faiss.merges import MergePolicy, apply_prepared, apply_writes
from indexer.stores.faiss.operations import (
    Delete,
    Operation,
    Put,
    decode,
    encode_delete,
    encode_put,
    numbered,
)
from indexer.stores.faiss.state import LocalIndex, LocalView, VersionError, verify_version
from indexer.stores.faiss.translog import (
    DiskFullError,
    ReadOnlyError,
    Translog,
    TranslogCorruptError,
    replay,
)

logger = logging.getLogger("indexer")

DEFAULT_REFRESH_INTERVAL = 1.0
# After a failed merge (a full disk, say), wait this long before trying again.
_MERGE_RETRY_SECONDS = 60.0
# Writes that arrive during a merge are applied to the merged index in batches outside the
# lock; the last few, under it, so that the switch misses none.
_CATCH_UP_UNDER_LOCK = 64
# A reindex embeds what it catches up: fewer under the lock, so writes are held briefly.
_REINDEX_UNDER_LOCK = 8
_REINDEX_BATCH = 32


class _AbandonedError(Exception):
    """A merge given up because the store is closing."""


class FaissStore:
    """A live index in a local directory (see the module docstring)."""

    kind: ClassVar[str] = "faiss"

    def __init__(
        self,
        root: Path,
        index: LocalIndex,
        *,
        lock: IndexLock | None,
        translog: Translog | None,
        read_only: str | None,
        refresh_interval: float,
        merge_policy: MergePolicy,
    ) -> None:
        self.root = root
        self._index = index
        self._lock_file = lock
        self._translog = translog
        self.read_only = read_only
        """A read-only mount or directory, or an index opened for reading only; None."""
        self.refresh_interval = refresh_interval
        self.merge_policy = merge_policy
        self._write_lock = threading.Lock()
        self._visible = threading.Condition()
        self._view = index.publish()
        self._closed = threading.Event()
        self._wake = threading.Condition()
        self._merging = False
        self._collecting = False
        self._merge_ops: list[Operation] = []
        self._merge_thread: threading.Thread | None = None
        self._next_merge_at = 0.0
        self.merges = 0
        self.last_merge_at: float | None = None
        """Unix time the last merge (in this process) completed."""
        self._epoch = 0  # settings generation: +1 at each reindex switch
        self._refresher: threading.Thread | None = None
        if translog is not None:
            self._refresher = threading.Thread(
                target=self._refresh_loop, name="index-refresh", daemon=True
            )
            self._refresher.start()

    # -- making and opening -----------------------------------------------------------------

    @classmethod
    def create(
        cls, location: Path, manifest: Manifest, documents: Sequence[IndexedDocument]
    ) -> Self:
        """Write a new index directory at ``location``; refuses to replace anything."""
        if location.exists() and any(location.iterdir()):
            raise StoreExistsError(f"{location} exists and is not empty")
        write_index(location, LocalIndex.build(manifest, documents), started=time.perf_counter())
        return cls.open(location)

    @classmethod
    def open(
        cls,
        location: Path,
        *,
        writable: bool = True,
        refresh_interval: float = DEFAULT_REFRESH_INTERVAL,
        merge_policy: MergePolicy | None = None,
    ) -> Self:
        """Open the index at ``location``: its current version plus the translog after it.

        ``writable``: take the index's lock and accept writes. If the directory cannot be
        written (a read-only mount, no permission), the store opens read-only and says why.
        """
        root = location
        current_version(root)  # before taking the lock: never leave a LOCK file where no index is
        lock, translog, read_only = None, None, None
        if writable:
            lock = IndexLock(root)
            try:
                lock.acquire()
            except OSError as error:
                if error.errno not in (errno.EROFS, errno.EACCES, errno.EPERM):
                    raise
                lock, read_only = None, f"the index directory {root} is read-only"
        try:
            index = _load(root)
            if writable and read_only is None:
                remove_unused(root)
                translog = Translog.open(root / TRANSLOG_DIR)
        except BaseException:
            if lock is not None:
                lock.release()
            raise
        if not writable:
            read_only = "opened for reading only"
        return cls(
            root,
            index,
            lock=lock,
            translog=translog,
            read_only=read_only,
            refresh_interval=refresh_interval,
            merge_policy=merge_policy or MergePolicy(),
        )

    # -- reading ----------------------------------------------------------------------------

    @property
    def location(self) -> Path:
        """Where the store is, as ``Store.open`` takes it."""
        return self.root

    @property
    def manifest(self) -> Manifest:
        """The served version's: a merge keeps it, a reindex replaces it."""
        return self._index.manifest

    @property
    def seq(self) -> int:
        """The last write made durable (it may not be visible yet)."""
        return self._index.seq

    @property
    def translog_bytes(self) -> int | None:
        """The translog's size on disk (None if the store is not writable)."""
        translog = self._translog
        return None if translog is None else translog.size_bytes()

    def reader(self) -> LocalView:
        return self._view

    @property
    def epoch(self) -> int:
        """Changes when a reindex switches settings: pass it to ``put`` with documents
        prepared under it, so a write prepared with the old settings is refused after."""
        return self._epoch

    def get(self, doc_id: str) -> StoredDocument | None:
        return self._index.get(doc_id)

    # -- what the service asks of any store beyond reads and writes -------------------------

    @property
    def keyword_problem(self) -> str | None:
        return None  # BM25 is ours: keyword search always works

    def follow(self, follower: Follower) -> None:
        """Nothing to follow: one process writes to a local index (``LOCK``), so no other
        reindexes it."""

    def metrics(self) -> list[StoreMetric]:
        figures = [
            StoreMetric(
                "search_index_merges", "Merges this process completed.", self.merges, counter=True
            )
        ]
        translog = self.translog_bytes
        if translog is not None:
            figures.insert(
                0,
                StoreMetric(
                    "search_translog_bytes",
                    "Bytes in the translog: the writes since the last merge.",
                    translog,
                ),
            )
        if self.last_merge_at is not None:
            figures.append(
                StoreMetric(
                    "search_index_last_merge_timestamp_seconds",
                    "When this process last completed a merge.",
                    self.last_merge_at,
                )
            )
        return figures

    @property
    def retire_seconds(self) -> float:
        return 0.0  # a merge or reindex deletes what it replaced as it finishes

    def wait_retired(self, timeout: float | None = None) -> None:
        """Nothing to wait for (see ``retire_seconds``)."""

    # -- writing ----------------------------------------------------------------------------

    def put(
        self,
        documents: Sequence[IndexedDocument],
        *,
        epoch: int | None = None,
        guard: Filter | None = None,
    ) -> Written:
        dimension = self.manifest.model.dimension
        for item in documents:  # before logging: a logged write must apply
            if item.vectors.shape != (len(item.passages), dimension):
                raise ValueError(
                    f"document {item.document.doc_id!r}: {len(item.passages)} passages need "
                    f"vectors of shape ({len(item.passages)}, {dimension}), not "
                    f"{item.vectors.shape}"
                )
        bodies = [encode_put(item) for item in documents]  # outside the lock: it is slow
        with self._write_lock:
            translog = self._writable()
            if epoch is not None and epoch != self._epoch:
                raise StaleWriteError("the index was reindexed while these were prepared")
            refuse_outside(guard, [item.document.doc_id for item in documents], self._index.get)
            first = self._index.seq + 1
            puts = [Put(first + i, item) for i, item in enumerate(documents)]
            self._append(translog, [numbered(p.seq, b) for p, b in zip(puts, bodies, strict=True)])
            existed = tuple(self._index.put(p.item, p.seq) for p in puts)
            self._after_write(puts)
            seq = self._index.seq
        self._nudge()
        return Written(seq, existed)

    def delete(self, doc_ids: Sequence[str], *, guard: Filter | None = None) -> Written:
        with self._write_lock:
            translog = self._writable()
            if guard is None:
                present = tuple(doc_id in self._index for doc_id in doc_ids)
            else:
                present = tuple(passes(guard, self._index.get(doc_id)) for doc_id in doc_ids)
            # Only documents that exist are logged: deleting nothing is not a write.
            first = self._index.seq + 1
            gone = [d for d, here in zip(doc_ids, present, strict=True) if here]
            deletes = [Delete(first + i, doc_id) for i, doc_id in enumerate(gone)]
            if deletes:
                self._append(translog, [numbered(d.seq, encode_delete(d.doc_id)) for d in deletes])
                for delete in deletes:
                    self._index.delete(delete.doc_id, delete.seq)
                self._after_write(deletes)
                # A delete is visible the moment it is acknowledged: publish now.
                self._publish()
            seq = self._index.seq
        return Written(seq, present)

    def refresh(self) -> None:
        with self._write_lock:
            self._publish()

    def wait_for(self, seq: int, timeout: float) -> bool:
        with self._visible:
            return self._visible.wait_for(lambda: self._view.seq >= seq, timeout)

    def _writable(self) -> Translog:
        if self._translog is None or self.read_only is not None:
            raise ReadOnlyStoreError(
                f"writes are disabled: {self.read_only or 'the index is not open for writing'}"
            )
        return self._translog

    def _append(self, translog: Translog, payloads: list[bytes]) -> None:
        try:
            translog.append(payloads)
        except DiskFullError as error:
            raise StorageFullError(str(error)) from error
        except ReadOnlyError as error:
            raise ReadOnlyStoreError(str(error)) from error
        except OSError as error:  # TranslogWriteError's message already names the log
            raise StoreWriteError(str(error)) from error

    def _after_write(self, operations: Sequence[Operation]) -> None:
        if self._collecting:  # a merge will apply these to the index it is building
            self._merge_ops.extend(operations)

    def _publish(self) -> None:
        """Make every applied write visible (the caller holds the write lock)."""
        view = self._index.publish()
        with self._visible:
            self._view = view
            self._visible.notify_all()

    # -- background: refresh and merge ------------------------------------------------------

    def _nudge(self) -> None:
        with self._wake:
            self._wake.notify()

    def _refresh_loop(self) -> None:
        while not self._closed.is_set():
            with self._wake:
                # Sleep until something was written (or a merge retry is due).
                self._wake.wait_for(lambda: self._index.dirty or self._closed.is_set(), 5.0)
            if self._closed.is_set():
                return
            if self._index.dirty:
                # Let writes gather for one interval, then publish them together.
                if self._closed.wait(self.refresh_interval):
                    return
                with self._write_lock:
                    self._publish()
            self._maybe_merge()

    def _maybe_merge(self) -> None:
        if self._merging or time.monotonic() < self._next_merge_at:
            return
        if not self.merge_policy.due(*self._index.growth()):
            return
        self.start_merge()

    def start_merge(self) -> threading.Thread | None:
        """Merge in the background now (also what the policy triggers); None if one runs.

        One merge at a time, from its start until the version it replaced is deleted: a
        second one must never see (and clean up) the first's directories.
        """
        with self._write_lock:
            if self._merging or self._translog is None:
                return None
            self._publish()
            view = self._view
            generation = self._translog.roll()
            self._merging = self._collecting = True
            self._merge_ops = []
        thread = threading.Thread(
            target=self._merge, args=(view, generation), name="index-merge", daemon=True
        )
        self._merge_thread = thread
        thread.start()
        return thread

    def _merge(self, view: LocalView, generation: int) -> None:
        started = time.perf_counter()
        replaced = current_version(self.root)
        unfinished: Path | None = None  # removed if the merge fails before the switch
        try:
            merged = LocalIndex.compact(view)
            unfinished, final = new_version_dir(self.root)
            merged.save(unfinished, started=started, now=time.perf_counter())
            commit_version(unfinished, final)
            unfinished = final
            applied = 0
            while True:
                if self._closed.is_set():  # shutting down: the translog holds it all anyway
                    raise _AbandonedError
                with self._write_lock:
                    pending = self._merge_ops[applied:]
                    if len(pending) <= _CATCH_UP_UNDER_LOCK:
                        apply_writes(merged, pending)
                        set_current(self.root, final)  # the commit point
                        unfinished = None
                        self._index = merged
                        self._collecting = False
                        self._merge_ops = []
                        self._publish()
                        break
                apply_writes(merged, pending)  # the merged index is this thread's alone until then
                applied += len(pending)
        except Exception as error:
            if not isinstance(error, _AbandonedError):
                logger.error("merging the index failed (will retry; writes go on): %s", error)
            if unfinished is not None:
                shutil.rmtree(unfinished, ignore_errors=True)
            with self._write_lock:
                self._merging = self._collecting = False
                self._merge_ops = []
            self._next_merge_at = time.monotonic() + _MERGE_RETRY_SECONDS
            return
        self._drop_replaced(generation, replaced, "merge")
        self.merges += 1
        self.last_merge_at = time.time()
        logger.info(
            "merged %d documents, %d passages into %s in %.2f s",
            view.document_count,
            view.passage_count,
            final.name,
            time.perf_counter() - started,
        )

    # -- reindex ----------------------------------------------------------------------------

    def reindex(
        self,
        rebuild: Rebuild,
        *,
        before_switch: Callable[[Path], None] | None = None,
        wait_for_merge: float = 60.0,
    ) -> Manifest:
        """Rebuild every live document with ``rebuild.prepare`` into a version with its
        manifest's settings (model, chunking, keyword, title prefix), then switch to it;
        searches and writes go on meanwhile (see the module docstring). ``rebuild.on_switch``
        runs at the switch, with writes held (the service swaps its model there);
        ``before_switch`` gets the written version before it is verified (tests damage it
        there). Raises ``ReindexError`` if the new version fails, leaving the old one
        serving."""
        report, prepare, manifest = rebuild.report, rebuild.prepare, rebuild.manifest
        try:
            view, generation = self._begin_exclusive(wait_for_merge)
        except ReindexError as error:
            logger.error("cannot reindex now: %s", error)
            raise
        replaced = current_version(self.root)
        written: Path | None = None  # removed if the reindex fails before the switch
        try:
            documents = [stored.document for stored in view.documents(0, view.document_count)]
            prepared: list[IndexedDocument] = []
            report("rebuilding", 0, len(documents))
            for start in range(0, len(documents), _REINDEX_BATCH):
                self._check_open()
                prepared.extend(prepare(documents[start : start + _REINDEX_BATCH]))
                report("rebuilding", len(prepared), len(documents))
            rebuilt = LocalIndex.build(manifest.model_copy(update={"seq": view.seq}), prepared)
            applied = 0
            while True:
                self._check_open()
                with self._write_lock:
                    self._check_open()  # close() may have come between the check and here
                    pending = self._merge_ops[applied:]
                    if len(pending) <= _REINDEX_UNDER_LOCK:
                        # The critical section: writes wait from here to the switch.
                        report("switching", len(pending), len(pending))
                        apply_prepared(rebuilt, pending, prepare)
                        if rebuilt.seq != self._index.seq:  # a write was missed: never switch
                            raise ReindexError(
                                f"the rebuilt index is at write {rebuilt.seq}, "
                                f"the live one at {self._index.seq}"
                            )
                        written, merged = self._write_version(rebuilt, before_switch)
                        set_current(self.root, written)  # the commit point
                        written = None
                        self._index = merged
                        self._collecting = False
                        self._merge_ops = []
                        if rebuild.on_switch is not None:
                            try:
                                rebuild.on_switch()
                            except Exception:  # past the commit point: the switch stands
                                logger.exception("after the reindex switch")
                        # After on_switch: a writer that reads the new epoch finds the
                        # service's new preparer too.
                        self._epoch += 1
                        self._publish()
                        break
                report("catching up", 0, len(pending))
                apply_prepared(rebuilt, pending, prepare)
                applied += len(pending)
        except BaseException as error:
            if written is not None:
                shutil.rmtree(written, ignore_errors=True)
            with self._write_lock:
                self._merging = self._collecting = False
                self._merge_ops = []
            if isinstance(error, _AbandonedError):
                raise ReindexError("the index was closed during the reindex") from None
            # ValueError: prepared vectors that do not fit the new version
            if isinstance(error, VersionError | ReindexError | ValueError):
                logger.error("refusing the reindexed version; the old one serves on: %s", error)
                raise ReindexError(str(error)) from None
            raise
        self._drop_replaced(generation, replaced, "reindex")  # old-model records included
        logger.info(
            "reindexed %d documents into %s (%s)",
            merged.manifest.counts.documents,
            replaced.parent / current_version(self.root).name,
            merged.manifest.model.name,
        )
        return merged.manifest

    def _drop_replaced(self, generation: int, replaced: Path, what: str) -> None:
        """Delete what a merge or reindex ``what`` replaced (the translog generations its new
        version covers, the old version's directory; if this fails, the next open cleans up),
        and let the next one start."""
        try:
            with self._write_lock:
                if self._translog is not None:  # else closed meanwhile: the next open cleans up
                    self._translog.trim(generation)
            shutil.rmtree(replaced)
        except OSError as error:
            logger.warning("could not delete what the %s replaced: %s", what, error)
        finally:
            with self._write_lock:
                self._merging = False

    def _begin_exclusive(self, wait: float) -> tuple[LocalView, int]:
        """Start collecting writes for a reindex, once no merge runs (one at a time)."""
        deadline = time.monotonic() + wait
        while True:
            with self._write_lock:
                translog = self._writable()
                if not self._merging:
                    self._publish()
                    self._merging = self._collecting = True
                    self._merge_ops = []
                    return self._view, translog.roll()
            if time.monotonic() > deadline:
                raise ReindexError("a merge or another reindex is running; try again later")
            self._check_open()
            time.sleep(0.05)

    def _check_open(self) -> None:
        if self._closed.is_set():
            raise _AbandonedError

    def _write_version(
        self, rebuilt: LocalIndex, before_switch: Callable[[Path], None] | None
    ) -> tuple[Path, LocalIndex]:
        """Save ``rebuilt`` as the next version and verify it as a restart would read it."""
        started = time.perf_counter()
        merged = LocalIndex.compact(rebuilt.publish())
        unfinished, final = new_version_dir(self.root)
        try:
            merged.save(unfinished, started=started, now=time.perf_counter())
            commit_version(unfinished, final)
        except BaseException:
            shutil.rmtree(unfinished, ignore_errors=True)
            raise
        try:
            if before_switch is not None:
                before_switch(final)
            verified = verify_version(final, rebuilt.manifest.model)
            if verified.seq != rebuilt.seq:
                raise VersionError(f"{final.name} covers write {verified.seq}, not {rebuilt.seq}")
        except BaseException:
            shutil.rmtree(final, ignore_errors=True)
            raise
        return final, merged

    def close(self) -> None:
        self._closed.set()
        self._nudge()
        if self._refresher is not None:
            self._refresher.join(timeout=10)
        if self._merge_thread is not None:
            # A merge gives up at its next step; giving up is safe (the translog has it all).
            self._merge_thread.join(timeout=10)
        with self._write_lock:
            if self._translog is not None:
                self._translog.close()
                self._translog = None
            if self._lock_file is not None:
                self._lock_file.release()
                self._lock_file = None


def _load(root: Path) -> LocalIndex:
    """The current version with the translog replayed on top."""
    for attempt in range(3):
        version = current_version(root)
        try:
            # Every file byte for byte, as a reindex checked it before its switch (versions
            # written before checksums were recorded have none to check).
            if read_manifest(version).files:
                verify_version(version)
            index = LocalIndex.load(version)
            break
        except FileNotFoundError:
            # A reader racing the writer's merge: the version it read in CURRENT was just
            # replaced and deleted. Read CURRENT again.
            if attempt == 2 or current_version(root) == version:
                message = f"the index at {root} is damaged: {version} is incomplete"
                raise StoreOpenError(message) from None
        except ManifestError as error:
            raise StoreOpenError(str(error)) from error
        except VersionError as error:
            raise StoreOpenError(f"the index at {root} is damaged: {error}") from error
        except (OSError, KeyError, TypeError, ValueError, RuntimeError) as error:
            # RuntimeError: FAISS's, for an unreadable vector file.
            raise StoreOpenError(f"the index at {root} is damaged: {error}") from error
    log = root / TRANSLOG_DIR
    expected = index.seq + 1
    try:
        for payload in replay(log):
            operation = decode(payload)
            if operation.seq < expected:
                continue  # already in the version
            if operation.seq > expected:
                logger.error(
                    "the index log at %s skips from write %d to %d: writes are missing",
                    log,
                    expected - 1,
                    operation.seq,
                )
            apply_writes(index, [operation])
            expected = operation.seq + 1
    except (TranslogCorruptError, ValueError, KeyError) as error:
        raise StoreOpenError(f"the index log at {log} is damaged: {error}") from error
    return index
