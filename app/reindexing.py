"""Reindexing the served store from the service (``POST /admin/reindex``), and following the
reindexes other processes make of a shared one.

A reindex loads the new model if it is another one (never downloading: the models offered
are those installed here), rebuilds the store in the background while the old version serves
(``Store.reindex``), and at the switch, with writes held, swaps the service's query encoder
and document preparer for the new version's (``Switch``).
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

from indexer.backends import BACKENDS, Backend, backend_problem, cached_models, onnx_variant
from indexer.embedding import Embedder
from indexer.embedding_cache import CacheOpenError, EmbeddingCache, open_cache
from indexer.ingest import Preparer
from indexer.manifest import Manifest
from indexer.passage_vectors import prepare_cached
from indexer.query_encoding import BatchingEmbedder
from indexer.reindex import ReindexChanges, ReindexStatus, ReindexTracker
from indexer.stores import Store
from indexer.stores.base import Rebuild, ReindexError

if TYPE_CHECKING:
    from app.service import SearchService

logger = logging.getLogger("app")


class ReindexRefusedError(RuntimeError):
    """A reindex cannot start now (one is running, the model is not loaded); the message
    says why."""


@dataclass(frozen=True, slots=True)
class Models:
    """What runs a model in the service: the model, its query encoder (None: keep the served
    one), the encoder documents are written with, and the batcher behind both, if any."""

    model: Embedder
    queries: Embedder | None
    writer: Embedder
    batcher: BatchingEmbedder | None


class Reindexer:
    """The one reindex a service runs at a time (``status`` says how it goes), and how it
    follows another process's reindex of a store they share."""

    def __init__(self, service: SearchService) -> None:
        self.service = service
        self.tracker = ReindexTracker()
        self._thread: threading.Thread | None = None

    @property
    def status(self) -> ReindexStatus:
        return self.tracker.status

    # -- what a reindex may switch to ----------------------------------------------------------

    def models(self) -> list[str]:
        """Models a reindex may switch to: the one loaded, and (torch) models in the local
        Hugging Face cache. Nothing is ever downloaded by a running service."""
        service = self.service
        models = [service.store_model]
        if service.backend == "torch" and service.loads_configured_model:
            models += [m for m in cached_models() if m not in models]
        return models

    def backends(self) -> list[Backend]:
        """Backends a reindex may switch to, for the model loaded."""
        service = self.service
        if not service.loads_configured_model:
            return [service.backend]
        model = service.store_model
        return [
            backend
            for backend in BACKENDS
            if backend == service.backend or self._model_problem(model, backend) is None
        ]

    def problem(self, model: str | None, backend: Backend | None) -> str | None:
        """Why a reindex to ``model`` run by ``backend`` is not possible here, or None."""
        service = self.service
        model = model or service.store_model
        backend = backend or service.backend
        if model == service.store_model and backend == service.backend:
            return None
        if not service.loads_configured_model:  # a test's stand-in: it makes any model
            return None
        installed = self.models()
        if model not in installed:
            return f"model {model!r} is not installed here (installed: {', '.join(installed)})"
        problem = self._model_problem(model, backend)
        return None if problem is None else f"backend {backend!r} cannot run {model!r}: {problem}"

    def _model_problem(self, model: str, backend: Backend) -> str | None:
        problem = backend_problem(backend, model, self.service.settings.onnx_dir)
        if problem is None and onnx_variant(backend) is None and model not in cached_models():
            return f"model {model!r} is not in the local Hugging Face cache"
        return problem

    # -- running one ---------------------------------------------------------------------------

    def start(
        self, changes: ReindexChanges, model: str | None, backend: Backend | None
    ) -> ReindexStatus:
        """Start rebuilding the store in the background; ``status`` says how it goes."""
        service = self.service
        store = service.store
        if store is None or service.searcher is None or service.model is None:
            raise ReindexRefusedError("the model is still loading; retry in a few seconds")
        if service.writes_problem is not None:
            raise ReindexRefusedError(f"the index takes no writes: {service.writes_problem}")
        if not self.tracker.start(store.manifest.build_id):
            raise ReindexRefusedError("a reindex is already running")
        thread = threading.Thread(
            target=self._run,
            args=(store, changes, model or service.store_model, backend or service.backend),
            name="index-reindex",
            daemon=True,
        )
        self._thread = thread
        thread.start()
        return self.tracker.status

    def join(self, timeout: float) -> None:
        if self._thread is not None:
            self._thread.join(timeout)

    def _run(
        self, store: Store, changes: ReindexChanges, model_name: str, backend: Backend
    ) -> None:
        service = self.service
        batcher: BatchingEmbedder | None = None
        try:
            if model_name != service.store_model or backend != service.backend:
                self.tracker.progress("loading the model", 0, 0)
            models = self._models(model_name, backend)
            batcher = models.batcher
            target = changes.apply(store.manifest, models.model)
            preparer, switch = self._switch(target, models, backend)
            with self._cache(model_name, backend) as cache:
                manifest = store.reindex(
                    Rebuild(
                        target,
                        lambda documents: prepare_cached(preparer, documents, cache),
                        self.tracker.progress,
                        switch,
                    )
                )
        except Exception as error:  # the old version serves on; the status says why
            if batcher is not None and batcher is not service.batcher:
                batcher.close()
            message = str(error) or type(error).__name__
            if not isinstance(error, ReindexError):  # the store logged those, in one line
                logger.error("reindexing failed; the old index serves on: %s", message)
            self.tracker.fail(message)
            return
        self.tracker.finish(manifest)

    def follow(self, manifest: Manifest) -> Callable[[], None]:
        """Another replica reindexed the shared store: ready the new version's model and
        preparer, to swap in when this replica's store switches to it."""
        logger.info("another replica reindexed the index: readying %s", manifest.model.name)
        backend = self.service.backend
        _, switch = self._switch(manifest, self._models(manifest.model.name, backend), backend)
        return switch

    @contextlib.contextmanager
    def _cache(self, model_name: str, backend: Backend) -> Iterator[EmbeddingCache | None]:
        """The embedding cache the builds fill (SEARCH_EMBEDDING_CACHE): a reindex embeds
        only the passages it has no vector for. One that cannot be opened only costs time."""
        path = self.service.settings.embedding_cache
        if path is None:
            yield None
            return
        try:
            cache = open_cache(path, model_name, backend)
        except CacheOpenError as error:
            logger.warning("reindexing without the embedding cache: %s", error)
            yield None
            return
        with cache:
            yield cache

    def _models(self, model_name: str, backend: Backend) -> Models:
        """The served model's if ``model_name`` is the served model, else loaded and warmed up."""
        service = self.service
        assert service.model is not None
        if model_name == service.store_model and backend == service.backend:
            writer = service.preparer.embedder if service.preparer is not None else service.model
            return Models(service.model, None, writer, None)
        model = service.load_embedder(model_name, backend)
        queries, writer, batcher = service.query_embedder(model)
        service.warm_up(queries)
        return Models(model, queries, writer, batcher)

    def _switch(
        self, target: Manifest, models: Models, backend: Backend
    ) -> tuple[Preparer, Callable[[], None]]:
        """The preparer of ``target``'s settings, and what to run at the switch, with writes
        held: later writes are prepared by it and queries encoded by the new model."""
        service = self.service
        preparer = Preparer(models.writer, target.chunking, target.title_prefix)

        def switch() -> None:
            if models.queries is not None:
                service.use_model(models.model, models.queries, models.batcher, backend, target)
            service.preparer = preparer

        return preparer, switch
