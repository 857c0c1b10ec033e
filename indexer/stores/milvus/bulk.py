"""Bulk import, for big builds: the rows a build would insert (``schema.rows_of``), written as
Parquet files that the Milvus server reads and imports itself (the gRPC ``Import``), rather
than sent in insert batches.

What a Milvus 2.3.5 standalone server accepts (checked; docs/scaling.md, "Milvus bulk
import"): Parquet, JSON and numpy files of the collection's fields (without the auto-id key;
JSON fields as JSON text), one JSON or Parquet file a task, by the absolute path of a file it
can read: with local storage (``storageType: local``) it opens the path as given, anywhere on
its own file system (a relative path is taken from its working directory). So it works when
the server runs on this machine (or shares the directory); a server on another machine, or one
storing in MinIO/S3 (where a path names an object in its bucket), cannot read the file and
fails the task. Milvus Lite has no import (UNIMPLEMENTED). pymilvus's ``bulk_import`` (REST,
``/v2/vectordb/jobs/import/create``, files already in the server's object storage) is 2.4+'s:
2.3.5 answers 404. The files are written with pyarrow (the milvus extra brings it), not
pymilvus's ``LocalBulkWriter``: that needs the ``bulk-writer`` extra (MinIO and Azure clients)
and took 3-6 times as long.

The first task is the probe: if it fails, nothing was imported, and the build inserts instead
(with a log line saying why). A failure after that leaves a half-built store:
``StoreUnavailableError``. The files are deleted as soon as their task is done.
"""

from __future__ import annotations

import itertools
import json
import logging
import tempfile
import time
from collections.abc import Generator, Sequence
from contextlib import closing
from pathlib import Path
from typing import TYPE_CHECKING, Any

from indexer.stores.base import IndexedDocument, StoreUnavailableError
from indexer.stores.milvus.client import call
from indexer.stores.milvus.schema import rows_of

if TYPE_CHECKING:
    import pyarrow as pa
    from pymilvus import MilvusClient

    from indexer.stores.milvus.versions import Version

logger = logging.getLogger("indexer")

BULK_ROWS = 50_000
"""Passages from which a build imports rather than inserts. An import task has a fixed cost
(its flush, and the server's state checks once a second). Whole builds of 384-d passages on
a 2.3.5 server sharing 2 busy cores (docs/scaling.md): at 20 000 an import took as long or
longer (20-32 s against 20-23 s); at 60 000 and 120 000 about half the inserts' time."""
FILE_ROWS = 100_000
"""Rows a file: one import task each (~160 MB of Parquet at 384-d)."""
GROUP_ROWS = 5_000
"""Rows held as Python objects at once: a row group of a file."""
IMPORT_SECONDS = 900.0
"""How long one task may take: the server's own limit (``rootCoord.importTaskExpiration``)."""
_POLL_SECONDS = (0.2, 1.0)  # first and longest wait between state checks


class _ImportFailedError(Exception):
    """A task the server ran and failed (so it imported nothing)."""


def import_documents(
    client: MilvusClient, version: Version, documents: Sequence[tuple[int, IndexedDocument]]
) -> int | None:
    """Import the rows of ``documents`` into ``version``'s empty collections; the passages
    written, or None if this Milvus cannot import (nothing written: insert them instead)."""
    if version.data.is_lite:
        logger.info("Milvus Lite has no bulk import: inserting")
        return None
    written = 0
    first = True
    with (
        tempfile.TemporaryDirectory(prefix="milvus-import-") as directory,
        closing(_files(version, documents, Path(directory))) as files,
    ):
        for collection, path, rows in files:
            try:
                _import(client, collection, path, rows)
            except _ImportFailedError as error:
                if first:
                    logger.warning("Milvus cannot import files from here (%s): inserting", error)
                    return None
                raise StoreUnavailableError(
                    f"Milvus failed to import {rows} rows into {collection} ({error}); the "
                    "store is half-built: build it again with --force"
                ) from error
            finally:
                path.unlink()
            first = False
            if collection == version.passages:
                written += rows
            logger.info("imported %d rows into %s", rows, collection)
    return written


def _files(
    version: Version, documents: Sequence[tuple[int, IndexedDocument]], directory: Path
) -> Generator[tuple[str, Path, int]]:
    """Parquet files of the rows, up to about FILE_ROWS each: (collection, file, rows), each
    yielded once complete, so the next is written after the previous one's import."""
    import pyarrow.parquet as pq

    numbers = itertools.count()
    writers: dict[str, tuple[pq.ParquetWriter, Path, int]] = {}
    pending: dict[str, list[dict[str, Any]]] = {version.passages: [], version.documents: []}

    def write(collection: str) -> None:
        rows, pending[collection] = pending[collection], []
        if rows:
            table = _table(rows)
            if collection not in writers:
                path = directory / f"{collection}-{next(numbers)}.parquet"
                writers[collection] = (pq.ParquetWriter(path, table.schema), path, 0)
            writer, path, count = writers[collection]
            writer.write_table(table)
            writers[collection] = (writer, path, count + len(rows))

    def close(collection: str) -> tuple[str, Path, int]:
        writer, path, count = writers.pop(collection)
        writer.close()
        return collection, path, count

    try:
        for seq, item in documents:
            for collection, rows in zip(pending, rows_of(version, seq, item), strict=True):
                pending[collection] += rows
                if len(pending[collection]) >= GROUP_ROWS:
                    write(collection)
                    if writers[collection][2] >= FILE_ROWS:
                        yield close(collection)
        for collection in pending:
            write(collection)
            if collection in writers:
                yield close(collection)
    finally:  # the caller stopped early (a failed import): its directory goes, with these
        for writer, _, _ in writers.values():
            writer.close()


def _table(rows: list[dict[str, Any]]) -> pa.Table:
    """Rows as the columns an import reads: JSON fields as JSON text, vectors as lists of
    float32, the rest as they are (the key is Milvus's: auto-id)."""
    import pyarrow as pa

    columns: dict[str, Any] = {}
    for name, sample in rows[0].items():
        values = [row[name] for row in rows]
        if isinstance(sample, dict):
            columns[name] = pa.array([json.dumps(value) for value in values], pa.string())
        elif isinstance(sample, list):
            columns[name] = pa.array(values, pa.list_(pa.float32()))
        else:
            columns[name] = pa.array(values)
    return pa.table(columns)


def _import(client: MilvusClient, collection: str, path: Path, rows: int) -> None:
    """Import one file and wait for its task; _ImportFailedError if the server could not (nothing
    imported), StoreUnavailableError if it does not finish within IMPORT_SECONDS."""
    from pymilvus import BulkInsertState

    # MilvusClient 3.0.2 has no import of its own: its connection's is the ORM's
    # utility.do_bulk_insert without the ORM's global connections.
    connection = client._get_connection()
    try:
        task = call(lambda: connection.do_bulk_insert(collection, "", [str(path)]))
    except StoreUnavailableError as error:  # refused outright (no Import on that server)
        raise _ImportFailedError(str(error)) from error
    deadline = time.monotonic() + IMPORT_SECONDS
    pause = _POLL_SECONDS[0]
    while True:
        state = call(lambda: connection.get_bulk_insert_state(task))
        if state.state == BulkInsertState.ImportCompleted:
            if state.row_count != rows:
                raise StoreUnavailableError(
                    f"Milvus imported {state.row_count} of the {rows} rows of {path.name} into "
                    f"{collection}: build it again with --force"
                )
            return
        if state.state in (BulkInsertState.ImportFailed, BulkInsertState.ImportFailedAndCleaned):
            raise _ImportFailedError(state.failed_reason or "no reason given")
        if time.monotonic() > deadline:
            # Not a fallback: the task may still finish, and inserting too would double rows.
            raise StoreUnavailableError(
                f"Milvus did not import {path.name} into {collection} in {IMPORT_SECONDS:.0f} "
                f"s (task {task}, {state.state_name}): build it again with --force"
            )
        time.sleep(pause)
        pause = min(pause * 2, _POLL_SECONDS[1])
