"""What the running service holds: the open store and, once the model is loaded, the searcher
and the writer. Reindexing it is ``reindexing.Reindexer``'s."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence

from app.keys import KeyFileError, KeyRing
from app.reindexing import Reindexer
from app.settings import Settings
from indexer.backends import Backend, backend_problem, load_embedder, onnx_variant
from indexer.embedding import Embedder
from indexer.filters import Filter, both
from indexer.ingest import Preparer
from indexer.manifest import Manifest
from indexer.query_encoding import BatchingEmbedder, CachingEmbedder, WriteEncoder
from indexer.search import Searcher
from indexer.stores import Store, open_store
from indexer.stores.base import (
    StaleWriteError,
    StoreLockedError,
    StoreMissingError,
    StoreOpenError,
    StoreUnavailableError,
)
from indexer.tracing import span
from indexer.types import Document, StoredDocument

logger = logging.getLogger("app")

EmbedderFactory = Callable[[str], Embedder]
_WARMUP_QUERY = "warm up"
# How long a write with refresh=wait_for waits before giving up (it should take about one
# refresh interval).
WAIT_FOR_TIMEOUT = 30.0


WRITES_DISABLED = (
    "start the service with SEARCH_API_KEY set, or a write key in SEARCH_API_KEYS_FILE, "
    "to enable them"
)
WRITE_OUTCOMES = ("created", "replaced", "deleted", "not_found", "failed")


class StartupError(RuntimeError):
    """The service cannot start; the message is one sentence saying what to do."""


class WriteTimeoutError(RuntimeError):
    """A write is durable but did not become searchable in time."""


class SearchService:
    """Opens the store at startup (fast, fails loudly), then loads the model (slow)."""

    def __init__(self, settings: Settings, embedder_factory: EmbedderFactory | None = None) -> None:
        self.settings = settings
        self._embedder_factory = embedder_factory
        self.store: Store | None = None
        self.searcher: Searcher | None = None
        self.preparer: Preparer | None = None
        self.load_error: str | None = None
        self.model: Embedder | None = None
        """The model the searcher's query encoder runs."""
        self.batcher: BatchingEmbedder | None = None
        self.backend: Backend = settings.backend
        self.reindexer = Reindexer(self)
        # The settings' keys at once; the keys file's at preflight, where a bad one is a
        # StartupError.
        self.keys = KeyRing(settings.api_key, settings.read_api_key)
        self._retired: list[BatchingEmbedder] = []  # replaced by a reindex; closed at exit
        # Documents are embedded one request at a time: a second concurrent write would only
        # take the cores from searches (and from the first write) for no gain.
        self._embedding = threading.Lock()
        self._counts_lock = threading.Lock()
        self._write_counts = dict.fromkeys(WRITE_OUTCOMES, 0)

    def write_counts(self) -> dict[str, int]:
        """Documents written or deleted since start, by outcome (for /metrics)."""
        with self._counts_lock:
            return dict(self._write_counts)

    def _count(self, outcome: str, documents: int = 1) -> None:
        with self._counts_lock:
            self._write_counts[outcome] += documents

    @property
    def ready(self) -> bool:
        return self.searcher is not None

    @property
    def loads_configured_model(self) -> bool:
        """The model comes from the settings (not a test's stand-in, which makes any model)."""
        return self._embedder_factory is None

    @property
    def store_model(self) -> str:
        return self.store.manifest.model.name if self.store is not None else self.settings.model

    # -- start-up ---------------------------------------------------------------------------

    def preflight(self) -> Manifest:
        """Check the manifest, the backend and whether the store can be served here: cheap,
        so a bad setup is reported before anything loads."""
        settings = self.settings
        try:
            self.keys = KeyRing(settings.api_key, settings.read_api_key, settings.api_keys_file)
        except KeyFileError as error:
            raise StartupError(f"Cannot use SEARCH_API_KEYS_FILE: {error}") from error
        kind, location = settings.store_kind, settings.store_location
        try:
            manifest = kind.read_manifest(location)
        except (StoreMissingError, StoreOpenError) as error:
            raise self._startup_error(str(error)) from error
        except StoreUnavailableError as error:
            raise StartupError(f"Cannot serve {settings.index_location}: {error}") from error
        if manifest.model.name != settings.model:
            raise self._startup_error(
                f"it was built with model {manifest.model.name!r}, "
                f"but SEARCH_MODEL is {settings.model!r}"
            )
        if self.loads_configured_model:
            problem = backend_problem(settings.backend, settings.model, settings.onnx_dir)
            if problem is not None:
                instead = (
                    " (or set SEARCH_BACKEND=onnx)" if not onnx_variant(settings.backend) else ""
                )
                raise StartupError(
                    f"Cannot run the model with SEARCH_BACKEND={settings.backend}: "
                    f"{problem}{instead}"
                )
        try:
            kind.check_servable(location)
        except StoreLockedError as error:
            raise StartupError(f"Cannot serve {settings.index_location}: {error}") from error
        return manifest

    def open_index(self) -> Store:
        self.preflight()
        settings = self.settings
        try:
            self.store = open_store(settings, refresh_interval=settings.refresh_interval)
        except (StoreMissingError, StoreOpenError) as error:
            raise self._startup_error(str(error)) from error
        except (StoreLockedError, StoreUnavailableError) as error:
            raise StartupError(f"Cannot serve {settings.index_location}: {error}") from error
        if self.store.read_only:
            logger.warning("serving without writes: %s", self.store.read_only)
        if self.store.keyword_problem:
            logger.warning("semantic search only: %s", self.store.keyword_problem)
        return self.store

    def _startup_error(self, problem: str) -> StartupError:
        settings = self.settings
        options = settings.store_kind.build_options(settings)
        rebuild = f"python -m indexer build --source seeds {options} --model {settings.model}"
        return StartupError(
            f"Cannot serve {settings.index_location}: {problem}. Build it with: {rebuild}"
        )

    # -- the model ----------------------------------------------------------------------------

    def load_embedder(self, model_name: str, backend: Backend | None = None) -> Embedder:
        """``model_name`` run by ``backend`` (default: the configured one), or by the test's
        stand-in."""
        if self._embedder_factory is not None:
            return self._embedder_factory(model_name)
        return load_embedder(model_name, backend or self.settings.backend, self.settings.onnx_dir)

    def query_embedder(self, model: Embedder) -> tuple[Embedder, Embedder, BatchingEmbedder | None]:
        """The query encoder for ``model``, the encoder documents are written with (between
        its query batches), and the batcher behind both, if any."""
        if not self.settings.query_batching:
            return CachingEmbedder(model, self.settings.query_cache_size), model, None
        batcher = BatchingEmbedder(model)
        return (
            CachingEmbedder(batcher, self.settings.query_cache_size),
            WriteEncoder(batcher),
            batcher,
        )

    @staticmethod
    def warm_up(queries: Embedder) -> None:
        queries.encode([_WARMUP_QUERY])  # the first encode pays one-off setup costs

    def load_model(self) -> None:
        """Load the embedding model and warm it up; runs in a worker thread.

        A failure is kept in ``load_error`` (shown by /ready and /search) rather than raised:
        the process stays up so that its probes can say what went wrong.
        """
        if self.store is None:
            raise RuntimeError("open_index() must run first")
        manifest = self.store.manifest
        try:
            model = self.load_embedder(self.settings.model)
            queries, writer, self.batcher = self.query_embedder(model)
            searcher = Searcher(self.store, queries, self.settings.fusion_params)
            self.warm_up(searcher.embedder)
            # Documents are prepared with the settings the index was built with, not today's,
            # and embedded by the query encoder's thread, shared fairly with queries.
            preparer = Preparer(writer, manifest.chunking, manifest.title_prefix)
            self.model = model
        except Exception as error:  # ModelMismatchError included: the same problem for a user
            self.load_error = f"loading model {self.settings.model!r} failed: {error}"
            logger.error("the service will not become ready: %s", self.load_error)
            return
        self.preparer = preparer
        self.searcher = searcher
        self.store.follow(self.reindexer.follow)  # replicas sharing it: follow their reindexes
        reader = self.store.reader()
        logger.info(
            "ready: %d documents, %d passages, model %s; writes %s",
            reader.document_count,
            reader.passage_count,
            self.settings.model,
            "enabled" if self.writes_problem is None else f"disabled ({self.writes_problem})",
        )

    def use_model(
        self,
        model: Embedder,
        queries: Embedder,
        batcher: BatchingEmbedder | None,
        backend: Backend,
        manifest: Manifest,
    ) -> None:
        """Encode queries with ``model`` from now on (a reindex's switch, writes held)."""
        assert self.searcher is not None
        self.searcher.use_embedder(queries, manifest.keyword.stemmer)
        if self.batcher is not None:
            self._retired.append(self.batcher)
        self.batcher, self.model, self.backend = batcher, model, backend

    def close(self) -> None:
        if self.store is not None:
            self.store.close()  # a running reindex gives up (the old version serves on)
        self.reindexer.join(timeout=30)
        for batcher in (self.batcher, *self._retired):
            if batcher is not None:
                batcher.close()

    # -- writes -------------------------------------------------------------------------------

    @property
    def writes_problem(self) -> str | None:
        """Why writes are refused, or None."""
        if not self.keys.writes_enabled:
            return "no key may write (SEARCH_API_KEY, SEARCH_API_KEYS_FILE)"
        return None if self.store is None else self.store.read_only

    def write(
        self, documents: Sequence[Document], *, wait: bool, guard: Filter | None = None
    ) -> tuple[int, list[bool], list[int]]:
        """Prepare and store documents: the new sequence number, whether each replaced one,
        and each one's passage count. With ``wait``, return once searches see them. With
        ``guard`` (a key's scope), replacing a document outside it is refused."""
        assert self.store is not None
        assert self.preparer is not None
        try:
            while True:
                # The epoch first: if a reindex switches after it is read, the put is refused
                # and the documents are prepared again by the new preparer.
                epoch = self.store.epoch
                preparer = self.preparer
                with span("write.prepare") as current:
                    current.set_attribute("write.documents", len(documents))
                    with self._embedding:
                        prepared = preparer.prepare(documents)
                try:
                    with span("store.put"):
                        written = self.store.put(prepared, epoch=epoch, guard=guard)
                    break
                except StaleWriteError:
                    continue
        except Exception:
            self._count("failed", len(documents))
            raise
        replaced = sum(written.existed)
        self._count("replaced", replaced)
        self._count("created", len(documents) - replaced)
        if wait:
            with span("store.wait_for"):
                visible = self.store.wait_for(written.seq, WAIT_FOR_TIMEOUT)
            if not visible:
                raise WriteTimeoutError(
                    f"the write is durable (seq {written.seq}) but was not searchable within "
                    f"{WAIT_FOR_TIMEOUT:.0f} s"
                )
        return written.seq, list(written.existed), [len(p.passages) for p in prepared]

    def delete(self, doc_id: str, guard: Filter | None = None) -> bool:
        """Whether the document existed (within ``guard``, a key's scope) and is gone."""
        assert self.store is not None
        try:
            with span("store.delete"):
                existed = self.store.delete([doc_id], guard=guard).existed[0]
        except Exception:
            self._count("failed")
            raise
        self._count("deleted" if existed else "not_found")
        return existed

    def delete_matching(self, filter: Filter, guard: Filter | None = None) -> tuple[int, int]:
        """Delete every document passing ``filter`` (and ``guard``, a key's scope), the writes
        acknowledged before this call included: how many, and the sequence number after."""
        filter = both(filter, guard) or filter
        assert self.store is not None
        try:
            with span("store.delete_matching"):
                self.store.refresh()
                ids = self.store.reader().document_ids(filter)
                written = self.store.delete(ids, guard=guard) if ids else None
        except Exception:
            self._count("failed")
            raise
        if written is None:
            return 0, self.store.reader().seq
        deleted = sum(written.existed)  # a concurrent delete may have taken some first
        self._count("deleted", deleted)
        return deleted, written.seq

    def get(self, doc_id: str) -> StoredDocument | None:
        assert self.store is not None
        return self.store.get(doc_id)
