"""``/documents``: what is indexed, and the full text a passage's offsets point into."""

from __future__ import annotations

from itertools import islice
from typing import Annotated

from fastapi import APIRouter, HTTPException, Query, status

from app.deps import IndexDep
from app.schemas import DocumentDetail, DocumentList, DocumentSummary, PassageSpan

router = APIRouter(tags=["documents"])


@router.get("/documents", response_model=DocumentList, summary="List documents")
def list_documents(
    index: IndexDep,
    limit: Annotated[int, Query(ge=1, le=1000, description="Documents per page.")] = 100,
    offset: Annotated[int, Query(ge=0, description="Documents to skip.")] = 0,
) -> DocumentList:
    """Indexed documents in index order, with their titles and sizes."""
    page = islice(index.documents.values(), offset, offset + limit)
    return DocumentList(
        total=len(index.documents),
        documents=[
            DocumentSummary(
                doc_id=d.doc_id,
                title=d.title,
                chars=len(d.text),
                passages=index.passage_count(d.doc_id),
            )
            for d in page
        ],
    )


@router.get(
    "/documents/{doc_id:path}",
    response_model=DocumentDetail,
    summary="Get one document",
    responses={404: {"description": "No document with this id."}},
)
def get_document(doc_id: str, index: IndexDep) -> DocumentDetail:
    """The full text of one document; search results' `start`/`end` index into `text`."""
    document = index.documents.get(doc_id)
    if document is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no document with id {doc_id!r}")
    rows = index.rows_of([doc_id])
    return DocumentDetail(
        doc_id=document.doc_id,
        title=document.title,
        text=document.text,
        chars=len(document.text),
        passages=[
            PassageSpan(chunk_id=p.chunk_id, start=p.start, end=p.end)
            for p in (index.passages[row] for row in rows)
        ],
    )
