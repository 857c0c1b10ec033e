"""``/documents``: what is indexed, the full text offsets point into, and writes.

Reads of one document are real-time (the latest write, searchable or not yet); the listing,
like searches, shows what the last refresh published. Deletes are visible at once.
"""

from __future__ import annotations

import time
from typing import Annotated

from fastapi import APIRouter, Body, Depends, HTTPException, Path, Query, Response, status

from app.deps import DeleterDep, ReaderDep, ServiceDep, WriterDep, require_json
from app.query_filter import (
    FILTER_PARAMETER,
    REQUIRED_FILTER_PARAMETER,
    QueryFilterDep,
    RequiredFilterDep,
)
from app.schemas.documents import (
    DOC_ID_PATTERN,
    MAX_BULK_DOCUMENTS,
    BulkItem,
    BulkRequest,
    BulkResponse,
    DeleteByFilterResponse,
    DocumentDetail,
    DocumentIn,
    DocumentList,
    DocumentSummary,
    PassageSpan,
    RefreshParam,
    WriteResponse,
)
from app.security import ReadCaller, ReadKey, WriteCaller, WriteKey
from indexer.types import Document, StoredDocument

router = APIRouter(tags=["documents"])

# Pages deeper than this are refused rather than walked (and a huge number is a 422, not a 500).
MAX_LIST_OFFSET = 10_000_000

DocIdPath = Annotated[str, Path(max_length=512, pattern=DOC_ID_PATTERN)]

_READ_ERRORS: dict[int | str, dict[str, object]] = {
    401: {"description": "A read key is configured (SEARCH_READ_API_KEY) and none was sent."},
    403: {"description": "The key sent is not valid."},
    503: {"description": "The index is not open yet."},
}
_WRITE_ERRORS: dict[int | str, dict[str, object]] = {
    400: {"description": "The body cannot be read as JSON text (it is not UTF-8)."},
    401: {"description": "No API key was sent."},
    403: {
        "description": "The key is wrong or may not write, writes are disabled (no write key), "
        "or the document is outside the key's scope; nothing was written."
    },
    409: {
        "description": "The id is taken by a document outside the key's scope (ids are shared "
        "by every tenant); nothing was written."
    },
    413: {"description": "The body is too large (SEARCH_MAX_BODY_BYTES)."},
    415: {"description": "The body is not JSON."},
    422: {"description": "Invalid document: the detail names the field."},
    503: {
        "description": "The model is still loading, or the index is read-only; nothing was written."
    },
    507: {"description": "The disk holding the index is full; nothing was written."},
}


@router.get(
    "/documents",
    response_model=DocumentList,
    summary="List documents",
    dependencies=[ReadKey],
    responses={
        400: {"description": "The URL is over 64 KiB."},
        422: {"description": "Invalid parameters or filter."},
        **_READ_ERRORS,
    },
    openapi_extra={"parameters": [FILTER_PARAMETER]},
)
def list_documents(
    reader: ReaderDep,
    caller: ReadCaller,
    limit: Annotated[int, Query(ge=1, le=1000, description="Documents per page.")] = 100,
    offset: Annotated[int, Query(ge=0, le=MAX_LIST_OFFSET, description="Documents to skip.")] = 0,
    filter: QueryFilterDep = None,
) -> DocumentList:
    """Searchable documents in the order they were written (a replaced one moves to the end),
    with their titles, sizes and metadata; with `filter`, only those matching it."""
    filter = caller.within(filter)
    return DocumentList(
        total=reader.count_documents(filter),
        documents=[_summary(stored) for stored in reader.documents(offset, limit, filter)],
    )


@router.get(
    "/documents/{doc_id:path}",
    response_model=DocumentDetail,
    summary="Get one document",
    dependencies=[ReadKey],
    responses={
        404: {"description": "No document with this id (that the key may see)."},
        **_READ_ERRORS,
    },
)
def get_document(doc_id: str, service: ServiceDep, caller: ReadCaller) -> DocumentDetail:
    """The full text of one document, as last written; search results' `start`/`end` index
    into `text`."""
    stored = service.get(doc_id) if service.store is not None else None
    if stored is None or not caller.sees(stored.document):
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no document with id {doc_id!r}")
    document = stored.document
    return DocumentDetail(
        doc_id=document.doc_id,
        title=document.title,
        text=document.text,
        chars=len(document.text),
        metadata=dict(document.metadata),
        passages=[
            PassageSpan(chunk_id=p.chunk_id, start=p.start, end=p.end) for p in stored.passages
        ],
    )


@router.put(
    "/documents/{doc_id:path}",
    response_model=WriteResponse,
    status_code=status.HTTP_201_CREATED,
    summary="Add or replace a document",
    dependencies=[WriteKey, Depends(require_json)],
    responses={
        200: {"model": WriteResponse, "description": "Replaced an existing document."},
        201: {"description": "Created."},
        **_WRITE_ERRORS,
    },
)
def put_document(
    doc_id: DocIdPath,
    document: Annotated[DocumentIn, Body()],
    writer: WriterDep,
    caller: WriteCaller,
    response: Response,
    refresh: Annotated[RefreshParam, Query()] = "false",
) -> WriteResponse:
    """Chunked, embedded and keyword-indexed with the index's own settings, durable when this
    returns. Needs a write key."""
    seq, existed, passages = writer.write(
        [caller.stamp(Document(doc_id, document.title, document.text, document.metadata))],
        wait=refresh == "wait_for",
        guard=caller.scope,
    )
    response.status_code = status.HTTP_200_OK if existed[0] else status.HTTP_201_CREATED
    return WriteResponse(
        doc_id=doc_id,
        result="replaced" if existed[0] else "created",
        passages=passages[0],
        seq=seq,
    )


@router.post(
    "/documents",
    response_model=BulkResponse,
    summary=f"Add or replace up to {MAX_BULK_DOCUMENTS} documents",
    dependencies=[WriteKey, Depends(require_json)],
    responses=_WRITE_ERRORS,
)
def put_documents(
    body: BulkRequest,
    writer: WriterDep,
    caller: WriteCaller,
    refresh: Annotated[RefreshParam, Query()] = "false",
) -> BulkResponse:
    """All documents are validated first (one invalid document: 422, nothing written), then
    embedded together and written with one fsync. Needs a write key."""
    started = time.perf_counter()
    documents = [
        caller.stamp(Document(d.doc_id, d.title, d.text, d.metadata)) for d in body.documents
    ]
    seq, existed, passages = writer.write(documents, wait=refresh == "wait_for", guard=caller.scope)
    return BulkResponse(
        seq=seq,
        took_ms=round((time.perf_counter() - started) * 1000, 3),
        items=[
            BulkItem(
                doc_id=document.doc_id,
                status=200 if replaced else 201,
                result="replaced" if replaced else "created",
                passages=count,
            )
            for document, replaced, count in zip(documents, existed, passages, strict=True)
        ],
    )


@router.delete(
    "/documents",
    response_model=DeleteByFilterResponse,
    summary="Delete the documents matching a filter",
    dependencies=[WriteKey],
    responses={
        400: {"description": "The URL is over 64 KiB."},
        422: {"description": "A missing, empty or invalid filter: the detail names the problem."},
        **{code: _WRITE_ERRORS[code] for code in (401, 403, 503, 507)},
    },
    openapi_extra={"parameters": [REQUIRED_FILTER_PARAMETER]},
)
def delete_documents(
    filter: RequiredFilterDep, writer: DeleterDep, caller: WriteCaller
) -> DeleteByFilterResponse:
    """Every document matching `filter` (as in searches; writes acknowledged before this
    request included), e.g. articles past their retention date. Durable, and gone from every
    search and listing, when this returns. Needs a write key."""
    started = time.perf_counter()
    deleted, seq = writer.delete_matching(filter, guard=caller.scope)
    return DeleteByFilterResponse(
        deleted=deleted, seq=seq, took_ms=round((time.perf_counter() - started) * 1000, 3)
    )


@router.delete(
    "/documents/{doc_id:path}",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Delete a document",
    dependencies=[WriteKey],
    responses={
        404: {"description": "No document with this id (that the key may see)."},
        **{code: _WRITE_ERRORS[code] for code in (401, 403, 503, 507)},
    },
)
def delete_document(doc_id: DocIdPath, writer: DeleterDep, caller: WriteCaller) -> Response:
    """Durable, and gone from every search and listing, when this returns. Needs a write key."""
    if not writer.delete(doc_id, guard=caller.scope):
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no document with id {doc_id!r}")
    return Response(status_code=status.HTTP_204_NO_CONTENT)


def _summary(stored: StoredDocument) -> DocumentSummary:
    document = stored.document
    return DocumentSummary(
        doc_id=document.doc_id,
        title=document.title,
        chars=len(document.text),
        passages=len(stored.passages),
        metadata=dict(document.metadata),
    )
