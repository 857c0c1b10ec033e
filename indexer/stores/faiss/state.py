"""The in-memory state of a local (FAISS) index: what is written, and what searches see.

Everything is append-only between merges. A document's passages get the next row numbers
(one vector, one keyword row and one ``Passage`` each) and the document the next document
number; replacing or deleting a document only clears its *live* flags. One writer thread
changes this state; ``publish()`` freezes it into a ``LocalView`` (copies of the flags and
statistics, views of the append-only arrays) that any number of threads search without locks.
``compact`` turns a view into a fresh state of just its live documents, numbered from 0: that
is what a merge saves as the next version.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from cachetools import LRUCache

from indexer.filters import Filter
from indexer.ingest import passage_representation
from indexer.loading import document_checksum
from indexer.manifest import (
    MANIFEST_FILE,
    Counts,
    Manifest,
    ManifestError,
    ModelInfo,
    read_manifest,
    write_manifest,
)
from indexer.stores.base import IndexedDocument, StoredDocument
from indexer.stores.faiss.arrays import AppendOnlyArray
from indexer.stores.faiss.columns import MetadataColumns
from indexer.stores.faiss.keyword import KeywordIndex, KeywordView
from indexer.stores.faiss.vectors import VectorIndex, VectorView
from indexer.types import Document, DocumentInfo, Ids, Matrix, Passage, Scores

PASSAGES_FILE = "passages.jsonl"
DOCUMENTS_FILE = "documents.jsonl"

Mask = npt.NDArray[np.bool_]


class _Flags:
    """A growable boolean array the writer changes in place; views get copies."""

    def __init__(self, size: int) -> None:
        self._buffer = np.ones(max(size, 16), dtype=bool)
        self._size = size

    def append(self, count: int) -> None:
        needed = self._size + count
        if needed > len(self._buffer):
            grown = np.ones(max(needed, 2 * len(self._buffer)), dtype=bool)
            grown[: self._size] = self._buffer[: self._size]
            self._buffer = grown
        self._buffer[self._size : needed] = True
        self._size = needed

    def clear(self, start: int, stop: int) -> None:
        self._buffer[start:stop] = False

    def snapshot(self) -> Mask:
        return self._buffer[: self._size].copy()


@dataclass(frozen=True, eq=False)
class LocalView:
    """A published, immutable view of a local index (implements ``Reader``)."""

    manifest: Manifest
    seq: int
    documents_by_number: list[Document]
    """Shared with the writer, which only appends; numbers below ``len(live_docs)`` are ours."""
    passages_by_row: list[Passage]
    row_document: npt.NDArray[np.int64]
    document_rows: npt.NDArray[np.int64]
    """First row and passage count of each document."""
    live_docs: Mask
    live_rows: Mask
    columns: MetadataColumns
    vectors: VectorView
    keyword: KeywordView
    document_count: int
    passage_count: int
    _masks: LRUCache[Filter | None, Mask | None] = field(
        default_factory=lambda: LRUCache(maxsize=64)
    )
    _document_masks: LRUCache[Filter, Mask] = field(default_factory=lambda: LRUCache(maxsize=64))
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def allowed(self, filter: Filter | None) -> Mask | None:
        """Rows a search may return: live ones whose document passes ``filter``. None: all
        rows (nothing removed, nothing filtered). Cached: a hybrid query asks twice."""
        with self._lock:
            if filter in self._masks:
                return self._masks[filter]
        if filter is None:
            mask = None if self.live_rows.all() else self.live_rows
        else:
            documents = self.columns.mask(filter, len(self.live_docs)) & self.live_docs
            mask = documents[self.row_document]
        with self._lock:
            self._masks[filter] = mask
        return mask

    def vector_search(
        self, vector: Matrix, k: int, filter: Filter | None = None
    ) -> tuple[Scores, Ids]:
        return self.vectors.search(vector, k, self.allowed(filter))

    def keyword_search(
        self, query: str, k: int, filter: Filter | None = None
    ) -> tuple[Scores, Ids]:
        return self.keyword.search(query, k, self.allowed(filter))

    def passage(self, passage_id: int) -> Passage:
        return self.passages_by_row[passage_id]

    def document_info(self, passage_id: int) -> DocumentInfo:
        return DocumentInfo.of(self.documents_by_number[int(self.row_document[passage_id])])

    def documents(
        self, offset: int, limit: int, filter: Filter | None = None
    ) -> list[StoredDocument]:
        numbers = self._numbers(filter)[offset : offset + limit]
        return [self._stored(int(n)) for n in numbers]

    def document_ids(self, filter: Filter | None = None) -> list[str]:
        return [self.documents_by_number[int(n)].doc_id for n in self._numbers(filter)]

    def count_documents(self, filter: Filter | None = None) -> int:
        if filter is None:
            return self.document_count
        return int(np.count_nonzero(self._passing(filter)))

    def _numbers(self, filter: Filter | None) -> npt.NDArray[np.intp]:
        """Numbers of the live documents passing ``filter``, in write order."""
        return np.flatnonzero(self.live_docs if filter is None else self._passing(filter))

    def _passing(self, filter: Filter) -> Mask:
        """Live documents passing ``filter``, by number. Cached: a filtered listing asks twice,
        for its page and for its total."""
        with self._lock:
            if filter in self._document_masks:
                return self._document_masks[filter]
        mask = self.columns.mask(filter, len(self.live_docs)) & self.live_docs
        with self._lock:
            self._document_masks[filter] = mask
        return mask

    def _stored(self, number: int) -> StoredDocument:
        first, count = self.document_rows[number]
        return StoredDocument(
            self.documents_by_number[number],
            tuple(self.passages_by_row[first : first + count]),
        )

    def live_numbers(self) -> tuple[npt.NDArray[np.int64], Ids]:
        """Numbers of the live documents and rows, ascending."""
        return np.flatnonzero(self.live_docs), np.flatnonzero(self.live_rows).astype(np.int64)


class LocalIndex:
    """The writer's state. One thread calls ``put``, ``delete`` and ``publish``; ``get`` and
    views are safe from any thread."""

    def __init__(
        self,
        manifest: Manifest,
        documents: list[Document],
        passages: list[Passage],
        vectors: VectorIndex,
        keyword: KeywordIndex,
        columns: MetadataColumns,
    ) -> None:
        if not len(vectors) == len(keyword) == len(passages) or len(columns) != len(documents):
            raise ValueError(
                f"the index is inconsistent: {len(passages)} passages, {len(vectors)} vectors, "
                f"{len(keyword)} keyword rows; {len(documents)} documents, "
                f"{len(columns)} metadata rows"
            )
        self.manifest = manifest
        self.seq = manifest.seq
        self._documents = documents
        self._passages = passages
        self._vectors = vectors
        self._keyword = keyword
        self._columns = columns
        numbers = {d.doc_id: n for n, d in enumerate(documents)}
        if len(numbers) != len(documents):
            twice = next(d.doc_id for n, d in enumerate(documents) if numbers[d.doc_id] != n)
            raise ValueError(f"document id {twice!r} appears twice")
        self._latest = dict(numbers)
        row_document = np.fromiter(
            (numbers[p.doc_id] for p in passages), dtype=np.int64, count=len(passages)
        )
        counts = np.bincount(row_document, minlength=len(documents)).astype(np.int64)
        firsts = np.cumsum(counts) - counts
        if len(passages) and not (np.diff(row_document) >= 0).all():
            raise ValueError("the index is inconsistent: passages are not grouped by document")
        self._row_document = AppendOnlyArray.of(row_document)
        self._document_rows = AppendOnlyArray.of(
            np.stack([firsts, counts], axis=1).reshape(-1, 2).astype(np.int64)
        )
        self._live_docs = _Flags(len(documents))
        self._live_rows = _Flags(len(passages))
        self._base_rows = len(passages)
        self._dead_rows = 0
        self._view: LocalView | None = None

    # -- making one -------------------------------------------------------------------------

    @classmethod
    def build(cls, manifest: Manifest, items: Sequence[IndexedDocument]) -> LocalIndex:
        """An index of ``items`` with every structure in its saved (merged) form."""
        documents = [item.document for item in items]
        passages = [p for item in items for p in item.passages]
        texts = [text for item in items for text in _texts(manifest, item.document, item.passages)]
        dimension = manifest.model.dimension
        vectors = (
            np.concatenate([item.vectors for item in items])
            if passages
            else np.empty((0, dimension), dtype=np.float32)
        )
        return cls(
            manifest,
            documents,
            passages,
            VectorIndex.build(
                dimension, manifest.store.spec, manifest.store.search_params, vectors
            ),
            KeywordIndex.build(texts, manifest.keyword),
            _columns(documents),
        )

    @classmethod
    def compact(cls, view: LocalView) -> LocalIndex:
        """A new index of the live documents of ``view``, renumbered from 0 (a merge)."""
        documents, rows = view.live_numbers()
        store = view.manifest.store
        columns = view.columns.take(documents)
        return cls(
            view.manifest.model_copy(update={"seq": view.seq}),
            [view.documents_by_number[n] for n in documents.tolist()],
            [view.passages_by_row[r] for r in rows.tolist()],
            VectorIndex.compact(view.vectors, rows, store.spec, store.search_params),
            view.keyword.compact(rows),
            columns,
        )

    # -- writing ----------------------------------------------------------------------------

    def put(self, item: IndexedDocument, seq: int) -> bool:
        """Add or replace a document; True if one with its id existed."""
        document = item.document
        existed = self._remove(document.doc_id)
        number, first = len(self._documents), len(self._passages)
        self._vectors.add(item.vectors.reshape(-1, self.manifest.model.dimension))
        self._keyword.add(_texts(self.manifest, document, item.passages))
        self._passages.extend(item.passages)
        self._documents.append(document)
        self._columns.append(document.doc_id, dict(document.metadata))
        self._row_document.extend(np.full(len(item.passages), number, dtype=np.int64))
        self._document_rows.extend([[first, len(item.passages)]])
        self._live_rows.append(len(item.passages))
        self._live_docs.append(1)
        self._latest[document.doc_id] = number  # last: get() must find it complete
        self.seq = seq
        self._view = None
        return existed

    def delete(self, doc_id: str, seq: int) -> bool:
        existed = self._remove(doc_id)
        self.seq = seq
        self._view = None
        return existed

    def _remove(self, doc_id: str) -> bool:
        number = self._latest.pop(doc_id, None)
        if number is None:
            return False
        first, count = (int(x) for x in self._document_rows.head()[number])
        passages = self._passages[first : first + count]
        self._keyword.remove(_texts(self.manifest, self._documents[number], passages))
        self._live_docs.clear(number, number + 1)
        self._live_rows.clear(first, first + count)
        self._dead_rows += count
        return True

    @property
    def dirty(self) -> bool:
        """Something was written since the last publish."""
        return self._view is None

    def publish(self) -> LocalView:
        if self._view is None:
            live_docs, live_rows = self._live_docs.snapshot(), self._live_rows.snapshot()
            self._view = LocalView(
                manifest=self.manifest,
                seq=self.seq,
                documents_by_number=self._documents,
                passages_by_row=self._passages,
                row_document=self._row_document.head(),
                document_rows=self._document_rows.head(),
                live_docs=live_docs,
                live_rows=live_rows,
                columns=self._columns,
                vectors=self._vectors.publish(),
                keyword=self._keyword.publish(),
                document_count=int(live_docs.sum()),
                passage_count=int(live_rows.sum()),
            )
        return self._view

    # -- reading ----------------------------------------------------------------------------

    def get(self, doc_id: str) -> StoredDocument | None:
        number = self._latest.get(doc_id)
        if number is None:
            return None
        first, count = (int(x) for x in self._document_rows.head(number + 1)[number])
        return StoredDocument(self._documents[number], tuple(self._passages[first : first + count]))

    def __contains__(self, doc_id: str) -> bool:
        return doc_id in self._latest

    def growth(self) -> tuple[int, int, int]:
        """Rows in the saved base, rows added since, and rows removed since: merge policy."""
        return self._base_rows, len(self._passages) - self._base_rows, self._dead_rows

    # -- disk -------------------------------------------------------------------------------

    def save(self, directory: Path, *, started: float, now: float) -> Manifest:
        """Write this (merged: nothing removed, nothing added since) index into an empty
        ``directory``; the manifest goes last, so a directory without one is incomplete."""
        if self._dead_rows or len(self._passages) != self._base_rows:
            raise ValueError("only a merged index can be saved; compact it first")
        self._vectors.save(directory)
        self._keyword.save(directory)
        _write_jsonl(directory / DOCUMENTS_FILE, (_document_record(d) for d in self._documents))
        _write_jsonl(directory / PASSAGES_FILE, (_passage_record(p) for p in self._passages))
        manifest = self.manifest.model_copy(
            update={
                "seq": self.seq,
                "counts": Counts(documents=len(self._documents), passages=len(self._passages)),
                "corpus": self.manifest.corpus.model_copy(
                    update={"checksums": {d.doc_id: document_checksum(d) for d in self._documents}}
                ),
                "built_at": datetime.now(UTC),
                "build_seconds": round(now - started, 3),
                "files": file_checksums(directory),
            }
        )
        write_manifest(directory, manifest)
        self.manifest = manifest
        return manifest

    @classmethod
    def load(cls, directory: Path) -> LocalIndex:
        manifest = read_manifest(directory)
        documents = [_document_from(r) for r in _read_jsonl(directory / DOCUMENTS_FILE)]
        by_id = {d.doc_id: d for d in documents}
        passages = [_passage_from(r, by_id) for r in _read_jsonl(directory / PASSAGES_FILE)]
        counts = Counts(documents=len(documents), passages=len(passages))
        if counts != manifest.counts:
            raise ValueError(
                f"it holds {counts.documents} documents and {counts.passages} passages, "
                f"its manifest says {manifest.counts.documents} and {manifest.counts.passages}"
            )
        store = manifest.store
        return cls(
            manifest,
            documents,
            passages,
            VectorIndex.load(directory, store.spec, store.search_params),
            KeywordIndex.load(directory, manifest.keyword),
            _columns(documents),
        )


class VersionError(ValueError):
    """A version directory is damaged, incomplete or not what was expected (one line)."""


def file_checksums(directory: Path) -> dict[str, str]:
    """sha256 of every data file under ``directory`` (the manifest aside), by relative path."""
    return {
        path.relative_to(directory).as_posix(): _sha256(path)
        for path in sorted(directory.rglob("*"))
        if path.is_file() and path.name != MANIFEST_FILE
    }


def verify_version(directory: Path, model: ModelInfo | None = None) -> Manifest:
    """Check a version before it is served: a readable manifest, the data files its checksums
    name and no others, byte for byte, and (if given) the model and dimension expected."""
    try:
        manifest = read_manifest(directory)
    except ManifestError as error:
        raise VersionError(str(error)) from error
    if model is not None and manifest.model != model:
        raise VersionError(
            f"{directory.name} holds vectors of {manifest.model.name!r} "
            f"({manifest.model.dimension} dimensions), not of {model.name!r} "
            f"({model.dimension} dimensions)"
        )
    if not manifest.files:
        raise VersionError(f"{directory.name} has no file checksums in its manifest")
    try:
        found = file_checksums(directory)
    except OSError as error:
        raise VersionError(f"{directory.name} is unreadable: {error}") from error
    for name, checksum in manifest.files.items():
        if name not in found:
            raise VersionError(f"{directory.name} is incomplete: {name} is missing")
        if found[name] != checksum:
            raise VersionError(f"{directory.name} is damaged: {name} does not match its checksum")
    extra = sorted(found.keys() - manifest.files.keys())
    if extra:
        raise VersionError(f"{directory.name} holds files its manifest does not name: {extra[0]}")
    return manifest


def _sha256(path: Path) -> str:
    with path.open("rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def _texts(manifest: Manifest, document: Document, passages: Sequence[Passage]) -> list[str]:
    """What is keyword-indexed for these passages, as it was embedded."""
    return [passage_representation(p, document.title, manifest.title_prefix) for p in passages]


def _columns(documents: Sequence[Document]) -> MetadataColumns:
    columns = MetadataColumns()
    for document in documents:
        columns.append(document.doc_id, dict(document.metadata))
    return columns


def _document_record(document: Document) -> dict[str, object]:
    record: dict[str, object] = {
        "doc_id": document.doc_id,
        "title": document.title,
        "text": document.text,
    }
    if document.metadata:
        record["metadata"] = dict(document.metadata)
    return record


def _passage_record(passage: Passage) -> dict[str, object]:
    # No text: it is always document.text[start:end].
    return {
        "doc_id": passage.doc_id,
        "chunk_id": passage.chunk_id,
        "start": passage.start,
        "end": passage.end,
    }


def _document_from(record: dict[str, Any]) -> Document:
    return Document(
        doc_id=str(record["doc_id"]),
        title=str(record["title"]),
        text=str(record["text"]),
        metadata=dict(record.get("metadata") or {}),
    )


def _passage_from(record: dict[str, Any], documents: dict[str, Document]) -> Passage:
    document = documents[str(record["doc_id"])]
    start, end = int(record["start"]), int(record["end"])
    if not 0 <= start < end <= len(document.text):
        raise ValueError(f"passage [{start}:{end}] lies outside document {document.doc_id!r}")
    return Passage(document.doc_id, int(record["chunk_id"]), start, end, document.text[start:end])


def _write_jsonl(path: Path, records: Iterator[dict[str, object]]) -> None:
    with path.open("w", encoding="utf-8") as handle:
        for record in records:
            handle.write(json.dumps(record, ensure_ascii=False) + "\n")


def _read_jsonl(path: Path) -> Iterator[dict[str, Any]]:
    with path.open(encoding="utf-8") as handle:
        for line in handle:
            if line.strip():
                yield json.loads(line)
