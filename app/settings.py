"""Service configuration: the indexing settings every reader shares, plus the server's own."""

from __future__ import annotations

from pathlib import Path

from pydantic import AliasChoices, Field, SecretStr, field_validator

from app.logs import LogFormat
from indexer.settings import IndexSettings


class Settings(IndexSettings):
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
    query_cache_size: int = Field(
        1024, ge=0, description="Query embeddings kept in an LRU cache (0 turns it off)."
    )
    query_batching: bool = Field(
        True, description="Encode concurrent queries together in one model call."
    )
    max_body_bytes: int = Field(
        4 * 1024 * 1024, ge=1024, description="Larger request bodies get 413."
    )
    log_level: str = Field("info", description="Uvicorn and application log level.")
    log_format: LogFormat = Field(
        "text",
        description="text: uvicorn's lines; json: one JSON object a line, with a line per "
        "request carrying its request id (and trace id).",
    )
    api_key: SecretStr | None = Field(
        None,
        description="The key that writes need (Authorization: Bearer, or X-API-Key); it "
        "also reads. Without one, writes are disabled.",
    )
    read_api_key: SecretStr | None = Field(
        None,
        description="If set, searches and documents need this key (or the write key); "
        "probes and /metrics stay open.",
    )
    api_keys_file: Path | None = Field(
        None,
        description="A JSON (or .toml) file of API keys, each with a role (read, write, admin) "
        "and an optional scope filter: see docs/api.md (Keys and tenants). Re-read when it "
        "changes. With one, reads need a key.",
    )
    refresh_interval: float = Field(
        1.0,
        ge=0,
        le=60,
        description="Seconds within which a write becomes searchable (0: at once).",
    )

    @field_validator("api_key", "read_api_key", "api_keys_file", mode="before")
    @classmethod
    def _empty_is_unset(cls, value: object) -> object:
        # `SEARCH_API_KEY=` (as compose files write it) means no key, never the empty key.
        return None if value == "" else value
