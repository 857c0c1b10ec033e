"""The one source of ``SEARCH_*`` settings for indexing and searching.

The service's ``Settings`` extends this class, and the CLI and the benchmarks take their
defaults from it, so an index is always built the way the service will read it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from indexer.backends import DEFAULT_BACKEND, DEFAULT_ONNX_DIR, Backend
from indexer.chunking import DEFAULT_MAX_TOKENS, DEFAULT_OVERLAP, ChunkingParams
from indexer.embedding import DEFAULT_MODEL
from indexer.fusion import FusionMethod, FusionParams
from indexer.index import BuildParams
from indexer.stores.milvus.client import Consistency, MilvusTarget
from indexer.stores.milvus.versions import version_number

_FUSION = FusionParams()


class IndexSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="SEARCH_", extra="ignore")

    store: Literal["faiss", "milvus"] = Field(
        "faiss",
        description="Where the index lives: faiss (the directory SEARCH_INDEX_DIR) or milvus "
        "(the collection SEARCH_MILVUS_COLLECTION at SEARCH_MILVUS_URI).",
    )
    index_dir: Path = Field(Path("data/index"), description="Index directory to build and serve.")
    milvus_uri: str = Field(
        "data/milvus.db",
        description="Milvus: a local file (Milvus Lite, one process) or http://host:19530 "
        "(a server or cluster, shared by replicas).",
    )
    milvus_token: SecretStr | None = Field(
        None, description="Milvus credentials: user:password, or an API key."
    )
    milvus_collection: str = Field(
        "search", description="Milvus: the store's name (its collections start with it)."
    )
    milvus_consistency: Consistency = Field(
        "Session",
        description="Milvus consistency level of reads: Session sees this replica's own "
        "writes at once and costs ~2 ms; Strong waits for every replica's (~200 ms on 2.3).",
    )
    milvus_index_type: str = Field(
        "HNSW", description="Milvus vector index: HNSW, FLAT, IVF_FLAT, IVF_SQ8 or AUTOINDEX."
    )
    milvus_index_params: str = Field(
        "M=16,efConstruction=200,ef=128",
        description='Milvus index parameters, build and search time, e.g. "nlist=1024,nprobe=16".',
    )
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
    index_factory: str = Field(
        "Flat", description='The FAISS index: "Flat", "HNSW32", "IVF1024,Flat", ...'
    )
    search_params: str = Field(
        "",
        description='FAISS parameters kept with the index, e.g. "efSearch=128" or "nprobe=16".',
    )
    fusion: FusionMethod = Field(
        _FUSION.method, description="How hybrid mode fuses rankings: convex or rrf."
    )
    rrf_k: int = Field(_FUSION.rrf_k, ge=1, description="RRF damping constant.")
    semantic_weight: float = Field(
        _FUSION.semantic_weight, ge=0, le=1, description="Convex fusion: semantic weight."
    )

    @field_validator("milvus_token", mode="before")
    @classmethod
    def _empty_token_is_unset(cls, value: object) -> object:
        return None if value == "" else value

    @field_validator("milvus_collection")
    @classmethod
    def _not_a_version_name(cls, value: str) -> str:
        if version_number(value):
            raise ValueError(
                "a name ending in __r<number> is a reindexed version of another store; "
                "choose another"
            )
        return value

    @property
    def build_params(self) -> BuildParams:
        milvus = self.store == "milvus"
        return BuildParams(
            chunking=ChunkingParams(self.chunk_max_tokens, self.chunk_overlap),
            title_prefix=self.title_prefix,
            index_factory=self.milvus_index_type if milvus else self.index_factory,
            search_params=self.milvus_index_params if milvus else self.search_params,
            store=self.store,
        )

    @property
    def milvus_target(self) -> MilvusTarget:
        token = self.milvus_token.get_secret_value() if self.milvus_token is not None else ""
        return MilvusTarget(
            uri=self.milvus_uri,
            collection=self.milvus_collection,
            token=token,
            consistency=self.milvus_consistency,
        )

    @property
    def index_location(self) -> str:
        """Where the index lives, for messages."""
        return str(self.milvus_target) if self.store == "milvus" else str(self.index_dir)

    @property
    def fusion_params(self) -> FusionParams:
        return FusionParams(self.fusion, self.rrf_k, self.semantic_weight)
