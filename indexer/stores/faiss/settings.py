"""The FAISS store's settings (``SEARCH_INDEX_DIR``, ``SEARCH_INDEX_FACTORY``,
``SEARCH_SEARCH_PARAMS``): one of the store settings ``indexer.settings`` assembles."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class FaissSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="SEARCH_", extra="ignore")

    index_dir: Path = Field(Path("data/index"), description="Index directory to build and serve.")
    index_factory: str = Field(
        "Flat", description='The FAISS index: "Flat", "HNSW32", "IVF1024,Flat", ...'
    )
    search_params: str = Field(
        "",
        description='FAISS parameters kept with the index, e.g. "efSearch=128" or "nprobe=16".',
    )
