"""Build an index directory atomically, check whether it is stale, and open it for search.

Layout of an index directory::

    manifest.json     what was built, from what, how (written last)
    vectors.faiss     the vector store (row i is passage i)
    passages.jsonl    one passage per line: doc_id, chunk_id, start, end, text
    documents.jsonl   one document per line: doc_id, title, text
    bm25/             the keyword index (bm25s' own files)
"""

from __future__ import annotations

import json
import shutil
import tempfile
import time
from collections.abc import Collection, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from indexer.chunking import Chunker, ChunkingParams
from indexer.embedding import DEFAULT_BATCH_SIZE, Embedder
from indexer.keyword import KeywordIndex, KeywordParams
from indexer.loading import Corpus, document_checksum
from indexer.manifest import (
    MANIFEST_FILE,
    CorpusInfo,
    Counts,
    Manifest,
    ManifestError,
    ModelInfo,
    StoreInfo,
    read_manifest,
    write_manifest,
)
from indexer.stores import VectorStore, store_class
from indexer.types import Document, Passage

PASSAGES_FILE = "passages.jsonl"
DOCUMENTS_FILE = "documents.jsonl"
DEFAULT_STORE = "faiss"


class BuildError(Exception):
    """The index could not be built; the message says why."""


class IndexLoadError(Exception):
    """The index directory cannot be served; the message says why."""


@dataclass(frozen=True, slots=True)
class BuildParams:
    """Everything that shapes an index besides the corpus and the model."""

    chunking: ChunkingParams = field(default_factory=ChunkingParams)
    keyword: KeywordParams = field(default_factory=KeywordParams)
    title_prefix: bool = True
    """Embed and keyword-index each passage with its document title first, so a passage
    that never names its subject still carries it."""
    index_factory: str = "Flat"
    """The vector index (FAISS factory string): exact "Flat" suits up to a few hundred
    thousand passages; "HNSW32" or "IVF<n>,Flat" trade a little recall for speed beyond."""
    search_params: str = ""
    """Parameters for that index, e.g. "efSearch=128" or "nprobe=32", applied whenever it is
    opened; also before vectors are added, so "efConstruction=200" deepens an HNSW build."""


def passage_representation(passage: Passage, title: str, title_prefix: bool) -> str:
    """The text that is embedded and keyword-indexed for a passage."""
    if title_prefix and title and not passage.text.startswith(title):
        return f"{title}\n\n{passage.text}"
    return passage.text


@dataclass(frozen=True, slots=True)
class BuildReport:
    manifest: Manifest
    seconds: float

    @property
    def passages_per_second(self) -> float:
        return self.manifest.counts.passages / self.seconds if self.seconds > 0 else 0.0


def build_index(
    corpus: Corpus,
    out: Path,
    embedder: Embedder,
    params: BuildParams,
    *,
    source_label: str,
    progress: bool = False,
    batch_size: int = DEFAULT_BATCH_SIZE,
) -> BuildReport:
    """Chunk, embed and store ``corpus``, then swap the result into ``out`` in one rename."""
    if not corpus.documents:
        raise BuildError(f"no documents to index in {source_label}")
    _refuse_to_replace_foreign_directory(out)
    started = time.perf_counter()
    chunker = Chunker(embedder.tokenizer(), params.chunking)
    documents = tqdm(corpus.documents, desc="chunking", unit="doc", disable=not progress)
    passages = chunker.chunk_all(documents)
    titles = {d.doc_id: d.title for d in corpus.documents}
    texts = [passage_representation(p, titles[p.doc_id], params.title_prefix) for p in passages]
    try:  # before the slow part, so a mistyped index setting fails at once
        store = store_class(DEFAULT_STORE).create(embedder.dimension, params.index_factory)
        store.tune(params.search_params)  # build-time ones (efConstruction) must come first
    except ValueError as error:
        raise BuildError(str(error)) from None
    vectors = embedder.encode(texts, batch_size=batch_size, progress=progress)
    try:
        store.add(np.arange(len(passages), dtype=np.int64), vectors)
    except ValueError as error:
        raise BuildError(f"{error} (index {params.index_factory!r})") from None
    keyword = KeywordIndex.build(texts, params.keyword)

    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.building-", dir=out.parent))
    try:
        store.save(staging)
        keyword.save(staging)
        _write_jsonl(staging / PASSAGES_FILE, (_passage_record(p) for p in passages))
        _write_jsonl(staging / DOCUMENTS_FILE, (_document_record(d) for d in corpus.documents))
        seconds = time.perf_counter() - started
        manifest = Manifest(
            model=ModelInfo(name=embedder.model_name, dimension=embedder.dimension),
            chunking=params.chunking,
            keyword=params.keyword,
            title_prefix=params.title_prefix,
            store=StoreInfo(
                kind=store.kind, spec=params.index_factory, search_params=params.search_params
            ),
            corpus=CorpusInfo(
                source=source_label,
                checksums={d.doc_id: document_checksum(d) for d in corpus.documents},
            ),
            counts=Counts(documents=len(corpus.documents), passages=len(passages)),
            built_at=datetime.now(UTC),
            build_seconds=round(seconds, 3),
        )
        # The manifest goes last: a directory without one was never a finished index.
        write_manifest(staging, manifest)
        staging.chmod(0o755)  # mkdtemp makes it private; the server may run as another user
        _swap_into_place(staging, out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return BuildReport(manifest=manifest, seconds=seconds)


def stale_reason(out: Path, corpus: Corpus, model_name: str, params: BuildParams) -> str | None:
    """Why the index at ``out`` does not match this corpus and these settings, or None."""
    try:
        manifest = read_manifest(out)
    except ManifestError as error:
        return str(error)
    if manifest.model.name != model_name:
        return f"it was built with model {manifest.model.name!r}, not {model_name!r}"
    built_params = BuildParams(
        manifest.chunking,
        manifest.keyword,
        manifest.title_prefix,
        manifest.store.spec or "Flat",
        manifest.store.search_params,
    )
    if built_params != params:
        return f"it was built with {built_params}, not {params}"
    current = {d.doc_id: document_checksum(d) for d in corpus.documents}
    if current != manifest.corpus.checksums:
        added = current.keys() - manifest.corpus.checksums.keys()
        removed = manifest.corpus.checksums.keys() - current.keys()
        changed = {
            i
            for i in current.keys() & manifest.corpus.checksums.keys()
            if current[i] != manifest.corpus.checksums[i]
        }
        counts = f"{len(added)} added, {len(changed)} changed, {len(removed)} removed"
        return f"the corpus changed ({counts})"
    return None


class SearchIndex:
    """A loaded index directory: manifest, documents, passages, vectors and keyword index."""

    def __init__(
        self,
        manifest: Manifest,
        documents: list[Document],
        passages: list[Passage],
        store: VectorStore,
        keyword: KeywordIndex,
    ) -> None:
        for part, size in (("vector store", len(store)), ("keyword index", len(keyword))):
            if size != len(passages):
                raise IndexLoadError(
                    f"the {part} holds {size} entries for {len(passages)} passages"
                )
        self.manifest = manifest
        self.documents = {d.doc_id: d for d in documents}
        self.passages = passages
        self.store = store
        self.keyword = keyword
        self._rows_by_document: dict[str, list[int]] = {}
        for row, passage in enumerate(passages):
            self._rows_by_document.setdefault(passage.doc_id, []).append(row)
        # Row -> document number, for grouping results by document without Python loops.
        numbers = {doc_id: n for n, doc_id in enumerate(self._rows_by_document)}
        self.document_numbers = np.array([numbers[p.doc_id] for p in passages], dtype=np.int64)

    @classmethod
    def open(cls, directory: Path) -> SearchIndex:
        try:
            manifest = read_manifest(directory)
        except ManifestError as error:
            raise IndexLoadError(str(error)) from error
        try:
            documents = [_document_from(r) for r in _read_jsonl(directory / DOCUMENTS_FILE)]
            passages = [_passage_from(r) for r in _read_jsonl(directory / PASSAGES_FILE)]
            store = store_class(manifest.store.kind).load(directory)
            store.tune(manifest.store.search_params)
            keyword = KeywordIndex.load(directory, manifest.keyword)
        except (OSError, KeyError, RuntimeError, TypeError, ValueError) as error:
            raise IndexLoadError(f"the index at {directory} is damaged: {error}") from error
        return cls(manifest, documents, passages, store, keyword)

    def passage_count(self, doc_id: str) -> int:
        return len(self._rows_by_document.get(doc_id, ()))

    def rows_of(self, doc_ids: Collection[str]) -> list[int]:
        return [row for doc_id in doc_ids for row in self._rows_by_document.get(doc_id, ())]


def _refuse_to_replace_foreign_directory(out: Path) -> None:
    if out.exists() and not out.is_dir():
        raise BuildError(f"{out} exists and is not a directory; refusing to replace it")
    if out.exists() and not (out / MANIFEST_FILE).exists() and any(out.iterdir()):
        raise BuildError(f"{out} exists and is not an index directory; refusing to replace it")


def _swap_into_place(staging: Path, out: Path) -> None:
    if not out.exists():
        staging.rename(out)
        return
    retired = Path(tempfile.mkdtemp(prefix=f".{out.name}.old-", dir=out.parent))
    retired.rmdir()
    out.rename(retired)
    staging.rename(out)
    shutil.rmtree(retired, ignore_errors=True)


def _passage_record(passage: Passage) -> dict[str, object]:
    return {
        "doc_id": passage.doc_id,
        "chunk_id": passage.chunk_id,
        "start": passage.start,
        "end": passage.end,
        "text": passage.text,
    }


def _document_record(document: Document) -> dict[str, object]:
    return {"doc_id": document.doc_id, "title": document.title, "text": document.text}


def _document_from(record: dict[str, Any]) -> Document:
    return Document(
        doc_id=str(record["doc_id"]), title=str(record["title"]), text=str(record["text"])
    )


def _passage_from(record: dict[str, Any]) -> Passage:
    return Passage(
        doc_id=str(record["doc_id"]),
        chunk_id=int(record["chunk_id"]),
        start=int(record["start"]),
        end=int(record["end"]),
        text=str(record["text"]),
    )


def _write_jsonl(path: Path, records: Iterable[dict[str, object]]) -> None:
    with path.open("w", encoding="utf-8") as handle:
        for record in records:
            handle.write(json.dumps(record, ensure_ascii=False) + "\n")


def _read_jsonl(path: Path) -> Iterator[dict[str, Any]]:
    with path.open(encoding="utf-8") as handle:
        for line in handle:
            if line.strip():
                yield json.loads(line)
