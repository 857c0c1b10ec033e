"""What the running service holds: the opened index and, once loaded, the searcher."""

from __future__ import annotations

import logging
from collections.abc import Callable

from app.settings import Settings
from indexer.embedding import Embedder, SentenceTransformerEmbedder
from indexer.index import IndexLoadError, SearchIndex
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
        self._embedder_factory = embedder_factory or SentenceTransformerEmbedder
        self.index: SearchIndex | None = None
        self.searcher: Searcher | None = None
        self.load_error: str | None = None
        self.draining = False

    @property
    def ready(self) -> bool:
        return self.searcher is not None and not self.draining

    def open_index(self) -> SearchIndex:
        directory = self.settings.index_dir
        model = self.settings.model
        rebuild = f"python -m indexer build --source seeds --out {directory} --model {model}"
        try:
            index = SearchIndex.open(directory)
        except IndexLoadError as error:
            raise StartupError(
                f"Cannot serve the index at {directory}: {error}. Build it with: {rebuild}"
            ) from error
        if index.manifest.model.name != self.settings.model:
            raise StartupError(
                f"The index at {directory} was built with model {index.manifest.model.name!r}, "
                f"but SEARCH_MODEL is {self.settings.model!r}; rebuild it with: {rebuild}"
            )
        self.index = index
        return index

    def load_model(self) -> None:
        """Load the embedding model and warm it up; runs in a worker thread."""
        if self.index is None:
            raise RuntimeError("open_index() must run first")
        try:
            searcher = Searcher(self.index, self._embedder_factory(self.settings.model))
            searcher.embedder.encode([_WARMUP_QUERY])  # the first encode pays one-off setup costs
        except Exception as error:
            self.load_error = f"loading model {self.settings.model!r} failed: {error}"
            logger.error("%s", self.load_error)
            raise
        self.searcher = searcher
        logger.info(
            "ready: %d documents, %d passages, model %s",
            len(self.index.documents),
            len(self.index.passages),
            self.settings.model,
        )
