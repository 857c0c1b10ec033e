"""The store's three collections (``<name>_passages``, ``_documents``, ``_meta``: the store's
docstring says what each holds): their schemas and indexes, the rows a write inserts (with the
size limits Milvus sets), and the passages a search or lookup reads back.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from functools import partial
from typing import TYPE_CHECKING, Any

from indexer.manifest import Manifest
from indexer.stores.base import DocumentRefusedError, IndexedDocument, StoreUnavailableError
from indexer.stores.milvus.client import (
    DELETE_BATCH,
    MilvusTarget,
    call,
    collection_names,
    parse_index_params,
)
from indexer.stores.milvus.filters import typed_fields
from indexer.stores.milvus.terms import OUR_TERMS, KeywordField
from indexer.stores.milvus.writes import OldRows
from indexer.types import DocumentInfo, Passage

if TYPE_CHECKING:
    from pymilvus import MilvusClient

    from indexer.stores.milvus.versions import Version

_MAX_STRING = 65_535  # bytes in one Milvus VARCHAR
_MAX_ID = 4_096  # bytes of a document id (the API allows 512 characters)
_TEXT_PIECE = _MAX_STRING // 4  # characters that always fit, at up to 4 bytes each in UTF-8
_INSERT_BATCH = 512
PAYLOAD = ["doc_id", "chunk_id", "start", "end", "text", "title", "metadata"]
DUMMY_DIM = 2  # Milvus 2.3 wants a vector field in every collection


def create_collections(
    client: MilvusClient,
    target: MilvusTarget,
    manifest: Manifest,
    *,
    full_text: bool,
    keyword: KeywordField = OUR_TERMS,
) -> None:
    """The store's three collections; with ``full_text``, BM25 over ``keyword`` (a store is
    made with our analyser's terms; the other form is that of stores made before)."""
    from pymilvus import DataType, Function, FunctionType

    passages, documents, meta = collection_names(target)
    build, _ = parse_index_params(manifest.store.spec, manifest.store.search_params)

    schema = client.create_schema(auto_id=True)
    schema.add_field("pk", DataType.INT64, is_primary=True)
    schema.add_field("doc_id", DataType.VARCHAR, max_length=_MAX_ID)
    schema.add_field("chunk_id", DataType.INT64)
    schema.add_field("start", DataType.INT64)
    schema.add_field("end", DataType.INT64)
    schema.add_field("seq", DataType.INT64)
    schema.add_field("title", DataType.VARCHAR, max_length=_MAX_STRING)
    schema.add_field("text", DataType.VARCHAR, max_length=_MAX_STRING)
    schema.add_field("metadata", DataType.JSON)
    schema.add_field("fields", DataType.JSON)
    schema.add_field("vector", DataType.FLOAT_VECTOR, dim=manifest.model.dimension)
    index = client.prepare_index_params()
    # Nested, as the BM25 parameters below: Milvus Lite ignores the flat form that pymilvus
    # 3.0.2 sends (describe_index shows no parameters); a 2.3.5 server reads both.
    index.add_index(
        "vector", index_type=manifest.store.spec, metric_type="IP", params={"params": build}
    )
    if full_text:
        schema.add_field(
            keyword.name,
            DataType.VARCHAR,
            max_length=_MAX_STRING,
            enable_analyzer=True,
            analyzer_params=keyword.analyzer_params(manifest.keyword.stemmer),
            description=keyword.description,
        )
        schema.add_field("sparse", DataType.SPARSE_FLOAT_VECTOR)
        schema.add_function(
            Function(
                name="bm25",
                function_type=FunctionType.BM25,
                input_field_names=[keyword.name],
                output_field_names=["sparse"],
            )
        )
        index.add_index(
            "sparse",
            index_type="SPARSE_INVERTED_INDEX",
            metric_type="BM25",
            # Nested: pymilvus 3.0.2 flattens top-level params into pairs Milvus Lite does not
            # read, and it then ranks with k1 = 1.5 whatever the manifest says.
            params={"params": {"bm25_k1": manifest.keyword.k1, "bm25_b": manifest.keyword.b}},
        )
    _create_collection(client, passages, schema, index)

    schema = client.create_schema(auto_id=True)
    schema.add_field("pk", DataType.INT64, is_primary=True)
    schema.add_field("doc_id", DataType.VARCHAR, max_length=_MAX_ID)
    schema.add_field("seq", DataType.INT64)
    schema.add_field("part", DataType.INT64)
    schema.add_field("parts", DataType.INT64)
    schema.add_field("title", DataType.VARCHAR, max_length=_MAX_STRING)
    schema.add_field("text", DataType.VARCHAR, max_length=_MAX_STRING)
    schema.add_field("metadata", DataType.JSON)
    schema.add_field("_v", DataType.FLOAT_VECTOR, dim=DUMMY_DIM)
    _create_collection(client, documents, schema, _dummy_index(client))

    schema = client.create_schema(auto_id=False)
    schema.add_field("key", DataType.VARCHAR, max_length=64, is_primary=True)
    schema.add_field("value", DataType.VARCHAR, max_length=_MAX_STRING)
    schema.add_field("_v", DataType.FLOAT_VECTOR, dim=DUMMY_DIM)
    _create_collection(client, meta, schema, _dummy_index(client))


def _create_collection(client: MilvusClient, name: str, schema: Any, index: Any) -> None:
    """Create and index a collection (``load`` then makes it searchable). The index is built in
    the background: pymilvus's own wait polls every 0.5 s, which made an empty store take 2 s."""
    call(lambda: client.create_collection(name, schema=schema))
    call(lambda: client.create_index(name, index, sync=False))


def load_collections(client: MilvusClient, names: Sequence[str], timeout: float = 300) -> None:
    """Load collections for searching, all at once: a 2.3 server takes ~3 s for each."""
    for name in names:
        call(partial(client.load_collection, name, _async=True))
    deadline = time.monotonic() + timeout
    for name in names:
        while "Loaded" not in str(call(partial(client.get_load_state, name)).get("state")):
            if time.monotonic() > deadline:
                raise StoreUnavailableError(f"Milvus did not load {name} in {timeout:.0f} s")
            time.sleep(0.05)


def _dummy_index(client: MilvusClient) -> Any:
    index = client.prepare_index_params()
    index.add_index("_v", index_type="FLAT", metric_type="L2")
    return index


def insert_documents(
    client: MilvusClient,
    version: Version,
    documents: Sequence[tuple[int, IndexedDocument]],
    keys: dict[str, OldRows] | None = None,
) -> int:
    """Insert the rows of ``documents`` into ``version``, each with its write's sequence
    number, in shared batches; the passages written. With ``keys``, each document's new rows
    go there."""
    passages, documents_collection = version.passages, version.documents
    passage_rows: list[dict[str, Any]] = []
    document_rows: list[dict[str, Any]] = []
    written = 0

    def flush(force: bool) -> None:
        nonlocal passage_rows, document_rows, written
        if passage_rows and (force or len(passage_rows) >= _INSERT_BATCH):
            rows, passage_rows = passage_rows, []
            done = call(lambda: client.insert(passages, rows))
            written += len(rows)
            if keys is not None:
                for row, pk in zip(rows, done["ids"], strict=True):
                    keys.setdefault(row["doc_id"], OldRows(True)).passages.append((pk, row["seq"]))
        if document_rows and (force or len(document_rows) >= _INSERT_BATCH):
            rows, document_rows = document_rows, []
            done = call(lambda: client.insert(documents_collection, rows))
            if keys is not None:
                for row, pk in zip(rows, done["ids"], strict=True):
                    keys.setdefault(row["doc_id"], OldRows(True)).documents.append((pk, row["seq"]))

    for seq, item in documents:
        passage_part, document_part = rows_of(version, seq, item)
        passage_rows += passage_part
        document_rows += document_part
        flush(force=False)
    flush(force=True)
    return written


def rows_of(
    version: Version, seq: int, item: IndexedDocument
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The rows a write of ``item`` at ``seq`` makes in ``version``: its passages' and its
    text's (in pieces). The one place rows are made: inserts and bulk imports both take them."""
    document = item.document
    metadata = dict(document.metadata)
    fields = typed_fields(metadata)
    passage_rows: list[dict[str, Any]] = []
    for passage, vector in zip(item.passages, item.vectors, strict=True):
        row: dict[str, Any] = {
            "doc_id": document.doc_id,
            "chunk_id": passage.chunk_id,
            "start": passage.start,
            "end": passage.end,
            "seq": seq,
            "title": document.title,
            "text": passage.text,
            "metadata": metadata,
            "fields": fields,
            "vector": vector.tolist(),
        }
        if version.full_text:
            row[version.keyword.name] = version.keyword_input(passage, document.title)
        passage_rows.append(row)
    pieces = [
        document.text[i : i + _TEXT_PIECE] for i in range(0, len(document.text), _TEXT_PIECE)
    ] or [""]
    document_rows = [
        {
            "doc_id": document.doc_id,
            "seq": seq,
            "part": part,
            "parts": len(pieces),
            "title": document.title,
            "text": piece,
            "metadata": metadata,
            "_v": [0.0] * DUMMY_DIM,
        }
        for part, piece in enumerate(pieces)
    ]
    return passage_rows, document_rows


def delete_rows(client: MilvusClient, keys: Mapping[str, list[int]]) -> None:
    """Delete rows by primary key, by collection (a delete by any other expression makes
    Milvus query first, which waits for a time tick)."""
    for collection, pks in keys.items():
        for start in range(0, len(pks), DELETE_BATCH):
            batch = pks[start : start + DELETE_BATCH]
            call(partial(client.delete, collection, ids=batch))


def check_fits(item: IndexedDocument, version: Version) -> None:
    """Refuse a document whose strings Milvus cannot hold in ``version``, before anything is
    written."""
    document = item.document
    fields = [("its id", document.doc_id, _MAX_ID), ("its title", document.title, _MAX_STRING)]
    for passage in item.passages:
        fields.append((f"passage {passage.chunk_id}", passage.text, _MAX_STRING))
        if version.full_text:
            keyword = version.keyword_input(passage, document.title)
            what = f"passage {passage.chunk_id}'s keyword terms (with its title)"
            fields.append((what, keyword, _MAX_STRING))
    for what, text, limit in fields:
        size = len(text.encode("utf-8"))
        if size > limit:
            raise DocumentRefusedError(
                f"document {document.doc_id[:100]!r}: {what} is {size} bytes in UTF-8; Milvus "
                f"holds at most {limit} (a run of text without spaces makes one huge passage)"
            )


def meta_row(key: str, value: str) -> dict[str, Any]:
    return {"key": key, "value": value, "_v": [0.0] * DUMMY_DIM}


def payload_of(entity: Mapping[str, Any]) -> tuple[Passage, DocumentInfo]:
    passage = Passage(
        entity["doc_id"], entity["chunk_id"], entity["start"], entity["end"], entity["text"]
    )
    return passage, DocumentInfo(entity["doc_id"], entity["title"], entity["metadata"] or {})


def one_copy(hits: Sequence[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """Each passage once: where two copies of a document are in (two replicas' writes of one
    moment, or a replacement between its insert and its delete), the one inserted last."""
    latest: dict[tuple[str, int], int] = {}
    for hit in hits:
        key = (hit["entity"]["doc_id"], hit["entity"]["chunk_id"])
        latest[key] = max(latest.get(key, -1), int(hit["pk"]))
    if len(latest) == len(hits):
        return list(hits)
    keep = set(latest.values())
    return [hit for hit in hits if int(hit["pk"]) in keep]
