"""``/search``: ranked passages for a natural-language query (GET for links, POST for clients)."""

from __future__ import annotations

import time
from typing import Annotated

from fastapi import APIRouter, Body, Depends, HTTPException, Query, status

from app.deps import SearcherDep, require_json
from app.schemas import (
    EXAMPLE_QUERY,
    MinScore,
    Offset,
    QueryText,
    SearchRequest,
    SearchResponse,
    SearchResult,
    Sources,
    TopK,
)
from indexer.search import Searcher, UnknownDocumentError

router = APIRouter(tags=["search"])

_ERRORS: dict[int | str, dict[str, object]] = {
    422: {"description": "Invalid parameters, or an unknown document in `source`."},
    503: {"description": "The model is still loading."},
}


@router.get(
    "/search", response_model=SearchResponse, responses=_ERRORS, summary="Search (query string)"
)
def search_get(
    searcher: SearcherDep,
    q: Annotated[QueryText, Query(openapi_examples={"example": {"value": EXAMPLE_QUERY}})],
    k: Annotated[TopK, Query()] = 5,
    offset: Annotated[Offset, Query()] = 0,
    source: Annotated[Sources, Query()] = None,
    min_score: Annotated[MinScore, Query()] = None,
) -> SearchResponse:
    """Search with query parameters, e.g. `/search?q=Russian+military+presence&k=5`."""
    request = SearchRequest(query=q, k=k, offset=offset, source=source, min_score=min_score)
    return _search(searcher, request)


@router.post(
    "/search",
    summary="Search (JSON body)",
    response_model=SearchResponse,
    responses={**_ERRORS, 415: {"description": "The body is not JSON."}},
    dependencies=[Depends(require_json)],
)
def search_post(
    searcher: SearcherDep,
    request: Annotated[
        SearchRequest,
        Body(
            openapi_examples={
                "simple": {"summary": "A question", "value": {"query": EXAMPLE_QUERY, "k": 5}},
                "filtered": {
                    "summary": "Restricted to one article, with a score floor",
                    "value": {
                        "query": EXAMPLE_QUERY,
                        "k": 3,
                        "source": ["004_6fdace10fca785c4.txt"],
                        "min_score": 0.2,
                    },
                },
            }
        ),
    ],
) -> SearchResponse:
    """Search with a JSON body; same parameters and response as GET."""
    return _search(searcher, request)


def _search(searcher: Searcher, request: SearchRequest) -> SearchResponse:
    started = time.perf_counter()
    try:
        hits = searcher.search(
            request.query,
            k=request.k,
            offset=request.offset,
            sources=request.source,
            min_score=request.min_score,
        )
    except UnknownDocumentError as error:
        raise HTTPException(
            status.HTTP_422_UNPROCESSABLE_CONTENT,
            f"unknown document id(s) in source: {', '.join(error.doc_ids)}; see GET /documents",
        ) from None
    took_ms = (time.perf_counter() - started) * 1000
    results = [
        SearchResult(
            rank=hit.rank,
            score=round(hit.score, 6),
            text=hit.passage.text,
            source=hit.passage.doc_id,
            title=hit.title,
            doc_id=hit.passage.doc_id,
            chunk_id=hit.passage.chunk_id,
            start=hit.passage.start,
            end=hit.passage.end,
        )
        for hit in hits
    ]
    return SearchResponse(
        query=request.query, took_ms=round(took_ms, 3), total=len(results), results=results
    )
