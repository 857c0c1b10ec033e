"""``MilvusStore``'s reindex, and how a replica follows another process's (a mixin of the store,
for the store's state and reads; ``store`` sets up the attributes declared here).

A reindex builds a new version (its own three collections, ``<name>__r<n>_*``) from the
served one while searches and writes go on, then switches the ``current`` row of the
store's meta, which every replica reads at its refresh: Elasticsearch's alias swap.
Rows keep the sequence number of the write they copy, so catching up compares numbers:
a document whose number in the old version differs from the one copied was written (or
deleted) there since. After the switch, writes that replicas still make to the old
version (until their next refresh) are copied for a grace period; a document written
through the new version meanwhile keeps that write.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import replace
from datetime import UTC, datetime
from functools import partial
from typing import TYPE_CHECKING, Any

from cachetools import LRUCache

from indexer.manifest import FORMAT_VERSION, Counts, Manifest
from indexer.stores.base import (
    DocumentRefusedError,
    Prepare,
    Progress,
    ReindexError,
    StoredDocument,
    StoreUnavailableError,
)
from indexer.stores.milvus.claims import _claim_build, _live_claims
from indexer.stores.milvus.client import (
    _DELETE_BATCH,
    Consistency,
    MilvusTarget,
    _call,
    _drop_quietly,
    collection_names,
    full_text_support,
)
from indexer.stores.milvus.schema import (
    _check_fits,
    _create_collections,
    _insert_documents,
    _load,
    _meta_row,
)
from indexer.stores.milvus.versions import (
    _VERSION_MARK,
    _current,
    _drop_version,
    _Version,
    _version_at,
    version_number,
)
from indexer.stores.milvus.writes import _RecentWrites
from indexer.types import DocumentInfo, Passage

if TYPE_CHECKING:
    from pymilvus import MilvusClient

logger = logging.getLogger("indexer")

# After a reindex's switch the version before it is kept this long, and the writes replicas
# still make to it are copied over: each replica moves at its next refresh, or once it has
# loaded the new model.
SWITCH_GRACE_SECONDS = 60.0
_REINDEX_BATCH = 32  # documents prepared at a time by a reindex
_CATCH_UP_ROUNDS = 5  # before the switch, catch-up rounds while writes go on
_FULL_SYNC_SECONDS = 10.0  # in the grace period, compare the versions at least this often


class Reindexing:
    """``MilvusStore``'s reindexing (see the module docstring)."""

    # The store's state this uses (``MilvusStore.__init__`` sets it up).
    target: MilvusTarget
    server_version: str
    refresh_interval: float
    follower: Callable[[Manifest], Callable[[], None] | None] | None
    _client: MilvusClient
    _version: _Version
    _read_only: str | None
    _epoch: int
    _seq: int
    _others: Consistency | None
    _recent: _RecentWrites
    _payloads: LRUCache[int, tuple[Passage, DocumentInfo]]
    _payload_lock: threading.Lock
    _write_lock: threading.Lock
    _closed: threading.Event
    _unfollowable: set[str]
    _following: threading.Lock
    _retiring: threading.Thread | None

    if TYPE_CHECKING:  # the store's reads and writes this uses

        def _latest(
            self, version: _Version, doc_ids: Sequence[str], seq: int | None, **read: Any
        ) -> dict[str, tuple[int, StoredDocument]]: ...

        def _query_all(
            self,
            collection: str,
            where: str,
            fields: list[str],
            *,
            skip: int = 0,
            limit: int | None = None,
            **read: Any,
        ) -> Iterator[dict[str, Any]]: ...

        def _rows_of_documents(
            self, collection: str, doc_ids: Sequence[str], fields: list[str], **read: Any
        ) -> list[dict[str, Any]]: ...

        def _count(
            self, collection: str, where: str, consistency: Consistency | None = None
        ) -> int: ...

        def _stored_seq(
            self, consistency: Consistency | None = None, version: _Version | None = None
        ) -> int: ...

        def _set_seq(self, seq: int) -> None: ...

        def _publish(self, seq: int | None = None) -> None: ...

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
        settings, then switch every replica to it (see the module docstring). Raises
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
        leftovers = self._leftover_versions(old)  # a crashed reindex's
        number = 1 + max([version_number(old.data.collection), *leftovers.values()])
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
            for leftover in leftovers:
                _drop_version(
                    client,
                    replace(self.target, collection=leftover),
                    keep_meta=leftover == self.target.collection,
                )
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
            _drop_version(client, data, keep_meta=False)
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
        return {
            collection: [
                row["pk"]
                for row in self._rows_of_documents(
                    collection, doc_ids, [], consistency_level="Strong"
                )
            ]
            for collection in (version.passages, version.documents)
        }

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
        """Copy the writes replicas still make to ``old`` for ``grace`` seconds, then drop it.

        Comparing the versions reads every document's number in both, so a round only does
        it when ``old``'s write counter moved since the last comparison (a replica still on
        ``old`` bumps it with every write), at least every ``_FULL_SYNC_SECONDS`` (two
        replicas' writes can leave the counter at one number: it lacks compare-and-set) and
        in the last round."""
        deadline = time.monotonic() + grace
        counted: int | None = None  # old's counter when the versions were last compared
        compared = time.monotonic()
        while not self._closed.wait(min(self.refresh_interval or 0.2, grace)):
            now = time.monotonic()
            last = now >= deadline
            try:
                counter = self._stored_seq("Strong", old)
                if counter == counted and not last and now - compared < _FULL_SYNC_SECONDS:
                    continue
                changed, _ = self._sync(old, new, copied, prepare)
                counted, compared = counter, now
                if changed:
                    with self._write_lock:
                        self._recent.reset()  # rows this replica's puts remember may be gone
                        seq = max(self._seq, self._stored_seq("Strong"), *copied.values())
                        self._set_seq(seq)
                        self._seq = seq
            except Exception as error:  # the next round tries again
                logger.warning("copying late writes to %s failed: %s", new.data.collection, error)
            if last:
                break
        if self._closed.is_set():
            return  # the next reindex drops what is left
        _drop_version(self._client, old.data, keep_meta=old.data == self.target)
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
