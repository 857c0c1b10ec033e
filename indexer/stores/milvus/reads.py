"""Reading a store's collections: searches, row queries paged past Milvus's result cap, and
documents as last written. One ``MilvusReads`` is shared by the store, the views it publishes
and its reindexer; every read names the version (``versions.Version``) it reads.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from functools import partial
from typing import TYPE_CHECKING, Any

import numpy as np
from cachetools import LRUCache

from indexer.stores.base import StoredDocument
from indexer.stores.milvus.client import (
    DELETE_BATCH,
    ID_BATCH,
    MAX_RESULTS,
    Consistency,
    call,
)
from indexer.stores.milvus.filters import literal
from indexer.stores.milvus.numbering import ROW_PREFIX, ReplicaRow, replica_rows
from indexer.stores.milvus.schema import PAYLOAD, one_copy, payload_of
from indexer.stores.milvus.versions import Version
from indexer.types import Document, DocumentInfo, Ids, Passage, Scores

if TYPE_CHECKING:
    from pymilvus import MilvusClient

logger = logging.getLogger("indexer")

GONE_TIMEOUT = 30.0
"""How long ``wait_gone`` waits for Milvus to stop showing deleted rows."""


def no_hits() -> tuple[Scores, Ids]:
    return np.empty(0, dtype=np.float32), np.empty(0, dtype=np.int64)


def counter_of(meta_rows: Sequence[Mapping[str, Any]]) -> int:
    """The write counter that ``MilvusReads.meta_rows`` give: the highest number there."""
    replicas = [row.seq for row in replica_rows(meta_rows)]
    return max([int(r["value"]) for r in meta_rows if r["key"] == "seq"] + replicas, default=0)


class MilvusReads:
    """Reads of a store's collections at the store's consistency level (or the one a call
    names), and the passages searches found, cached by their keys."""

    def __init__(self, client: MilvusClient, consistency: Consistency) -> None:
        self.client = client
        self.consistency = consistency
        # By (collection, key): a version's rows are never rewritten under the same key.
        self._payloads: LRUCache[tuple[str, int], tuple[Passage, DocumentInfo]] = LRUCache(
            maxsize=10_000
        )
        self._payload_lock = threading.Lock()

    def search(
        self,
        version: Version,
        data: Any,
        field_name: str,
        params: dict[str, Any],
        k: int,
        where: str,
    ) -> tuple[Scores, Ids]:
        """The ``k`` best passages of ``version`` for ``data`` in ``field_name`` among those
        ``where`` admits: scores and keys, best first; their payloads are cached."""
        if k <= 0:
            return no_hits()
        results = call(
            lambda: self.client.search(
                version.passages,
                data=[data],
                anns_field=field_name,
                limit=min(k, MAX_RESULTS),
                filter=where,
                # The key too: a 2.3 server names no primary field in its results.
                output_fields=["pk", *PAYLOAD],
                search_params=params,
                consistency_level=self.consistency,
            )
        )
        hits = one_copy(results[0] if results else [])
        ids = np.fromiter((int(hit["pk"]) for hit in hits), dtype=np.int64, count=len(hits))
        scores = np.fromiter((hit["distance"] for hit in hits), dtype=np.float32, count=len(hits))
        with self._payload_lock:
            for hit in hits:
                self._payloads[(version.passages, int(hit["pk"]))] = payload_of(hit["entity"])
        return scores, ids

    def payload(self, version: Version, passage_id: int) -> tuple[Passage, DocumentInfo]:
        """A passage of ``version`` and its document's title and metadata, by key."""
        key = (version.passages, int(passage_id))
        with self._payload_lock:
            cached = self._payloads.get(key)
        if cached is not None:
            return cached
        rows = call(
            lambda: self.client.query(
                version.passages,
                filter=f"pk == {int(passage_id)}",
                output_fields=PAYLOAD,
                consistency_level=self.consistency,
            )
        )
        if not rows:
            raise KeyError(f"no passage {passage_id}")
        payload = payload_of(rows[0])
        with self._payload_lock:
            self._payloads[key] = payload
        return payload

    def stored(
        self, version: Version, doc_ids: Sequence[str], seq: int | None
    ) -> list[StoredDocument]:
        """The documents ``doc_ids`` as last written (up to ``seq``), in that order."""
        found = self.latest(version, doc_ids, seq)
        return [found[d][1] for d in doc_ids if d in found]

    def latest(
        self, version: Version, doc_ids: Sequence[str], seq: int | None, **read: Any
    ) -> dict[str, tuple[int, StoredDocument]]:
        """The documents ``doc_ids`` as last written (up to ``seq``), with their writes'
        sequence numbers."""
        found: dict[str, tuple[int, StoredDocument]] = {}
        visible = "" if seq is None else f" and seq <= {seq}"
        for start in range(0, len(doc_ids), ID_BATCH):
            batch = doc_ids[start : start + ID_BATCH]
            ids = f"doc_id in [{', '.join(literal(d) for d in batch)}]"
            # Rows come in key order, which is insertion order. Two replicas writing a document
            # at the same moment can both number their write alike (the shared counter has no
            # compare-and-set): a copy's first piece or passage starts it anew, so the copy
            # inserted last is the one read.
            pieces: dict[tuple[str, int], list[dict[str, Any]]] = {}
            for row in self.query_all(
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
            for row in self.query_all(
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

    def query_all(
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
            page = min(MAX_RESULTS, wanted - seen)
            rows: list[dict[str, Any]] = call(
                partial(
                    self.client.query,
                    collection,
                    filter=f"pk > {cursor} and ({where})",
                    output_fields=["pk", *fields],
                    limit=page,
                    **(read or {"consistency_level": self.consistency}),
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

    def rows_of_documents(
        self, collection: str, doc_ids: Sequence[str], fields: list[str], **read: Any
    ) -> list[dict[str, Any]]:
        """Every row of ``doc_ids`` in ``collection`` (with its key), ``ID_BATCH`` ids a query."""
        found: list[dict[str, Any]] = []
        for start in range(0, len(doc_ids), ID_BATCH):
            batch = ", ".join(literal(d) for d in doc_ids[start : start + ID_BATCH])
            found.extend(self.query_all(collection, f"doc_id in [{batch}]", fields, **read))
        return found

    def keys_of(self, version: Version, doc_ids: Sequence[str]) -> dict[str, list[int]]:
        """The primary keys of ``doc_ids``' rows in ``version``, by collection (at Strong)."""
        return {
            collection: [
                row["pk"]
                for row in self.rows_of_documents(
                    collection, doc_ids, [], consistency_level="Strong"
                )
            ]
            for collection in (version.passages, version.documents)
        }

    def count(self, collection: str, where: str, consistency: Consistency | None = None) -> int:
        rows = call(
            lambda: self.client.query(
                collection,
                filter=where,
                output_fields=["count(*)"],
                consistency_level=consistency or self.consistency,
            )
        )
        return int(rows[0]["count(*)"])

    def stored_seq(self, version: Version, consistency: Consistency | None = None) -> int:
        """The write counter of ``version``: the highest number its meta's ``seq`` row (a
        build's, a reindex's) and the replicas' rows hold (``numbering``)."""
        return counter_of(self.meta_rows(version, consistency))

    def meta_rows(
        self, version: Version, consistency: Consistency | None = None
    ) -> list[dict[str, Any]]:
        """``version``'s ``seq`` row and the replicas' rows (``key`` and ``value``)."""
        level = consistency or self.consistency
        replicas = f'key like "{ROW_PREFIX}%"'

        def query(collection: str, where: str) -> list[dict[str, Any]]:
            return call(
                partial(
                    self.client.query,
                    collection,
                    filter=where,
                    output_fields=["key", "value"],
                    consistency_level=level,
                )
            )

        if version.meta == version.store_meta:
            return query(version.meta, f'key == "seq" or {replicas}')
        return query(version.meta, 'key == "seq"') + query(version.store_meta, replicas)

    def replica_rows(
        self, version: Version, consistency: Consistency | None = None
    ) -> list[ReplicaRow]:
        return replica_rows(self.meta_rows(version, consistency))

    def wait_gone(self, removed: Mapping[str, list[int]]) -> None:
        """Return once reads at the store's consistency level no longer see ``removed``."""
        deadline = time.monotonic() + GONE_TIMEOUT
        for collection, pks in removed.items():
            for start in range(0, len(pks), DELETE_BATCH):
                condition = f"pk in [{', '.join(map(str, pks[start : start + DELETE_BATCH]))}]"
                while next(iter(self.query_all(collection, condition, [], limit=1)), None):
                    if time.monotonic() > deadline:
                        logger.warning("Milvus still shows deleted rows after %.0f s", GONE_TIMEOUT)
                        return
                    time.sleep(0.02)
