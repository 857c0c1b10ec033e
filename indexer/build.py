"""Building a store from documents, for any kind of store, and the build policy: when a store
that is there may be replaced.

One path serves every kind (``build_index``): chunk and embed the corpus, then let the kind
write it (``StoreKind.create``). Rebuilding from files is always an explicit act: a store that
holds the live corpus (a local index that has taken writes through the API, a shared Milvus
store) is only replaced with ``force``, and one a running service holds never is.
``build_if_stale`` is what ``make run`` does: build what is missing or stale, serve what holds
writes as it is.
"""

from __future__ import annotations

import hashlib
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from indexer.build_progress import BuildMeter
from indexer.chunking import ChunkingParams
from indexer.embedding import DEFAULT_BATCH_SIZE, Embedder
from indexer.embedding_cache import EmbeddingCache, build_fingerprint
from indexer.engines.base import Engine
from indexer.engines.local import LocalEngine
from indexer.ingest import Preparer
from indexer.keyword import KeywordParams
from indexer.loading import Corpus, document_checksum
from indexer.manifest import CorpusInfo, Counts, Manifest, ModelInfo, StoreInfo
from indexer.passage_vectors import EmbedStats, ResumeError, embed_passages
from indexer.stores import Store, store_kind
from indexer.stores.base import (
    StoreExistsError,
    StoreLockedError,
    StoreMissingError,
    StoreOpenError,
    StoreUnavailableError,
)
from indexer.types import Document

# Documents read from a store at a time when copying it.
_COPY_PAGE = 1000


class BuildError(Exception):
    """The index could not be built; the message says why."""


class BuildConflictError(BuildError):
    """A store is there that may not be replaced (it holds writes, or another process is
    building it)."""


@dataclass(frozen=True, slots=True)
class BuildParams:
    """Everything that shapes an index besides the corpus and the model."""

    chunking: ChunkingParams = field(default_factory=ChunkingParams)
    keyword: KeywordParams = field(default_factory=KeywordParams)
    title_prefix: bool = True
    """Embed and keyword-index each passage with its document title first, so a passage
    that never names its subject still carries it."""
    index_factory: str = "Flat"
    """The vector index, in the store kind's terms: for FAISS a factory string (exact "Flat"
    suits up to a few hundred thousand passages; "HNSW32" or "IVF<n>,Flat" trade a little
    recall for speed beyond), for Milvus an index type such as "HNSW"."""
    search_params: str = ""
    """Parameters for that index, e.g. "efSearch=128" or "nprobe=32" (FAISS: applied whenever
    it is opened, and before vectors are added, so "efConstruction=200" deepens an HNSW build;
    Milvus: "M=16,efConstruction=200,ef=128")."""

    store: str = "faiss"
    """The store kind (``indexer.stores.registry``)."""

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
    embedding: EmbedStats | None = None

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
    location: Any,
    embedder: Embedder,
    params: BuildParams,
    *,
    source_label: str,
    progress: bool = False,
    batch_size: int = DEFAULT_BATCH_SIZE,
    force: bool = False,
    engine: Engine | None = None,
    cache: EmbeddingCache | None = None,
    resume: bool = False,
    meter: BuildMeter | None = None,
) -> BuildReport:
    """Chunk, embed and index ``corpus`` into a new store of kind ``params.store`` at
    ``location`` (a directory, a Milvus target), replacing what is there only as the kind's
    ``check_replaceable`` allows (``force``: a store that holds writes; they are lost).

    ``engine`` embeds (default: ``embedder`` in this process; ``embedder`` still chunks);
    ``cache`` keeps every vector as it is made, so a build killed midway and run again with
    ``resume`` embeds only what it had not (``indexer.passage_vectors``)."""
    if not corpus.documents:
        raise BuildError(f"no documents to index in {source_label}")
    kind = store_kind(params.store)
    started = time.perf_counter()
    try:  # before the slow part, so a mistyped setting or an untouchable store fails at once
        kind.check_index(params.index_factory, params.search_params, embedder.dimension)
        kind.check_replaceable(location, force=force)
    except StoreExistsError as error:
        raise BuildConflictError(str(error)) from None
    except (ValueError, StoreLockedError, StoreOpenError, StoreUnavailableError) as error:
        raise BuildError(str(error)) from None
    manifest = new_manifest(embedder.model_name, embedder.dimension, params, source_label)
    target = kind.describe(location)
    meter = meter or BuildMeter("auto" if progress else "off")
    engine = engine or LocalEngine(embedder, batch_size=batch_size)
    preparer = Preparer(embedder, params.chunking, params.title_prefix)
    chunked = engine.chunk(preparer, corpus.documents, meter)
    # What --resume must find again (hashing every document): only a cache keeps builds' records.
    fingerprint = (
        ""
        if cache is None
        else build_fingerprint(
            source=source_label,
            corpus=corpus_digest(corpus),
            model=cache.model,
            params=repr(params),
        )
    )
    try:
        vectors, stats = embed_passages(
            chunked.texts,
            embedder.dimension,
            engine,
            cache,
            target=target,
            fingerprint=fingerprint,
            resume=resume,
            meter=meter,
        )
    except ResumeError as error:
        raise BuildError(str(error)) from None
    prepared = chunked.with_vectors(vectors)
    meter.event("writing", where=target, passages=len(chunked.texts))
    try:
        if resume and kind.discard_unfinished(location):
            meter.event("discarded", where=target)
        built = kind.create(location, manifest, prepared, force=force, started=started)
    except ValueError as error:  # the index cannot take these vectors (too few to train)
        raise BuildError(f"{error} (index {params.index_factory!r})") from None
    except StoreExistsError as error:
        raise BuildConflictError(str(error)) from None
    except (StoreLockedError, StoreOpenError, StoreUnavailableError) as error:
        raise BuildError(str(error)) from None
    if cache is not None:
        cache.finish_build(target)
    return BuildReport(manifest=built, seconds=built.build_seconds, embedding=stats)


def corpus_digest(corpus: Corpus) -> str:
    """One checksum of every document's: what a resumed build must find again."""
    digest = hashlib.sha256()
    for document in sorted(corpus.documents, key=lambda d: d.doc_id):
        digest.update(f"{document.doc_id}\0{document_checksum(document)}\0".encode())
    return digest.hexdigest()


def stale_reason(
    manifest: Manifest, corpus: Corpus, model_name: str, params: BuildParams
) -> str | None:
    """Why a store built as ``manifest`` says does not match this corpus and these settings,
    or None."""
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


def stale_at(location: Any, corpus: Corpus, model_name: str, params: BuildParams) -> str | None:
    """Why the store of kind ``params.store`` at ``location`` does not match this corpus and
    these settings (missing or unreadable included), or None."""
    try:
        manifest = store_kind(params.store).read_manifest(location)
    except (StoreMissingError, StoreOpenError) as error:
        return str(error)
    return stale_reason(manifest, corpus, model_name, params)


def build_if_stale(
    corpus: Corpus,
    location: Any,
    embedder: Callable[[], Embedder],
    params: BuildParams,
    *,
    model_name: str,
    source_label: str,
    rebuild_command: str,
    announce: Callable[[str], None],
    progress: bool = False,
    batch_size: int = DEFAULT_BATCH_SIZE,
    force: bool = False,
    engine: Callable[[Embedder], Engine] | None = None,
    cache: EmbeddingCache | None = None,
    meter: BuildMeter | None = None,
) -> BuildReport | None:
    """Build the store at ``location`` unless it must be served as it is (it holds writes, or
    replicas share it: ``StoreKind.kept``; ``force`` overrides that) or is up to date; None
    then, after saying so. ``embedder`` (and ``engine``, given the embedder) is only called
    for a build; ``rebuild_command`` is what to run to rebuild anyway (without its
    ``--force``)."""
    kind = store_kind(params.store)
    where = kind.describe(location)
    for attempt in (1, 2):
        try:
            kept = None if force else kind.kept(location)
        except (StoreExistsError, StoreUnavailableError) as error:
            raise BuildError(str(error)) from None
        if kept is not None:
            announce(
                f"{where} {kept.reason}; serving it as it is (to rebuild it from "
                f"{source_label}, losing {kept.lost}: {rebuild_command} --force)"
            )
            return None
        reason = stale_at(location, corpus, model_name, params)
        if reason is None:
            count = len(corpus.documents)
            announce(f"{where} is up to date ({count} document{'s' if count != 1 else ''})")
            return None
        announce(f"rebuilding {where}: {reason}")
        model = embedder()
        try:
            return build_index(
                corpus,
                location,
                model,
                params,
                source_label=source_label,
                progress=progress,
                batch_size=batch_size,
                force=force,
                engine=engine(model) if engine is not None else None,
                cache=cache,
                meter=meter,
            )
        except BuildConflictError:
            # Another process started building it, or wrote to it, meanwhile: look again
            # (``kept`` waits for that build), once.
            if attempt == 2:
                raise
    raise AssertionError("unreachable")


def live_corpus(store: Store) -> tuple[Corpus, str]:
    """Every live document of ``store`` as of its last write (written through the API
    included), to build another store from; and a label saying which."""
    reader = store.reader()
    documents: list[Document] = []
    while page := reader.documents(len(documents), _COPY_PAGE):
        documents.extend(stored.document for stored in page)
    return Corpus(documents), f"{store.location} at write {reader.seq}"
