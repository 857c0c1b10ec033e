"""Who a request is: the API keys the service knows, each with a role and an optional scope.

Keys come from two places. The single-key settings: ``SEARCH_API_KEY`` is an ``admin`` key,
``SEARCH_READ_API_KEY`` a ``read`` key. And ``SEARCH_API_KEYS_FILE``, a JSON (or TOML) file
holding no secret, only the SHA-256 of each key (as Qdrant's JWT scopes, but without a signing
secret to share)::

    {"keys": [{"name": "tenant-a", "sha256": "<hex>", "role": "write",
               "filter": {"tenant": "a"}}]}

``read`` searches and reads; ``write`` also writes; ``admin`` also snapshots and reindexes. A
``filter`` (the search filter language) is the key's scope: it is ANDed into everything the key
does, and a document outside it behaves as if it did not exist. The file is read again when it
changes (checked on each request, a ``stat``) and on SIGHUP; a file that no longer parses is
logged and the keys already loaded stay in force.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import os
import threading
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Annotated, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, model_validator

from indexer.filters import DOC_ID_FIELD, Condition, Filter, FilterError, both, parse_filter
from indexer.metadata import MetadataValue
from indexer.types import Document

logger = logging.getLogger("app")

Role = Literal["read", "write", "admin"]
_RANK: dict[Role, int] = {"read": 0, "write": 1, "admin": 2}


class ScopeError(ValueError):
    """A document a scoped key may not write: the message says which field contradicts."""


@dataclass(frozen=True, slots=True)
class Caller:
    """What the keys a request sent allow it."""

    name: str
    role: Role
    scope: Filter | None = None

    def may(self, role: Role) -> bool:
        return _RANK[self.role] >= _RANK[role]

    def within(self, filter: Filter | None) -> Filter | None:
        """``filter`` confined to this caller's scope."""
        return both(filter, self.scope)

    def sees(self, document: Document) -> bool:
        return self.scope is None or self.scope.matches(document.doc_id, document.metadata)

    def stamp(self, document: Document) -> Document:
        """The document as this caller writes it: the scope's single-valued fields set (a
        tenant key's documents carry its tenant). Raises ScopeError if the document
        contradicts the scope."""
        if self.scope is None:
            return document
        metadata: dict[str, MetadataValue] = dict(document.metadata)
        for condition in self.scope.conditions:
            value = _single_value(condition)
            if value is not None and condition.field not in (*metadata, DOC_ID_FIELD):
                metadata[condition.field] = value
        stamped = replace(document, metadata=metadata)
        for condition in self.scope.conditions:
            found = (
                stamped.doc_id if condition.field == DOC_ID_FIELD else metadata.get(condition.field)
            )
            if not condition.matches(found):
                raise ScopeError(
                    f"document {document.doc_id!r} is outside this key's scope: its "
                    f"{condition.field!r} must match {json.dumps(condition.to_json())}, "
                    f"not {json.dumps(found)}"
                )
        return stamped


ANONYMOUS = Caller("anonymous", "read")
"""The caller of a read when no read key is configured (reads are open)."""


def _single_value(condition: Condition) -> MetadataValue | None:
    if condition.lower is not None or condition.upper is not None or condition.any_of is None:
        return None
    values = condition.any_of.sorted_values()
    return values[0] if len(values) == 1 else None


# -- the keys file ------------------------------------------------------------------------------


class KeyEntry(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(min_length=1, max_length=200, description="Shown in logs, never a secret.")
    sha256: str = Field(
        pattern=r"^[0-9a-fA-F]{64}$",
        description="Hex SHA-256 of the key: `printf %s KEY | sha256sum`.",
    )
    role: Role = "read"
    filter: dict[str, object] | None = None

    @model_validator(mode="after")
    def _valid_filter(self) -> Self:
        if self.role == "admin" and self.filter:
            raise ValueError(
                f"key {self.name!r}: an admin key cannot have a filter (snapshots and reindexes "
                "cover every document): give it the write role"
            )
        try:
            parse_filter(self.filter)
        except FilterError as error:
            raise ValueError(f"key {self.name!r}: {error}") from None
        return self

    def caller(self) -> Caller:
        return Caller(self.name, self.role, parse_filter(self.filter))


class KeyFile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    keys: Annotated[list[KeyEntry], Field(max_length=10_000)]

    @model_validator(mode="after")
    def _unique(self) -> Self:
        for what in ("name", "sha256"):
            values = [getattr(entry, what).lower() for entry in self.keys]
            repeated = sorted({v for v in values if values.count(v) > 1})
            if repeated:
                shown = repeated[0] if what == "name" else "of key " + _name_of(self, repeated[0])
                raise ValueError(f"two keys have the same {what} ({shown})")
        return self


def _name_of(keys: KeyFile, digest: str) -> str:
    return next(repr(e.name) for e in keys.keys if e.sha256.lower() == digest)


class KeyFileError(ValueError):
    """The keys file cannot be read; the message names the file and the problem."""


def read_key_file(path: Path) -> dict[bytes, Caller]:
    """The callers of a keys file, by the SHA-256 digest of their key."""
    try:
        raw = path.read_bytes()
        data = tomllib.loads(raw.decode()) if path.suffix == ".toml" else json.loads(raw)
        parsed = KeyFile.model_validate(data)
    except OSError as error:
        raise KeyFileError(f"cannot read {path}: {error.strerror or error}") from None
    except (UnicodeDecodeError, ValueError, tomllib.TOMLDecodeError) as error:
        if isinstance(error, ValidationError):
            first = error.errors()[0]
            where = ".".join(str(part) for part in first["loc"])
            problem = f"{where}: {first['msg']}" if where else first["msg"]
        else:
            problem = str(error)
        raise KeyFileError(f"{path} is not a valid keys file: {problem}") from None
    return {bytes.fromhex(entry.sha256): entry.caller() for entry in parsed.keys}


def reads_open(read_api_key: SecretStr | None, keys_file: Path | None) -> bool:
    """Reads need no key: no read key and no keys file are configured. A keys file closes
    reads, since open reads would show every tenant's documents."""
    return read_api_key is None and keys_file is None


def digest(key: str) -> bytes:
    return hashlib.sha256(key.encode()).digest()


class KeyRing:
    """Every key the service accepts, and who each one is.

    A key is found by comparing its digest with every known digest in constant time, without
    stopping at a match: neither the key nor which entry matched shows in the timing.
    """

    def __init__(
        self,
        api_key: SecretStr | None = None,
        read_api_key: SecretStr | None = None,
        keys_file: Path | None = None,
    ) -> None:
        self._read_api_key = read_api_key
        self._fixed: dict[bytes, Caller] = {}
        if read_api_key is not None:
            self._fixed[digest(read_api_key.get_secret_value())] = Caller("read key", "read")
        if api_key is not None:  # the same key in both settings is the stronger one
            self._fixed[digest(api_key.get_secret_value())] = Caller("SEARCH_API_KEY", "admin")
        self.keys_file = keys_file
        self._lock = threading.Lock()
        self._stamp: tuple[int, int, int] | None = None
        self._known = self._merge({})
        if keys_file is not None:
            self._stamp = _stamp(keys_file)
            self._known = self._merge(read_key_file(keys_file))  # at start-up, a bad file is fatal

    @property
    def reads_open(self) -> bool:
        return reads_open(self._read_api_key, self.keys_file)

    @property
    def writes_enabled(self) -> bool:
        return any(caller.may("write") for _, caller in self._callers())

    def caller(self, key: str) -> Caller | None:
        """Who ``key`` is, or None for a key nobody configured."""
        presented = digest(key)
        found: Caller | None = None
        for known, caller in self._callers():
            if hmac.compare_digest(presented, known) and found is None:
                found = caller
        return found

    def reload(self) -> bool:
        """Read the keys file again; on a bad file, keep the keys in force and log why."""
        if self.keys_file is None:
            return False
        with self._lock:
            stamp = _stamp(self.keys_file)
            try:
                keys = read_key_file(self.keys_file)
            except KeyFileError as error:
                logger.error("keeping the API keys already loaded: %s", error)
                self._stamp = stamp  # reported once, not on every request
                return False
            self._known, self._stamp = self._merge(keys), stamp
        logger.info("loaded %d API keys from %s", len(keys), self.keys_file)
        return True

    def _merge(self, from_file: Mapping[bytes, Caller]) -> tuple[tuple[bytes, Caller], ...]:
        # Settings' keys win over a file entry for the same key.
        return tuple({**from_file, **self._fixed}.items())

    def _callers(self) -> tuple[tuple[bytes, Caller], ...]:
        if self.keys_file is not None and _stamp(self.keys_file) != self._stamp:
            self.reload()
        return self._known


def _stamp(path: Path) -> tuple[int, int, int]:
    """What changes when the file is rewritten or replaced (a rename gives a new inode)."""
    try:
        info = os.stat(path)
    except OSError:
        return (0, 0, 0)
    return (info.st_ino, info.st_mtime_ns, info.st_size)
