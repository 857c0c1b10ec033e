"""Building an index from files, and deciding whether an existing one may be rebuilt.

An index built here is a local (FAISS) store at version 1 with an empty translog; the
service then changes it live. Rebuilding from files is always an explicit act: an index that
has taken writes through the API is never replaced unless asked to (``force``), and one that
a running service holds is never replaced at all.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from indexer.chunking import ChunkingParams
from indexer.embedding import DEFAULT_BATCH_SIZE, Embedder
from indexer.ingest import Preparer
from indexer.keyword import KeywordParams
from indexer.loading import Corpus, document_checksum
from indexer.manifest import (
    CorpusInfo,
    Counts,
    Manifest,
    ManifestError,
    ModelInfo,
    StoreInfo,
)
from indexer.stores.base import StoreUnavailableError
from indexer.stores.faiss.layout import TRANSLOG_DIR, IndexLock, is_index
from indexer.stores.faiss.operations import seq_of
from indexer.stores.faiss.state import LocalIndex
from indexer.stores.faiss.store import read_current_manifest, write_index
from indexer.stores.faiss.translog import replay
from indexer.stores.faiss.vectors import make_index
from indexer.stores.milvus.client import MilvusTarget, parse_index_params
from indexer.stores.milvus.store import MilvusStore
from indexer.types import IndexedDocument


class BuildError(Exception):
    """The index could not be built; the message says why."""


@dataclass(frozen=True, slots=True)
class BuildParams:
    """Everything that shapes an index besides the corpus and the model."""

    chunking: ChunkingParams = field(default_factory=ChunkingParams)
    keyword: KeywordParams = field(default_factory=KeywordParams)
    title_prefix: bool = True
    """Embed and keyword-index each passage with its document title first, so a passage
    that never names its subject still carries it."""
    index_factory: str = "Flat"
    """The vector index (FAISS factory string): exact "Flat" suits up to a few hundred
    thousand passages; "HNSW32" or "IVF<n>,Flat" trade a little recall for speed beyond."""
    search_params: str = ""
    """Parameters for that index, e.g. "efSearch=128" or "nprobe=32", applied whenever it is
    opened; also before vectors are added, so "efConstruction=200" deepens an HNSW build."""

    store: str = "faiss"
    """The store kind: ``index_factory`` and ``search_params`` are in its terms (for Milvus,
    an index type such as "HNSW" and "M=16,efConstruction=200,ef=128")."""

    @classmethod
    def of(cls, manifest: Manifest) -> BuildParams:
        return cls(
            manifest.chunking,
            manifest.keyword,
            manifest.title_prefix,
            manifest.store.spec or "Flat",
            manifest.store.search_params,
            manifest.store.kind,
        )


@dataclass(frozen=True, slots=True)
class BuildReport:
    manifest: Manifest
    seconds: float

    @property
    def passages_per_second(self) -> float:
        return self.manifest.counts.passages / self.seconds if self.seconds > 0 else 0.0


def new_manifest(
    model_name: str, dimension: int, params: BuildParams, source_label: str
) -> Manifest:
    """The manifest of an index about to be built (counts and checksums come at save)."""
    return Manifest(
        model=ModelInfo(name=model_name, dimension=dimension),
        chunking=params.chunking,
        keyword=params.keyword,
        title_prefix=params.title_prefix,
        store=StoreInfo(
            kind=params.store, spec=params.index_factory, search_params=params.search_params
        ),
        corpus=CorpusInfo(source=source_label, checksums={}),
        counts=Counts(documents=0, passages=0),
        built_at=datetime.now(UTC),
        build_seconds=0.0,
        build_id=uuid.uuid4().hex,
    )


def build_index(
    corpus: Corpus,
    out: Path,
    embedder: Embedder,
    params: BuildParams,
    *,
    source_label: str,
    progress: bool = False,
    batch_size: int = DEFAULT_BATCH_SIZE,
    force: bool = False,
) -> BuildReport:
    """Chunk, embed and index ``corpus``, then swap the result into ``out`` in one rename.

    ``force``: replace an index that has taken writes through the API (they are lost).
    """
    if not corpus.documents:
        raise BuildError(f"no documents to index in {source_label}")
    check_replaceable(out, force=force)
    started = time.perf_counter()
    try:  # before the slow part, so a mistyped index setting fails at once
        make_index(embedder.dimension, params.index_factory, params.search_params)
    except ValueError as error:
        raise BuildError(str(error)) from None
    manifest, prepared = _prepare(corpus, embedder, params, source_label, progress, batch_size)
    try:
        index = LocalIndex.build(manifest, prepared)
    except ValueError as error:
        raise BuildError(f"{error} (index {params.index_factory!r})") from None
    check_replaceable(out, force=force)  # again: a service may have started meanwhile
    manifest = write_index(out, index, started=started)
    return BuildReport(manifest=manifest, seconds=manifest.build_seconds)


def build_milvus(
    corpus: Corpus,
    target: MilvusTarget,
    embedder: Embedder,
    params: BuildParams,
    *,
    source_label: str,
    progress: bool = False,
    batch_size: int = DEFAULT_BATCH_SIZE,
    force: bool = False,
) -> BuildReport:
    """Chunk and embed ``corpus`` into a new Milvus store at ``target``.

    An existing store there holds the live corpus (writes through any replica): it is only
    replaced with ``force``, and its documents are then lost.
    """
    if not corpus.documents:
        raise BuildError(f"no documents to index in {source_label}")
    try:  # before the slow part, so a mistyped index setting fails at once
        parse_index_params(params.index_factory, params.search_params)
        exists = MilvusStore.exists(target)
    except (ValueError, StoreUnavailableError) as error:
        raise BuildError(str(error)) from None
    if exists and not force:
        raise BuildError(
            f"{target} already holds an index; refusing to replace it (pass --force to rebuild "
            "it from files, losing every document written to it)"
        )
    manifest, prepared = _prepare(corpus, embedder, params, source_label, progress, batch_size)
    try:
        if force:
            MilvusStore.drop(target)
        store = MilvusStore.create(target, manifest, prepared)
    except (FileExistsError, StoreUnavailableError) as error:
        raise BuildError(str(error)) from None
    store.close()
    return BuildReport(manifest=store.manifest, seconds=store.manifest.build_seconds)


def _prepare(
    corpus: Corpus,
    embedder: Embedder,
    params: BuildParams,
    source_label: str,
    progress: bool,
    batch_size: int,
) -> tuple[Manifest, list[IndexedDocument]]:
    """The new index's manifest and every document chunked and embedded (the slow part of a
    build, whichever store it goes into)."""
    manifest = new_manifest(embedder.model_name, embedder.dimension, params, source_label)
    preparer = Preparer(embedder, params.chunking, params.title_prefix)
    return manifest, preparer.prepare(corpus.documents, batch_size=batch_size, progress=progress)


def check_replaceable(out: Path, *, force: bool) -> None:
    """Refuse to replace a file, a directory that is not an index, an index a running service
    holds, or (unless ``force``) one that has taken writes through the API."""
    if out.exists() and not out.is_dir():
        raise BuildError(f"{out} exists and is not a directory; refusing to replace it")
    if not out.exists() or not any(out.iterdir()):
        return
    if not is_index(out):
        raise BuildError(f"{out} exists and is not an index directory; refusing to replace it")
    holder = IndexLock(out).held_elsewhere()
    if holder is not None:
        raise BuildError(f"{holder}: stop the service before rebuilding its index")
    writes = api_writes(out)
    if writes and not force:
        raise BuildError(
            f"{out} holds {writes} write{'s' if writes != 1 else ''} made through the API "
            "since it was built; refusing to replace it (pass --force to rebuild it from "
            "files, losing them)"
        )


def api_writes(out: Path) -> int:
    """How many writes the index at ``out`` has taken since it was built from files: its
    last sequence number, in its version or its translog (0 for no index)."""
    try:
        last = read_current_manifest(out).seq
    except ManifestError:
        return 0
    for payload in replay(out / TRANSLOG_DIR):
        last = max(last, seq_of(payload))
    return last


def stale_reason(out: Path, corpus: Corpus, model_name: str, params: BuildParams) -> str | None:
    """Why the index at ``out`` does not match this corpus and these settings, or None."""
    try:
        manifest = read_current_manifest(out)
    except ManifestError as error:
        return str(error)
    if manifest.model.name != model_name:
        return f"it was built with model {manifest.model.name!r}, not {model_name!r}"
    built_params = BuildParams.of(manifest)
    if built_params != params:
        return f"it was built with {built_params}, not {params}"
    current = {d.doc_id: document_checksum(d) for d in corpus.documents}
    if current != manifest.corpus.checksums:
        added = current.keys() - manifest.corpus.checksums.keys()
        removed = manifest.corpus.checksums.keys() - current.keys()
        changed = {
            i
            for i in current.keys() & manifest.corpus.checksums.keys()
            if current[i] != manifest.corpus.checksums[i]
        }
        counts = f"{len(added)} added, {len(changed)} changed, {len(removed)} removed"
        return f"the corpus changed ({counts})"
    return None
