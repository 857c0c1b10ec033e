"""What the running service holds: the open store and, once the model is loaded, the searcher
and the writer."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence

from app.settings import Settings
from indexer.backends import BACKENDS, Backend, load_embedder, onnx_variant, torch_backend_installed
from indexer.embedding import TORCH_EXTRA_INSTALL, Embedder
from indexer.filters import Filter
from indexer.ingest import Preparer
from indexer.manifest import Manifest, ManifestError
from indexer.query_encoding import BatchingEmbedder, CachingEmbedder, WriteEncoder
from indexer.reindex import ReindexChanges, ReindexStatus, ReindexTracker
from indexer.search import Searcher
from indexer.stores import Store
from indexer.stores.base import ReindexError, StaleWriteError, StoreUnavailableError
from indexer.stores.configured import configured_manifest, open_configured
from indexer.stores.faiss.layout import IndexLock, IndexLockedError
from indexer.stores.faiss.store import StoreOpenError
from indexer.stores.milvus.client import MilvusStoreMissingError
from indexer.stores.milvus.store import MilvusStore
from indexer.tracing import span
from indexer.types import Document, StoredDocument

logger = logging.getLogger("app")

EmbedderFactory = Callable[[str], Embedder]
_WARMUP_QUERY = "warm up"
# How long a write with refresh=wait_for waits before giving up (it should take about one
# refresh interval).
WAIT_FOR_TIMEOUT = 30.0


WRITE_OUTCOMES = ("created", "replaced", "deleted", "not_found", "failed")


class StartupError(RuntimeError):
    """The service cannot start; the message is one sentence saying what to do."""


class WriteTimeoutError(RuntimeError):
    """A write is durable but did not become searchable in time."""


class ReindexRefusedError(RuntimeError):
    """A reindex cannot start now (one is running, the model is not loaded); the message
    says why."""


class SearchService:
    """Opens the store at startup (fast, fails loudly), then loads the model (slow)."""

    def __init__(self, settings: Settings, embedder_factory: EmbedderFactory | None = None) -> None:
        self.settings = settings
        self._embedder_factory = embedder_factory or self._load_configured_model
        self._loads_configured_model = embedder_factory is None  # not a test's stand-in
        self.store: Store | None = None
        self.searcher: Searcher | None = None
        self.preparer: Preparer | None = None
        self.load_error: str | None = None
        self._batcher: BatchingEmbedder | None = None
        self._model: Embedder | None = None
        self.backend: Backend = settings.backend
        self.reindexing = ReindexTracker()
        self._reindex_thread: threading.Thread | None = None
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

    def preflight(self) -> Manifest:
        """Check the manifest and the backend only: cheap, so a bad setup is reported before
        anything loads."""
        try:
            manifest = configured_manifest(self.settings)
        except (ManifestError, MilvusStoreMissingError) as error:
            raise self._startup_error(str(error)) from error
        except StoreUnavailableError as error:
            raise StartupError(f"Cannot serve {self.settings.index_location}: {error}") from error
        if manifest.model.name != self.settings.model:
            raise self._startup_error(
                f"it was built with model {manifest.model.name!r}, "
                f"but SEARCH_MODEL is {self.settings.model!r}"
            )
        if self._loads_configured_model:
            self._check_backend()
        if self.settings.store == "faiss":
            holder = IndexLock(self.settings.index_dir).held_elsewhere()
            if holder is not None:
                raise self._in_use(holder)
        return manifest

    def _in_use(self, holder: object) -> StartupError:
        return StartupError(
            f"Cannot serve the index at {self.settings.index_dir}: {holder} (one service "
            "writes to an index; give each its own SEARCH_INDEX_DIR)"
        )

    def _check_backend(self) -> None:
        """Can the configured backend run here? Cheap: nothing is imported or loaded."""
        settings = self.settings
        cannot = f"Cannot run the model with SEARCH_BACKEND={settings.backend}"
        variant = onnx_variant(settings.backend)
        if variant is None:
            if not torch_backend_installed():
                raise StartupError(
                    f"{cannot}: torch and sentence-transformers are not installed here. "
                    f"Install them with: {TORCH_EXTRA_INSTALL} (or set SEARCH_BACKEND=onnx)"
                )
            return
        from indexer.onnx_embedding import export_problem

        problem = export_problem(settings.model, settings.onnx_dir, variant)
        if problem is not None:
            raise StartupError(
                f"{cannot}: {problem}. Make it with: python -m indexer export-onnx "
                f"--out {settings.onnx_dir} --model {settings.model}"
            )

    def open_index(self) -> Store:
        self.preflight()
        try:
            self.store = open_configured(
                self.settings, refresh_interval=self.settings.refresh_interval
            )
        except IndexLockedError as error:
            raise self._in_use(error) from error
        except (StoreOpenError, ManifestError, MilvusStoreMissingError) as error:
            raise self._startup_error(str(error)) from error
        except StoreUnavailableError as error:
            raise StartupError(f"Cannot serve {self.settings.index_location}: {error}") from error
        if self.store.read_only:
            logger.warning("serving without writes: %s", self.store.read_only)
        if isinstance(self.store, MilvusStore) and self.store.keyword_problem:
            logger.warning("semantic search only: %s", self.store.keyword_problem)
        return self.store

    def _startup_error(self, problem: str) -> StartupError:
        settings, model = self.settings, self.settings.model
        if settings.store == "milvus":
            rebuild = f"python -m indexer build --source seeds --store milvus --model {model}"
            where = str(settings.milvus_target)
        else:
            rebuild = (
                f"python -m indexer build --source seeds --out {settings.index_dir} --model {model}"
            )
            where = f"the index at {settings.index_dir}"
        return StartupError(f"Cannot serve {where}: {problem}. Build it with: {rebuild}")

    def _load_configured_model(self, model_name: str) -> Embedder:
        return load_embedder(model_name, self.settings.backend, self.settings.onnx_dir)

    def _query_embedder(
        self, model: Embedder
    ) -> tuple[Embedder, Embedder, BatchingEmbedder | None]:
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

    def close(self) -> None:
        if self.store is not None:
            self.store.close()  # a running reindex gives up (the old version serves on)
        if self._reindex_thread is not None:
            self._reindex_thread.join(timeout=30)
        for batcher in (self._batcher, *self._retired):
            if batcher is not None:
                batcher.close()

    def load_model(self) -> None:
        """Load the embedding model and warm it up; runs in a worker thread.

        A failure is kept in ``load_error`` (shown by /ready and /search) rather than raised:
        the process stays up so that its probes can say what went wrong.
        """
        if self.store is None:
            raise RuntimeError("open_index() must run first")
        manifest = self.store.manifest
        try:
            model = self._embedder_factory(self.settings.model)
            queries, writer, self._batcher = self._query_embedder(model)
            searcher = Searcher(self.store, queries, self.settings.fusion_params)
            searcher.embedder.encode([_WARMUP_QUERY])  # the first encode pays one-off setup costs
            # Documents are prepared with the settings the index was built with, not today's,
            # and embedded by the query encoder's thread, shared fairly with queries.
            preparer = Preparer(writer, manifest.chunking, manifest.title_prefix)
            self._model = model
        except Exception as error:  # ModelMismatchError included: the same problem for a user
            self.load_error = f"loading model {self.settings.model!r} failed: {error}"
            logger.error("the service will not become ready: %s", self.load_error)
            return
        self.preparer = preparer
        self.searcher = searcher
        if isinstance(self.store, MilvusStore):  # replicas share it: follow their reindexes
            self.store.follower = self._follow_reindex
        reader = self.store.reader()
        logger.info(
            "ready: %d documents, %d passages, model %s; writes %s",
            reader.document_count,
            reader.passage_count,
            self.settings.model,
            "enabled" if self.writes_problem is None else f"disabled ({self.writes_problem})",
        )

    @property
    def snapshot_problem(self) -> str | None:
        """Why this store cannot be snapshotted here, or None."""
        if isinstance(self.store, MilvusStore):
            return (
                "snapshots are of the FAISS store; back a Milvus store up with Milvus's own "
                "tools (milvus-backup), or copy its live documents into another store with "
                "python -m indexer build --from-collection"
            )
        return None

    @property
    def writes_problem(self) -> str | None:
        """Why writes are refused, or None."""
        if self.settings.api_key is None:
            return "no SEARCH_API_KEY is set"
        return None if self.store is None else self.store.read_only

    def write(
        self, documents: Sequence[Document], *, wait: bool
    ) -> tuple[int, list[bool], list[int]]:
        """Prepare and store documents: the new sequence number, whether each replaced one,
        and each one's passage count. With ``wait``, return once searches see them."""
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
                        written = self.store.put(prepared, epoch=epoch)
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

    def delete(self, doc_id: str) -> bool:
        assert self.store is not None
        try:
            with span("store.delete"):
                existed = self.store.delete([doc_id]).existed[0]
        except Exception:
            self._count("failed")
            raise
        self._count("deleted" if existed else "not_found")
        return existed

    def delete_matching(self, filter: Filter) -> tuple[int, int]:
        """Delete every document passing ``filter``, the writes acknowledged before this
        call included: how many, and the sequence number after them."""
        assert self.store is not None
        try:
            with span("store.delete_matching"):
                self.store.refresh()
                ids = self.store.reader().document_ids(filter)
                written = self.store.delete(ids) if ids else None
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

    # -- reindex ------------------------------------------------------------------------------

    def reindex_models(self) -> list[str]:
        """Models a reindex may switch to: the one loaded, and (torch) models in the local
        Hugging Face cache. Nothing is ever downloaded by a running service."""
        models = [self.store_model]
        if self.backend == "torch" and self._loads_configured_model:
            models += [m for m in _cached_models() if m not in models]
        return models

    def reindex_backends(self) -> list[Backend]:
        """Backends a reindex may switch to, for the model loaded."""
        if not self._loads_configured_model:
            return [self.backend]
        from indexer.onnx_embedding import export_problem

        usable: list[Backend] = []
        for backend in BACKENDS:
            variant = onnx_variant(backend)
            if backend == self.backend:
                usable.append(backend)
            elif variant is None:
                if torch_backend_installed() and self.store_model in _cached_models():
                    usable.append(backend)
            elif export_problem(self.store_model, self.settings.onnx_dir, variant) is None:
                usable.append(backend)
        return usable

    def reindex_problem(self, model: str | None, backend: Backend | None) -> str | None:
        """Why a reindex to ``model`` run by ``backend`` is not possible here, or None."""
        model = model or self.store_model
        backend = backend or self.backend
        if model == self.store_model and backend == self.backend:
            return None
        if not self._loads_configured_model:  # a test's stand-in: it makes any model
            return None
        installed = self.reindex_models()
        if model not in installed:
            return f"model {model!r} is not installed here (installed: {', '.join(installed)})"
        variant = onnx_variant(backend)
        if variant is None:
            if not torch_backend_installed():
                return "backend 'torch' needs torch and sentence-transformers, not installed here"
            if model not in _cached_models():
                return f"model {model!r} is not in the local Hugging Face cache"
            return None
        from indexer.onnx_embedding import export_problem

        problem = export_problem(model, self.settings.onnx_dir, variant)
        return None if problem is None else f"backend {backend!r} cannot run {model!r}: {problem}"

    @property
    def store_model(self) -> str:
        return self.store.manifest.model.name if self.store is not None else self.settings.model

    def start_reindex(
        self, changes: ReindexChanges, model: str | None, backend: Backend | None
    ) -> ReindexStatus:
        """Start rebuilding the index in the background; its status says how it goes."""
        if self.store is None or self.searcher is None or self._model is None:
            raise ReindexRefusedError("the model is still loading; retry in a few seconds")
        if self.writes_problem is not None:
            raise ReindexRefusedError(f"the index takes no writes: {self.writes_problem}")
        if not self.reindexing.start(self.store.manifest.build_id):
            raise ReindexRefusedError("a reindex is already running")
        thread = threading.Thread(
            target=self._reindex,
            args=(self.store, changes, model or self.store_model, backend or self.backend),
            name="index-reindex",
            daemon=True,
        )
        self._reindex_thread = thread
        thread.start()
        return self.reindexing.status

    def _models(
        self, model_name: str, backend: Backend
    ) -> tuple[Embedder, Embedder | None, Embedder, BatchingEmbedder | None]:
        """The model, query encoder, document encoder and batcher to use for ``model_name``:
        the served ones if it is the served model, else loaded and warmed up (no query encoder
        then means: keep the served one)."""
        assert self._model is not None
        if model_name == self.store_model and backend == self.backend:
            writer = self.preparer.embedder if self.preparer is not None else self._model
            return self._model, None, writer, None
        if self._loads_configured_model:
            model = load_embedder(model_name, backend, self.settings.onnx_dir)
        else:
            model = self._embedder_factory(model_name)
        queries, writer, batcher = self._query_embedder(model)
        queries.encode([_WARMUP_QUERY])
        return model, queries, writer, batcher

    def _switcher(
        self,
        target: Manifest,
        models: tuple[Embedder, Embedder | None, Embedder, BatchingEmbedder | None],
        backend: Backend,
    ) -> tuple[Preparer, Callable[[], None]]:
        """The preparer of ``target``'s settings, and what to run at a reindex's switch, with
        writes held: later writes are prepared by it and queries encoded by the new model."""
        assert self.searcher is not None
        model, queries, writer, batcher = models
        preparer = Preparer(writer, target.chunking, target.title_prefix)
        searcher = self.searcher

        def switch() -> None:
            if queries is not None:
                searcher.use_embedder(queries, target.keyword.stemmer)
                if self._batcher is not None:
                    self._retired.append(self._batcher)
                self._batcher, self._model, self.backend = batcher, model, backend
            self.preparer = preparer

        return preparer, switch

    def _follow_reindex(self, manifest: Manifest) -> Callable[[], None]:
        """Another replica reindexed the shared (Milvus) store: ready the new version's model
        and preparer, to swap in when this replica's store switches to it."""
        logger.info("another replica reindexed the index: readying %s", manifest.model.name)
        _, switch = self._switcher(
            manifest, self._models(manifest.model.name, self.backend), self.backend
        )
        return switch

    def _reindex(
        self, store: Store, changes: ReindexChanges, model_name: str, backend: Backend
    ) -> None:
        assert self.searcher is not None
        assert self._model is not None
        batcher: BatchingEmbedder | None = None
        try:
            if model_name != self.store_model or backend != self.backend:
                self.reindexing.progress("loading the model", 0, 0)
            models = self._models(model_name, backend)
            batcher = models[3]
            target = changes.apply(store.manifest, models[0])
            preparer, switch = self._switcher(target, models, backend)
            manifest = store.reindex(
                target,
                lambda documents: preparer.prepare(documents),
                progress=self.reindexing.progress,
                on_switch=switch,
            )
        except Exception as error:  # the old version serves on; the status says why
            if batcher is not None and batcher is not self._batcher:
                batcher.close()
            message = str(error) or type(error).__name__
            if not isinstance(error, ReindexError):  # the store logged those, in one line
                logger.error("reindexing failed; the old index serves on: %s", message)
            self.reindexing.fail(message)
            return
        self.reindexing.finish(manifest)


def _cached_models() -> list[str]:
    """Model repositories in the local Hugging Face cache (never the network)."""
    try:
        from huggingface_hub import scan_cache_dir

        return sorted(r.repo_id for r in scan_cache_dir().repos if r.repo_type == "model")
    except Exception:  # no cache, or no huggingface_hub: nothing is installed
        return []
