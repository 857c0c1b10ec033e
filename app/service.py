"""What the running service holds: the opened index and, once loaded, the searcher."""

from __future__ import annotations

import logging
from collections.abc import Callable

from app.settings import Settings
from indexer.backends import load_embedder, onnx_variant, torch_backend_installed
from indexer.embedding import TORCH_EXTRA_INSTALL, Embedder
from indexer.index import IndexLoadError, SearchIndex
from indexer.manifest import Manifest, ManifestError, read_manifest
from indexer.query_encoding import BatchingEmbedder, CachingEmbedder
from indexer.search import Searcher

logger = logging.getLogger("app")

EmbedderFactory = Callable[[str], Embedder]
_WARMUP_QUERY = "warm up"


class StartupError(RuntimeError):
    """The service cannot start; the message is one sentence saying what to do."""


class SearchService:
    """Opens the index at startup (fast, fails loudly), then loads the model (slow)."""

    def __init__(self, settings: Settings, embedder_factory: EmbedderFactory | None = None) -> None:
        self.settings = settings
        self._embedder_factory = embedder_factory or self._load_configured_model
        self._loads_configured_model = embedder_factory is None  # not a test's stand-in
        self.index: SearchIndex | None = None
        self.searcher: Searcher | None = None
        self.load_error: str | None = None
        self._batcher: BatchingEmbedder | None = None

    @property
    def ready(self) -> bool:
        return self.searcher is not None

    def preflight(self) -> Manifest:
        """Check the manifest and the backend only: cheap, so a bad setup is reported before
        anything loads."""
        try:
            manifest = read_manifest(self.settings.index_dir)
        except ManifestError as error:
            raise self._startup_error(str(error)) from error
        if manifest.model.name != self.settings.model:
            raise self._startup_error(
                f"it was built with model {manifest.model.name!r}, "
                f"but SEARCH_MODEL is {self.settings.model!r}"
            )
        if self._loads_configured_model:
            self._check_backend()
        return manifest

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

    def open_index(self) -> SearchIndex:
        self.preflight()
        try:
            self.index = SearchIndex.open(self.settings.index_dir)
        except IndexLoadError as error:
            raise self._startup_error(str(error)) from error
        return self.index

    def _startup_error(self, problem: str) -> StartupError:
        directory, model = self.settings.index_dir, self.settings.model
        rebuild = f"python -m indexer build --source seeds --out {directory} --model {model}"
        return StartupError(
            f"Cannot serve the index at {directory}: {problem}. Build it with: {rebuild}"
        )

    def _load_configured_model(self, model_name: str) -> Embedder:
        return load_embedder(model_name, self.settings.backend, self.settings.onnx_dir)

    def _query_embedder(self, model: Embedder) -> Embedder:
        if self.settings.query_batching:
            self._batcher = BatchingEmbedder(model)
            model = self._batcher
        return CachingEmbedder(model, self.settings.query_cache_size)

    def close(self) -> None:
        if self._batcher is not None:
            self._batcher.close()

    def load_model(self) -> None:
        """Load the embedding model and warm it up; runs in a worker thread.

        A failure is kept in ``load_error`` (shown by /ready and /search) rather than raised:
        the process stays up so that its probes can say what went wrong.
        """
        if self.index is None:
            raise RuntimeError("open_index() must run first")
        try:
            embedder = self._query_embedder(self._embedder_factory(self.settings.model))
            searcher = Searcher(self.index, embedder, self.settings.fusion_params)
            searcher.embedder.encode([_WARMUP_QUERY])  # the first encode pays one-off setup costs
        except Exception as error:
            self.load_error = f"loading model {self.settings.model!r} failed: {error}"
            logger.error("the service will not become ready: %s", self.load_error)
            return
        self.searcher = searcher
        logger.info(
            "ready: %d documents, %d passages, model %s",
            len(self.index.documents),
            len(self.index.passages),
            self.settings.model,
        )
