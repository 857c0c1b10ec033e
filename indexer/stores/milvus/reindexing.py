"""``MilvusStore``'s reindex, and how a replica follows another process's: ``MilvusReindexer``,
which the store owns and which reads through the store's ``MilvusReads`` and switches the store
through its public methods (``switch_to``, ``publish``, ``advance_seq``).

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
from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from indexer.manifest import FORMAT_VERSION, Counts, Manifest
from indexer.stores.base import (
    DocumentRefusedError,
    Prepare,
    Rebuild,
    ReindexError,
    StoreExistsError,
    StoreUnavailableError,
)
from indexer.stores.milvus import schema
from indexer.stores.milvus.claims import claim_build, live_claims
from indexer.stores.milvus.client import (
    Consistency,
    call,
    collection_names,
    drop_quietly,
    full_text_support,
)
from indexer.stores.milvus.reads import MilvusReads
from indexer.stores.milvus.versions import (
    VERSION_MARK,
    Version,
    drop_version,
    served_collection,
    version_at,
    version_number,
)

if TYPE_CHECKING:
    from indexer.stores.milvus.store import MilvusStore

logger = logging.getLogger("indexer")

# After a reindex's switch the version before it is kept this long, and the writes replicas
# still make to it are copied over: each replica moves at its next refresh, or once it has
# loaded the new model.
SWITCH_GRACE_SECONDS = 60.0
_REINDEX_BATCH = 32  # documents prepared at a time by a reindex
_CATCH_UP_ROUNDS = 5  # before the switch, catch-up rounds while writes go on
_FULL_SYNC_SECONDS = 10.0  # in the grace period, compare the versions at least this often


class MilvusReindexer:
    """Reindexes ``store`` and follows other processes' reindexes of it (see the module
    docstring)."""

    def __init__(self, store: MilvusStore, reads: MilvusReads) -> None:
        self.store = store
        self.reads = reads
        self.client = reads.client
        self.target = store.target
        # Versions another process switched to that this one cannot serve (logged once).
        self._unfollowable: set[str] = set()
        self._following = threading.Lock()
        self._retiring: threading.Thread | None = None

    def reindex(self, rebuild: Rebuild, *, grace: float | None = None) -> Manifest:
        """Rebuild every live document with ``rebuild.prepare`` into a version with its
        manifest's settings, then switch every replica to it (see the module docstring).
        Raises ``ReindexError`` if the new version fails, leaving the old one serving. The old
        version is dropped ``grace`` seconds (default ``SWITCH_GRACE_SECONDS``) after the
        switch, in the background."""
        report, prepare, manifest = rebuild.report, rebuild.prepare, rebuild.manifest
        grace = SWITCH_GRACE_SECONDS if grace is None else grace
        store = self.store
        if store.read_only is not None:
            raise ReindexError(f"cannot reindex: writes are disabled ({store.read_only})")
        if self._retiring is not None and self._retiring.is_alive():
            raise ReindexError("the previous reindex's old version is still being retired")
        started = time.perf_counter()
        old = store.version
        client = self.client
        leftovers = self._leftover_versions(old)  # a crashed reindex's
        number = 1 + max([version_number(old.data.collection), *leftovers.values()])
        data = replace(self.target, collection=f"{self.target.collection}{VERSION_MARK}{number}")
        try:
            claim = claim_build(client, data)
            if [c for c in self._version_claims() if c != claim]:
                if claim is not None:
                    drop_quietly(client, claim)
                raise StoreExistsError(f"another process is reindexing {self.target}")
        except StoreExistsError as error:
            logger.error("cannot reindex now: %s", error)
            raise ReindexError(str(error)) from None
        try:
            for leftover in leftovers:
                drop_version(
                    client,
                    replace(self.target, collection=leftover),
                    keep_meta=leftover == self.target.collection,
                )
            full_text = full_text_support(store.server_version)
            schema.create_collections(client, data, manifest, full_text=full_text)
            new = Version(data, manifest, full_text)
            schema.load_collections(client, collection_names(data))
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
            with store.write_lock:  # this process's writes wait from here to the switch
                self._check_open()
                report("switching", 0, 0)
                _, documents = self._sync(old, new, copied, prepare)
                seq = max(store.seq, self.reads.stored_seq(old, "Strong"), *copied.values())
                final = self._verified(new, manifest, documents, seq, started)
                call(lambda: client.upsert(new.meta, [schema.meta_row("seq", str(seq))]))
                call(
                    lambda: client.upsert(
                        new.meta, [schema.meta_row("manifest", final.model_dump_json())]
                    )
                )
                new = Version(data, final, full_text)
                root = collection_names(self.target)[2]
                # The commit point: every replica serves the new version from its next refresh.
                try:
                    call(lambda: client.upsert(root, [schema.meta_row("current", data.collection)]))
                except StoreUnavailableError:  # unless Milvus took it and the answer was lost
                    if served_collection(client, self.target, "Strong") != data.collection:
                        raise
                # Past the commit point: the switch stands whatever on_switch does.
                store.switch_to(new, seq, rebuild.on_switch, "after the reindex switch")
        except BaseException as error:
            if store.version is not old:  # past the commit point: the switch stands
                raise
            drop_version(client, data, keep_meta=False)
            if claim is not None:
                drop_quietly(client, claim)
            refused = (ReindexError, StoreUnavailableError, DocumentRefusedError, ValueError)
            if isinstance(error, refused):
                logger.error("refusing the reindexed version; the old one serves on: %s", error)
                raise ReindexError(str(error)) from None
            raise
        store.publish()
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
        self, new: Version, manifest: Manifest, documents: int, seq: int, started: float
    ) -> Manifest:
        """The new version's final manifest, once it holds every live document."""
        held = self.reads.count(new.documents, "part == 0", "Strong")
        if held != documents:
            raise ReindexError(
                f"the rebuilt version holds {held} documents, the live one {documents}"
            )
        return manifest.model_copy(
            update={
                "format_version": FORMAT_VERSION,
                "counts": Counts(
                    documents=held,
                    passages=self.reads.count(new.passages, "chunk_id >= 0", "Strong"),
                ),
                "seq": seq,
                "built_at": datetime.now(UTC),
                "build_seconds": round(time.perf_counter() - started, 3),
            }
        )

    def _live_seqs(self, version: Version) -> dict[str, int]:
        """Every document of ``version`` with its write's sequence number, in write order."""
        seqs: dict[str, int] = {}
        rows = self.reads.query_all(
            version.documents, "part == 0", ["doc_id", "seq"], consistency_level="Strong"
        )
        for row in rows:
            seqs[row["doc_id"]] = max(row["seq"], seqs.get(row["doc_id"], -1))
        return seqs

    def _copy(
        self,
        old: Version,
        new: Version,
        doc_ids: Sequence[str],
        copied: dict[str, int],
        prepare: Prepare,
    ) -> None:
        """Prepare ``doc_ids`` as ``old`` holds them now and write them to ``new`` with their
        sequence numbers, replacing what ``new`` had of them."""
        found = self.reads.latest(old, doc_ids, None, consistency_level="Strong")
        ids = [d for d in doc_ids if d in found]
        if not ids:
            return
        prepared = prepare([found[d][1].document for d in ids])
        for item in prepared:
            schema.check_fits(item, new)
        before = self.reads.keys_of(new, ids)
        schema.insert_documents(
            self.client, new, [(found[d][0], p) for d, p in zip(ids, prepared, strict=True)]
        )
        schema.delete_rows(self.client, before)
        for d in ids:
            copied[d] = found[d][0]

    def _sync(
        self, old: Version, new: Version, copied: dict[str, int], prepare: Prepare
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
            schema.delete_rows(self.client, self.reads.keys_of(new, gone))
        return len(changed) + len(gone), len(old_seqs)

    def _retire(
        self,
        old: Version,
        new: Version,
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
        store = self.store
        while not store.closed.wait(min(store.refresh_interval or 0.2, grace)):
            now = time.monotonic()
            last = now >= deadline
            try:
                counter = self.reads.stored_seq(old, "Strong")
                if counter == counted and not last and now - compared < _FULL_SYNC_SECONDS:
                    continue
                changed, _ = self._sync(old, new, copied, prepare)
                counted, compared = counter, now
                if changed:
                    with store.write_lock:
                        served = self.reads.stored_seq(store.version, "Strong")
                        store.advance_seq(max(store.seq, served, *copied.values()))
            except Exception as error:  # the next round tries again
                logger.warning("copying late writes to %s failed: %s", new.data.collection, error)
            if last:
                break
        if store.closed.is_set():
            return  # the next reindex drops what is left
        drop_version(self.client, old.data, keep_meta=old.data == self.target)
        if claim is not None:
            drop_quietly(self.client, claim)

    def _leftover_versions(self, served: Version) -> dict[str, int]:
        """Versions of this store in Milvus besides ``served`` (a crashed reindex's, or one
        retired after its grace), by number."""
        found: dict[str, int] = {}
        pattern = re.compile(
            rf"({re.escape(self.target.collection)}(?:{VERSION_MARK}\d+)?)_passages"
        )
        for name in call(self.client.list_collections):
            match = pattern.fullmatch(name)
            if match and match[1] != served.data.collection:
                found[match[1]] = version_number(match[1])
        return found

    def _version_claims(self) -> list[str]:
        """Live claims of reindexes of this store (none on Milvus Lite: one process)."""
        base = re.escape(self.target.collection)
        pattern = re.compile(rf"({base}{VERSION_MARK}\d+)_build_claim_\w+")
        names = call(self.client.list_collections)
        found: list[str] = []
        for version in {m[1] for m in map(pattern.fullmatch, names) if m}:
            versioned = replace(self.target, collection=version)
            found.extend(name for _, name in live_claims(self.client, versioned))
        return found

    def follow_switch(self, consistency: Consistency | None) -> None:
        """Serve the version another process's reindex switched to, if it has (reading the
        store's meta at ``consistency``)."""
        collection = served_collection(self.client, self.target, consistency)
        with self._following:  # the refresh thread and a refresh() call: one follows
            served = self.store.version.data.collection
            if version_number(collection) > version_number(served):
                self._follow(collection)

    def _follow(self, collection: str) -> None:
        if collection in self._unfollowable:
            return
        data = replace(self.target, collection=collection)
        try:
            version = version_at(self.client, self.target, data)
            follower = self.store.follower
            switch = follower(version.manifest) if follower is not None else None
        except Exception as error:
            logger.error(
                "cannot serve the reindexed version %s; the one before serves on until it is "
                "dropped: %s",
                collection,
                error,
            )
            self._unfollowable.add(collection)
            return
        store = self.store
        with store.write_lock:
            seq = max(store.seq, self.reads.stored_seq(version, "Strong"))
            store.switch_to(version, seq, switch, "after moving to the reindexed version")
        store.publish()
        logger.info(
            "serving the reindexed version %s (%s)", collection, version.manifest.model.name
        )

    def _check_open(self) -> None:
        if self.store.closed.is_set():
            raise ReindexError("the index was closed during the reindex")
