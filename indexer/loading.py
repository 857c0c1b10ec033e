"""Read a corpus from disk: plain ``.txt`` articles and BEIR-style ``.jsonl`` files.

A bad file or line is reported and skipped; one broken article must not stop a build.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from indexer.metadata import MetadataError, validate_metadata
from indexer.types import Document

SUPPORTED_SUFFIXES = (".txt", ".jsonl")


@dataclass(frozen=True, slots=True)
class Skipped:
    """Something that was not loaded, and why."""

    where: str
    reason: str


@dataclass(slots=True)
class Corpus:
    documents: list[Document] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)


def document_checksum(document: Document) -> str:
    """A fingerprint of what gets indexed; a changed checksum means a stale index."""
    payload = f"{document.title}\x1f{document.text}"
    if document.metadata:  # so that indexes of documents without metadata keep their sums
        payload += "\x1f" + json.dumps(document.metadata, sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(payload.encode()).hexdigest()


def load_corpus(source: Path) -> Corpus:
    """Load every supported file in ``source`` (a file, or a directory searched recursively).

    Document ids are file names relative to ``source`` for ``.txt`` files and the ``_id``
    field for ``.jsonl`` records, which may also carry ``metadata`` (a flat object). Files
    are read in sorted order so builds are reproducible. Of a BEIR collection, only the
    corpus is read.
    """
    if not source.exists():
        raise FileNotFoundError(f"corpus source {source} does not exist")
    corpus = Corpus()
    seen: set[str] = set()
    for path, doc_id_base in _corpus_files(source):
        for item in _load_file(path, doc_id_base):
            if isinstance(item, Skipped):
                corpus.skipped.append(item)
            elif item.doc_id in seen:
                corpus.skipped.append(Skipped(f"{path}:{item.doc_id}", "duplicate document id"))
            else:
                seen.add(item.doc_id)
                corpus.documents.append(item)
    return corpus


def _corpus_files(source: Path) -> Iterator[tuple[Path, str]]:
    if source.is_file():
        yield source, source.name
        return
    if is_beir_collection(source):  # its queries and judgements are not documents
        yield source / "corpus.jsonl", "corpus.jsonl"
        return
    for path in sorted(source.rglob("*")):
        relative = path.relative_to(source)
        if path.is_dir() or any(part.startswith(".") for part in relative.parts):
            continue
        yield path, relative.as_posix()


def is_beir_collection(source: Path) -> bool:
    """A relevance collection in BEIR's layout (corpus.jsonl, queries.jsonl, qrels/)."""
    return all((source / name).exists() for name in ("corpus.jsonl", "queries.jsonl", "qrels"))


def _load_file(path: Path, doc_id: str) -> Iterator[Document | Skipped]:
    if path.suffix not in SUPPORTED_SUFFIXES:
        yield Skipped(str(path), f"unsupported file type (expected one of {SUPPORTED_SUFFIXES})")
        return
    try:
        raw = path.read_bytes()
    except OSError as error:
        yield Skipped(str(path), f"unreadable: {error.strerror or error}")
        return
    try:
        # Decode without newline translation: offsets must match the bytes on disk.
        text = raw.decode("utf-8").removeprefix("\ufeff")
    except UnicodeDecodeError as error:
        yield Skipped(str(path), f"not UTF-8 (invalid byte at offset {error.start})")
        return
    if path.suffix == ".txt":
        yield _text_document(path, doc_id, text)
    else:
        yield from _jsonl_documents(path, text)


def _text_document(path: Path, doc_id: str, text: str) -> Document | Skipped:
    title = next((line.strip() for line in text.splitlines() if line.strip()), "")
    if not title:
        return Skipped(str(path), "empty file")
    return Document(doc_id=doc_id, title=title, text=text)


def _jsonl_documents(path: Path, text: str) -> Iterator[Document | Skipped]:
    for line_number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        where = f"{path}:{line_number}"
        try:
            record = json.loads(line)
        except json.JSONDecodeError as error:
            yield Skipped(where, f"invalid JSON ({error.msg})")
            continue
        if not isinstance(record, dict):
            yield Skipped(where, "record is not a JSON object")
            continue
        doc_id, title, body = record.get("_id"), record.get("title") or "", record.get("text")
        if not isinstance(doc_id, str | int) or str(doc_id) == "":
            yield Skipped(where, "missing '_id'")
        elif not isinstance(body, str) or not body.strip():
            yield Skipped(where, "missing or empty 'text'")
        elif not isinstance(title, str):
            yield Skipped(where, "'title' is not a string")
        else:
            try:
                metadata = validate_metadata(record.get("metadata"))
            except MetadataError as error:
                yield Skipped(where, str(error))
                continue
            yield Document(
                doc_id=str(doc_id),
                title=title.strip() or str(doc_id),
                text=body,
                metadata=metadata,
            )
