"""The store registry: the one place that knows which kinds of store exist.

A kind of store is a subpackage of ``indexer.stores`` with a ``StoreKind`` (``base.py``) and a
settings model; it is registered by adding it to ``KINDS`` below (and its settings to
``StoreSettings``). Everything else (the service, the CLI, the build, the contract suite in
``tests/contract``) reaches stores through here.
"""

from __future__ import annotations

from typing import Any

from pydantic import Field, field_validator

from indexer.stores.base import Store, StoreKind
from indexer.stores.faiss.kind import FAISS
from indexer.stores.faiss.settings import FaissSettings
from indexer.stores.milvus.kind import MILVUS
from indexer.stores.milvus.settings import MilvusSettings

KINDS: dict[str, StoreKind] = {kind.name: kind for kind in (FAISS, MILVUS)}
DEFAULT_KIND = FAISS.name


class StoreSettings(FaissSettings, MilvusSettings):
    """``SEARCH_STORE``, and every kind's own settings (only the chosen kind's are read)."""

    store: str = Field(
        DEFAULT_KIND,
        description="Where the index lives: "
        + " or ".join(f"{kind.name} ({kind.summary})" for kind in KINDS.values())
        + ".",
    )

    @field_validator("store")
    @classmethod
    def _registered(cls, value: str) -> str:
        store_kind(value)
        return value

    @property
    def store_kind(self) -> StoreKind:
        return KINDS[self.store]

    @property
    def store_location(self) -> Any:
        """Where the chosen kind's store is (a directory, a Milvus target)."""
        return self.store_kind.location(self)

    @property
    def index_location(self) -> str:
        """Where the index lives, for messages: "the index at data/index"."""
        return self.store_kind.describe(self.store_location)


def store_kind(name: str) -> StoreKind:
    """The kind registered as ``name`` (as ``SEARCH_STORE`` and manifests say it)."""
    if name not in KINDS:
        raise ValueError(f"unknown store {name!r}; known: {', '.join(sorted(KINDS))}")
    return KINDS[name]


def open_store(
    settings: StoreSettings, *, writable: bool = True, refresh_interval: float = 1.0
) -> Store:
    """The store ``settings`` name, opened (errors: see ``Store.open``)."""
    kind = settings.store_kind
    return kind.open(settings.store_location, writable=writable, refresh_interval=refresh_interval)
