"""Writes as translog records: everything needed to replay them without the model.

A put carries the document, its passage offsets and the passages' vectors, so a restart
replays thousands of writes in seconds instead of embedding them again. Layout of a record:
8-byte sequence number, 4-byte header length, a JSON header, then the vectors as raw
little-endian float32. The sequence number goes in front so that the body can be encoded
outside the store's lock and numbered inside it.
"""

from __future__ import annotations

import json
import struct
from dataclasses import dataclass

import numpy as np

from indexer.stores.base import IndexedDocument
from indexer.types import Document, Passage

_SEQ = struct.Struct("<Q")
_HEADER = struct.Struct("<I")


@dataclass(frozen=True, slots=True)
class Put:
    seq: int
    item: IndexedDocument


@dataclass(frozen=True, slots=True)
class Delete:
    seq: int
    doc_id: str


Operation = Put | Delete


def encode_put(item: IndexedDocument) -> bytes:
    """A put's record body (without its sequence number)."""
    document = item.document
    header = {
        "op": "put",
        "doc_id": document.doc_id,
        "title": document.title,
        "text": document.text,
        "metadata": dict(document.metadata),
        "passages": [[p.start, p.end] for p in item.passages],
        "dimension": int(item.vectors.shape[1]),
    }
    vectors = np.ascontiguousarray(item.vectors, dtype="<f4").tobytes()
    return _body(header) + vectors


def encode_delete(doc_id: str) -> bytes:
    return _body({"op": "delete", "doc_id": doc_id})


def numbered(seq: int, body: bytes) -> bytes:
    return _SEQ.pack(seq) + body


def seq_of(record: bytes) -> int:
    """A record's sequence number, without decoding the rest."""
    (seq,) = _SEQ.unpack_from(record)
    return int(seq)


def decode(record: bytes) -> Operation:
    seq = seq_of(record)
    (length,) = _HEADER.unpack_from(record, _SEQ.size)
    start = _SEQ.size + _HEADER.size
    header = json.loads(record[start : start + length])
    if header["op"] == "delete":
        return Delete(seq, str(header["doc_id"]))
    if header["op"] != "put":
        raise ValueError(f"unknown operation {header['op']!r} in the translog")
    document = Document(
        doc_id=header["doc_id"],
        title=header["title"],
        text=header["text"],
        metadata=header["metadata"],
    )
    passages = tuple(
        Passage(document.doc_id, chunk_id, start, end, document.text[start:end])
        for chunk_id, (start, end) in enumerate(header["passages"])
    )
    vectors = np.frombuffer(record, dtype="<f4", offset=start + length)
    vectors = vectors.reshape(len(passages), header["dimension"]).astype(np.float32)
    return Put(seq, IndexedDocument(document, passages, vectors))


def _body(header: dict[str, object]) -> bytes:
    encoded = json.dumps(header, ensure_ascii=False, separators=(",", ":")).encode()
    return _HEADER.pack(len(encoded)) + encoded
