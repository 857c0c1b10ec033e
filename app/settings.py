"""Service configuration, read from ``SEARCH_*`` environment variables."""

from __future__ import annotations

from pathlib import Path

from pydantic import AliasChoices, Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from indexer.backends import DEFAULT_BACKEND, DEFAULT_ONNX_DIR, Backend
from indexer.embedding import DEFAULT_MODEL
from indexer.fusion import FusionMethod, FusionParams

DEFAULT_FUSION = FusionParams()


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="SEARCH_", extra="ignore")

    index_dir: Path = Field(Path("data/index"), description="Index directory to serve.")
    model: str = Field(DEFAULT_MODEL, description="Embedding model: a name or a local directory.")
    backend: Backend = Field(
        DEFAULT_BACKEND,
        description="How the model runs: onnx (ONNX Runtime), torch (same vectors) or onnx-int8.",
    )
    onnx_dir: Path = Field(
        DEFAULT_ONNX_DIR,
        description="The ONNX export (made by the index build, or export-onnx --out DIR).",
    )
    root_path: str = Field(
        "", description="Path prefix a proxy serves the service under (e.g. /search-api)."
    )
    host: str = Field(
        "127.0.0.1",
        validation_alias=AliasChoices("SEARCH_HOST", "HOST"),
        description="Bind address.",
    )
    port: int = Field(
        8000, validation_alias=AliasChoices("SEARCH_PORT", "PORT"), description="Bind port."
    )
    forwarded_allow_ips: str = Field(
        "127.0.0.1",
        description="Proxies trusted for X-Forwarded-For/-Proto (comma-separated, or *).",
    )
    fusion: FusionMethod = Field(
        DEFAULT_FUSION.method, description="How hybrid mode fuses rankings: rrf or convex."
    )
    rrf_k: int = Field(DEFAULT_FUSION.rrf_k, ge=1, description="RRF damping constant.")
    semantic_weight: float = Field(
        DEFAULT_FUSION.semantic_weight, ge=0, le=1, description="Convex fusion: semantic weight."
    )
    query_cache_size: int = Field(
        1024, ge=0, description="Query embeddings kept in an LRU cache (0 turns it off)."
    )
    query_batching: bool = Field(
        True, description="Encode concurrent queries together in one model call."
    )
    query_batch_window_ms: float = Field(
        0.0,
        ge=0,
        le=100,
        description="How long a query that finds the model idle waits for others to batch with.",
    )
    max_body_bytes: int = Field(65_536, description="Larger request bodies get 413.")
    log_level: str = Field("info", description="Uvicorn and application log level.")

    @property
    def fusion_params(self) -> FusionParams:
        return FusionParams(self.fusion, self.rrf_k, self.semantic_weight)
