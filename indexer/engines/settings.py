"""The build engines' settings (``SEARCH_ENGINE`` and the Ray engine's), and the embedding
cache every build reads and fills."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import AliasChoices, Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

EngineName = Literal["local", "ray"]
DEFAULT_CACHE = Path("data/embedding-cache.sqlite")


class EngineSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="SEARCH_", extra="ignore")

    engine: EngineName = Field(
        "local",
        description="What embeds a build's passages: local (this process) or ray (an actor pool "
        "on a Ray cluster; the ray extra).",
    )
    ray_address: str = Field(
        "",
        validation_alias=AliasChoices("SEARCH_RAY_ADDRESS", "RAY_ADDRESS", "ray_address"),
        description="The Ray cluster to join (also RAY_ADDRESS, as Ray reads it); empty: a local "
        "Ray starts and stops with the build.",
    )
    ray_actors: int = Field(2, ge=1, description="Ray engine: embedding actors at most.")
    ray_actor_threads: int = Field(
        1, ge=1, description="Ray engine: CPU cores each actor takes (and runs the model on)."
    )
    num_gpus: float = Field(
        0.0, ge=0, description="Ray engine: GPUs per actor (torch backend); 0: CPU actors."
    )
    embedding_cache: Path | None = Field(
        DEFAULT_CACHE,
        description="Every vector a build makes, by model and passage text (an SQLite file): a "
        "killed build resumes, a rebuild re-embeds only changed passages. Empty: none.",
    )

    @field_validator("embedding_cache", mode="before")
    @classmethod
    def _empty_is_none(cls, value: object) -> object:
        return None if value in ("", "none") else value
