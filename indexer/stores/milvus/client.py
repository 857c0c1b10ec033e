"""Reaching Milvus: which Milvus and which store in it (``MilvusTarget``), the client
(``connect``), index parameters, the collection names, and how a failed request becomes
``StoreUnavailableError`` (``call``). Every other module talks to Milvus through these.
"""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, TypeVar

from indexer.stores.base import StoreError, StoreUnavailableError

if TYPE_CHECKING:
    from pymilvus import MilvusClient

logger = logging.getLogger("indexer")
T = TypeVar("T")

Consistency = Literal["Strong", "Session", "Bounded", "Eventually"]
CONSISTENCY_LEVELS: tuple[Consistency, ...] = ("Strong", "Session", "Bounded", "Eventually")
MILVUS_EXTRA_INSTALL = "pip install 'semantic-search[milvus]'"
FULL_TEXT_SINCE = (2, 5)
"""The first Milvus server with full-text search (the BM25 function); Milvus Lite 3 has it."""
INDEX_TYPES = ("FLAT", "HNSW", "IVF_FLAT", "IVF_SQ8", "AUTOINDEX")
# Index types with parameters, exact to approximate (the store contract runs every one).
INDEX_EXAMPLES = (
    ("FLAT", ""),
    ("HNSW", "M=16,efConstruction=200,ef=200"),
    ("IVF_FLAT", "nlist=4,nprobe=4"),
)
# Parameters applied at search time; every other one shapes the index when it is built.
_SEARCH_KEYS = frozenset({"ef", "nprobe"})
# Milvus's ranges for the index parameters it checks. A server refuses a value outside them;
# Milvus Lite does not check, and an HNSW with M below 2 aborts the process (in FAISS).
_RANGES = {"M": (2, 2048), "efConstruction": (1, 2**31 - 1), "nlist": (1, 65_536)}
MAX_RESULTS = 16_384  # Milvus's cap on limit (and offset + limit)
ID_BATCH = 256  # document ids per `in [...]` lookup
DELETE_BATCH = 4_096  # primary keys per delete


@dataclass(frozen=True, slots=True)
class MilvusTarget:
    """Which Milvus, and which store in it: what ``MilvusStore.open`` takes."""

    uri: str
    """A local file for Milvus Lite, or ``http://host:19530`` for a server or cluster."""
    collection: str = "search"
    token: str = field(default="", repr=False)
    """``user:password`` or an API key, for a Milvus with authentication."""
    consistency: Consistency = "Session"

    def __post_init__(self) -> None:
        if re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]{0,200}", self.collection) is None:
            raise ValueError(
                f"Milvus collection name {self.collection!r}: letters, digits and underscores, "
                "not starting with a digit"
            )
        if self.consistency not in CONSISTENCY_LEVELS:
            raise ValueError(f"consistency {self.consistency!r} is not one of {CONSISTENCY_LEVELS}")

    @property
    def is_lite(self) -> bool:
        return "://" not in self.uri

    def __str__(self) -> str:
        return f"Milvus collection {self.collection!r} at {self.uri}"


def parse_index_params(index_type: str, params: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """``"M=16,efConstruction=200,ef=128"`` as (build parameters, search parameters)."""
    if index_type not in INDEX_TYPES:
        raise ValueError(f"Milvus index type {index_type!r} is not one of {', '.join(INDEX_TYPES)}")
    build: dict[str, Any] = {}
    search: dict[str, Any] = {}
    for item in filter(None, (part.strip() for part in params.split(","))):
        name, equals, value = item.partition("=")
        if not equals or not name.strip() or not value.strip():
            raise ValueError(f"Milvus index parameter {item!r} is not name=value")
        name, number = name.strip(), _number_or_text(value)
        low, high = _RANGES.get(name, (0, 0))
        if name in _RANGES and not (isinstance(number, int) and low <= number <= high):
            raise ValueError(
                f"Milvus index parameter {name}={value.strip()}: a whole number from {low} to "
                f"{high}"
            )
        (search if name in _SEARCH_KEYS else build)[name] = number
    return build, search


def _number_or_text(value: str) -> int | float | str:
    """``"16"`` → 16, ``"0.5"`` and ``"1e-3"`` → floats; anything else (``"IP"``) stays text."""
    value = value.strip()
    try:
        return int(value)
    except ValueError:
        pass
    try:
        number = float(value)
    except ValueError:
        return value
    # "nan" and "inf" parse as floats but are no index parameter's value: keep them as written.
    return (int(number) if number.is_integer() else number) if math.isfinite(number) else value


def full_text_support(version: str) -> bool:
    """Does a Milvus reporting ``version`` have full-text search?"""
    if version.startswith("milvus_lite"):
        return True
    found = re.match(r"v?(\d+)\.(\d+)", version)
    return found is not None and (int(found[1]), int(found[2])) >= FULL_TEXT_SINCE


def connect(target: MilvusTarget) -> MilvusClient:
    """A client for ``target``; StoreUnavailableError if Milvus cannot be reached."""
    try:
        from pymilvus import MilvusClient
    except ImportError as error:
        raise StoreUnavailableError(
            f"the Milvus store needs pymilvus, not installed here: {MILVUS_EXTRA_INSTALL}"
        ) from error
    options: dict[str, Any] = {}
    if target.is_lite:
        Path(target.uri).parent.mkdir(parents=True, exist_ok=True)
        # Milvus Lite's local server answers pymilvus's keep-alive pings (every 10 s) with
        # "too many pings" and drops the connection: a process on the same machine needs none.
        options["grpc_options"] = {"grpc.keepalive_time_ms": 2**31 - 1}
    try:
        return MilvusClient(uri=target.uri, token=target.token, timeout=30, **options)
    except Exception as error:  # pymilvus raises several kinds for the same "cannot reach"
        raise StoreUnavailableError(
            f"cannot reach Milvus at {target.uri}: {_reason(error)}"
        ) from error


def collection_names(target: MilvusTarget) -> tuple[str, str, str]:
    base = target.collection
    return f"{base}_passages", f"{base}_documents", f"{base}_meta"


def drop_quietly(client: MilvusClient, name: str) -> None:
    try:
        call(partial(client.drop_collection, name))
    except StoreUnavailableError as error:
        logger.warning("could not drop %s: %s", name, error)


def call(request: Callable[[], T]) -> T:
    """Run a Milvus request; a Milvus or connection failure becomes StoreUnavailableError."""
    try:
        return request()
    except StoreError:
        raise
    except Exception as error:
        if _is_milvus_error(error):
            raise StoreUnavailableError(_reason(error)) from error
        raise


def _is_milvus_error(error: Exception) -> bool:
    module = type(error).__module__
    return module.startswith(("pymilvus", "grpc")) or isinstance(error, ConnectionError)


def _reason(error: Exception) -> str:
    message = getattr(error, "message", None) or str(error) or type(error).__name__
    return " ".join(str(message).split())


__all__ = [
    "CONSISTENCY_LEVELS",
    "Consistency",
    "MilvusTarget",
    "collection_names",
    "connect",
    "full_text_support",
    "parse_index_params",
]
