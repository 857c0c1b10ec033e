"""Reindexing a live index: every document prepared again with new settings or a new model,
into a new version that replaces the old one atomically (``Store.reindex``: FAISS and Milvus).

Shared by ``python -m indexer reindex`` (an index no service holds) and ``POST /admin/reindex``
(the index the service holds, which keeps serving and taking writes meanwhile).
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime
from typing import Literal, TypeVar

from indexer.chunking import ChunkingParams
from indexer.embedding import Embedder
from indexer.embedding_cache import EmbeddingCache
from indexer.ingest import Preparer
from indexer.keyword import KeywordParams
from indexer.manifest import CorpusInfo, Counts, Manifest, ModelInfo
from indexer.passage_vectors import prepare_cached
from indexer.stores.base import Progress, Rebuild, Store

_T = TypeVar("_T")
State = Literal["idle", "running", "done", "failed"]


@dataclass(frozen=True, slots=True)
class ReindexChanges:
    """What a reindex changes; None keeps the index's current setting."""

    chunk_max_tokens: int | None = None
    chunk_overlap: float | None = None
    title_prefix: bool | None = None
    bm25_k1: float | None = None
    bm25_b: float | None = None

    def apply(self, manifest: Manifest, embedder: Embedder) -> Manifest:
        """The manifest of the version to build: ``manifest``'s settings with these changes,
        the model ``embedder`` runs, a new build id; counts and checksums come at save."""
        chunking = manifest.chunking
        chunking = ChunkingParams(
            max_tokens=_given(self.chunk_max_tokens, chunking.max_tokens),
            overlap=_given(self.chunk_overlap, chunking.overlap),
            segmenter=chunking.segmenter,
        )  # validates
        keyword = replace(
            manifest.keyword,
            k1=_given(self.bm25_k1, manifest.keyword.k1),
            b=_given(self.bm25_b, manifest.keyword.b),
        )
        return manifest.model_copy(
            update={
                "model": ModelInfo(name=embedder.model_name, dimension=embedder.dimension),
                "chunking": chunking,
                "keyword": KeywordParams(**asdict(keyword)),
                "title_prefix": _given(self.title_prefix, manifest.title_prefix),
                "corpus": CorpusInfo(source=manifest.corpus.source, checksums={}),
                "counts": Counts(documents=0, passages=0),
                "seq": 0,
                "files": {},
                "build_id": uuid.uuid4().hex,
                "built_at": datetime.now(UTC),
            }
        )


def _given(value: _T | None, default: _T) -> _T:
    return default if value is None else value


@dataclass(frozen=True, slots=True)
class ReindexStatus:
    state: State = "idle"
    phase: str | None = None
    done: int = 0
    total: int = 0
    started_at: datetime | None = None
    finished_at: datetime | None = None
    error: str | None = None
    from_build: str | None = None
    to_build: str | None = None
    seq: int | None = None
    """The write the new version covers, once switched."""


class ReindexTracker:
    """The state of the one reindex a process runs at a time, read from other threads."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._status = ReindexStatus()

    @property
    def status(self) -> ReindexStatus:
        return self._status

    def start(self, from_build: str) -> bool:
        """Mark a reindex as running; False if one already is."""
        with self._lock:
            if self._status.state == "running":
                return False
            self._status = ReindexStatus(
                state="running",
                phase="starting",
                started_at=datetime.now(UTC),
                from_build=from_build,
            )
            return True

    def progress(self, phase: str, done: int, total: int) -> None:
        with self._lock:
            self._status = replace(self._status, phase=phase, done=done, total=total)

    def finish(self, manifest: Manifest) -> None:
        with self._lock:
            self._status = replace(
                self._status,
                state="done",
                phase=None,
                # Every document of the new version, not the last phase's count (the catch-up
                # under the lock is often empty).
                done=manifest.counts.documents,
                total=manifest.counts.documents,
                finished_at=datetime.now(UTC),
                to_build=manifest.build_id,
                seq=manifest.seq,
            )

    def fail(self, error: str) -> None:
        with self._lock:
            self._status = replace(
                self._status, state="failed", finished_at=datetime.now(UTC), error=error
            )


def reindex(
    store: Store,
    embedder: Embedder,
    changes: ReindexChanges,
    *,
    progress: Progress | None = None,
    writer: Embedder | None = None,
    on_switch: Callable[[], None] | None = None,
    cache: EmbeddingCache | None = None,
) -> Manifest:
    """Rebuild ``store`` with ``changes`` and the model ``embedder`` runs (``writer``: the
    same model, as documents are embedded, e.g. between a service's queries). With
    ``cache``, only passages whose text it has no vector for are embedded: a reindex that
    changes BM25's parameters embeds nothing."""
    target = changes.apply(store.manifest, embedder)
    preparer = Preparer(writer or embedder, target.chunking, target.title_prefix)
    return store.reindex(
        Rebuild(
            target,
            lambda documents: prepare_cached(preparer, documents, cache),
            progress,
            on_switch,
        )
    )
