"""The one source of ``SEARCH_*`` settings for indexing and searching.

The service's ``Settings`` extends this class, and the CLI and the benchmarks take their
defaults from it, so an index is always built the way the service will read it.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field

from indexer.backends import DEFAULT_BACKEND, DEFAULT_ONNX_DIR, Backend
from indexer.build import BuildParams
from indexer.chunking import DEFAULT_MAX_TOKENS, DEFAULT_OVERLAP, ChunkingParams
from indexer.embedding import DEFAULT_MODEL
from indexer.engines.settings import EngineSettings
from indexer.fusion import FusionMethod, FusionParams
from indexer.stores import StoreSettings

_FUSION = FusionParams()


class IndexSettings(StoreSettings, EngineSettings):
    """Where the index lives (``StoreSettings``: ``SEARCH_STORE`` and each kind's own), what
    embeds a build (``EngineSettings``), and how passages are made, embedded and ranked."""

    model: str = Field(DEFAULT_MODEL, description="Embedding model: a name or a local directory.")
    backend: Backend = Field(
        DEFAULT_BACKEND,
        description="How the model runs: onnx (ONNX Runtime), torch (same vectors) or onnx-int8.",
    )
    onnx_dir: Path = Field(
        DEFAULT_ONNX_DIR,
        description="The model exported for ONNX Runtime (made by the index build when missing).",
    )
    chunk_max_tokens: int = Field(
        DEFAULT_MAX_TOKENS, ge=8, description="Passage size limit in model tokens."
    )
    chunk_overlap: float = Field(
        DEFAULT_OVERLAP,
        ge=0,
        lt=0.5,
        description="Share of a window repeated in the next when a window cuts a paragraph.",
    )
    title_prefix: bool = Field(
        True, description="Embed and keyword-index each passage with its document title first."
    )
    fusion: FusionMethod = Field(
        _FUSION.method, description="How hybrid mode fuses rankings: convex or rrf."
    )
    rrf_k: int = Field(_FUSION.rrf_k, ge=1, description="RRF damping constant.")
    semantic_weight: float = Field(
        _FUSION.semantic_weight, ge=0, le=1, description="Convex fusion: semantic weight."
    )

    @property
    def build_params(self) -> BuildParams:
        spec, params = self.store_kind.index_settings(self)
        return BuildParams(
            chunking=ChunkingParams(self.chunk_max_tokens, self.chunk_overlap),
            title_prefix=self.title_prefix,
            index_factory=spec,
            search_params=params,
            store=self.store,
        )

    @property
    def fusion_params(self) -> FusionParams:
        return FusionParams(self.fusion, self.rrf_k, self.semantic_weight)
