"""The Milvus store's settings (``SEARCH_MILVUS_*``): one of the store settings
``indexer.settings`` assembles."""

from __future__ import annotations

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from indexer.stores.milvus.client import Consistency, MilvusTarget
from indexer.stores.milvus.versions import version_number


class MilvusSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="SEARCH_", extra="ignore")

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
    def milvus_target(self) -> MilvusTarget:
        token = self.milvus_token.get_secret_value() if self.milvus_token is not None else ""
        return MilvusTarget(
            uri=self.milvus_uri,
            collection=self.milvus_collection,
            token=token,
            consistency=self.milvus_consistency,
        )
