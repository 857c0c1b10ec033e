"""A durable cache of passage vectors, keyed by (model, text), and the journal of the builds
that fill it: what makes a build resumable and a rebuild after a small edit cheap.

Embedding is what a build spends its time on (about 100 passages a second per core here);
everything else takes seconds. So a build looks every passage up here first, embeds only the
misses, and commits each finished batch before it counts as done: a build killed at any point
and run again embeds only what the first run had not committed, and a rebuild with new BM25
parameters or a few edited documents embeds only the passages whose text changed.

SQLite does the durable part (write-ahead log, ``synchronous=FULL``: a committed batch survives
kill -9 and power loss) and lets several processes share one file safely.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import threading
import time
from collections.abc import Sequence
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from indexer.embedding import Vectors

# Keys per SELECT ... IN (...): well under SQLite's host-parameter limit (32 766).
_LOOKUP_CHUNK = 900
_SCHEMA = """
CREATE TABLE IF NOT EXISTS vectors (key BLOB PRIMARY KEY, vector BLOB NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS builds (
    target TEXT PRIMARY KEY,
    fingerprint TEXT NOT NULL,
    total INTEGER NOT NULL,
    embedded INTEGER NOT NULL,
    started_at REAL NOT NULL,
    updated_at REAL NOT NULL
);
"""


class CacheOpenError(Exception):
    """The cache file cannot be opened or made (a read-only directory, not an SQLite file)."""


def open_cache(path: Path, model: str, backend: str) -> EmbeddingCache:
    """The cache at ``path`` for ``model`` run by ``backend``; CacheOpenError if it cannot be
    opened."""
    try:
        return EmbeddingCache(path, model_id(model, backend))
    except (OSError, sqlite3.Error) as error:
        raise CacheOpenError(f"cannot open the embedding cache {path}: {error}") from error


def model_id(model: str, backend: str) -> str:
    """What the cache keys a model's vectors by: its name and how it runs."""
    return f"{model} ({backend})"


def vector_key(model: str, text: str) -> bytes:
    """The cache key of ``text`` embedded by ``model`` (the model's name and how it runs:
    ONNX Runtime's vectors differ from torch's in the last digits)."""
    return hashlib.blake2b(f"{model}\0{text}".encode(), digest_size=16).digest()


@dataclass(frozen=True, slots=True)
class UnfinishedBuild:
    """A build of ``target`` that started and has not finished (it was killed, or failed)."""

    target: str
    fingerprint: str
    """What it was building, as ``build_fingerprint`` says: its corpus and settings."""
    total: int
    """Texts it had to embed: its passages less those cached and those repeating a text."""
    embedded: int
    """Of those, how many it had embedded and committed when it last reported."""
    started_at: float
    updated_at: float


class EmbeddingCache:
    """The cache at ``path`` (an SQLite file, made on first use), for one model."""

    def __init__(self, path: Path, model: str) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.model = model
        # isolation_level=None: transactions are explicit (``BEGIN``), so each batch commits
        # exactly once, where ``put`` says. A reindex uses the cache from its own thread.
        self._db = sqlite3.connect(
            path, isolation_level=None, timeout=60.0, check_same_thread=False
        )
        self._lock = threading.RLock()
        # Before anything is written (it only takes on a new file): a vector's 1.5 kB row
        # overflows a 4 kB page of a WITHOUT ROWID table into a page of its own (4.7 kB a
        # passage on disk); 64 kB pages hold ~40 rows (1.8 kB a passage).
        self._db.execute("PRAGMA page_size=65536")
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.executescript(_SCHEMA)

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> EmbeddingCache:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- vectors ----------------------------------------------------------------------------

    def key(self, text: str) -> bytes:
        return vector_key(self.model, text)

    def get(self, keys: Sequence[bytes], dimension: int) -> dict[bytes, Vectors]:
        """The cached vectors among ``keys`` (one row each); a vector of another dimension
        is a miss (a model directory reused for another model)."""
        found: dict[bytes, Vectors] = {}
        width = dimension * 4
        for start in range(0, len(keys), _LOOKUP_CHUNK):
            chunk = keys[start : start + _LOOKUP_CHUNK]
            marks = ",".join("?" * len(chunk))
            # Only question marks go into the statement; the keys are bound parameters.
            query = f"SELECT key, vector FROM vectors WHERE key IN ({marks})"
            with self._lock, closing(self._db.execute(query, chunk)) as rows:
                for key, blob in rows:
                    if len(blob) == width:
                        found[key] = np.frombuffer(blob, dtype=np.float32)
        return found

    def put(self, keys: Sequence[bytes], vectors: Vectors) -> None:
        """Store ``vectors`` (one row per key) in one transaction, durable once this returns."""
        with self._transaction():
            self._insert(keys, vectors)

    def _insert(self, keys: Sequence[bytes], vectors: Vectors) -> None:
        rows = [
            (key, np.ascontiguousarray(row, dtype=np.float32).tobytes())
            for key, row in zip(keys, vectors, strict=True)
        ]
        self._db.executemany("INSERT OR REPLACE INTO vectors VALUES (?, ?)", rows)

    def count(self) -> int:
        with self._lock, closing(self._db.execute("SELECT count(*) FROM vectors")) as rows:
            return int(rows.fetchone()[0])

    # -- the build journal ------------------------------------------------------------------

    def unfinished(self, target: str) -> UnfinishedBuild | None:
        """The build of ``target`` that started and did not finish, if one did."""
        with (
            self._lock,
            closing(
                self._db.execute(
                    "SELECT target, fingerprint, total, embedded, started_at, updated_at "
                    "FROM builds WHERE target = ?",
                    (target,),
                )
            ) as rows,
        ):
            row = rows.fetchone()
        return None if row is None else UnfinishedBuild(*row)

    def start_build(self, target: str, fingerprint: str, total: int) -> None:
        now = time.time()
        with self._transaction():
            self._db.execute(
                "INSERT OR REPLACE INTO builds VALUES (?, ?, ?, 0, ?, ?)",
                (target, fingerprint, total, now, now),
            )

    def put_progress(
        self, target: str, keys: Sequence[bytes], vectors: Vectors, embedded: int
    ) -> None:
        """``put`` and the build's progress in the same transaction: the count it records is
        never ahead of the vectors it has."""
        with self._transaction():
            self._insert(keys, vectors)
            self._db.execute(
                "UPDATE builds SET embedded = ?, updated_at = ? WHERE target = ?",
                (embedded, time.time(), target),
            )

    def finish_build(self, target: str) -> None:
        with self._transaction():
            self._db.execute("DELETE FROM builds WHERE target = ?", (target,))

    def _transaction(self) -> _Transaction:
        return _Transaction(self._db, self._lock)


class _Transaction:
    """``BEGIN IMMEDIATE`` ... ``COMMIT`` (``ROLLBACK`` on error): taking the write lock at
    the start, so two builds sharing the cache wait for each other instead of failing."""

    def __init__(self, db: sqlite3.Connection, lock: threading.RLock) -> None:
        self._db = db
        self._lock = lock

    def __enter__(self) -> None:
        self._lock.acquire()
        try:
            self._db.execute("BEGIN IMMEDIATE")
        except BaseException:
            self._lock.release()
            raise

    def __exit__(self, kind: type[BaseException] | None, *exc: object) -> None:
        try:
            self._db.execute("COMMIT" if kind is None else "ROLLBACK")
        finally:
            self._lock.release()


def build_fingerprint(**parts: object) -> str:
    """What identifies a build for ``--resume``: its corpus and settings, as stable JSON."""
    return json.dumps(parts, sort_keys=True, default=str)
