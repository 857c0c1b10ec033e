"""``/search``: ranked passages for a natural-language query (GET for links, POST for clients)."""

from __future__ import annotations

import time
from typing import Annotated

from fastapi import APIRouter, Body, Depends, Query
from fastapi.exceptions import RequestValidationError
from prometheus_client import Histogram
from pydantic import ValidationError

from app.deps import LatencyDep, SearcherDep, require_json
from app.keys import Caller
from app.query_filter import FILTER_PARAMETER, QueryFilterDep
from app.schemas.common import FILTER_SCHEMA
from app.schemas.search import (
    EXAMPLE_QUERY,
    BatchSearchRequest,
    BatchSearchResponse,
    GroupByParam,
    MinScoreParam,
    Offset,
    QueryText,
    Ranks,
    Scores,
    SearchMode,
    SearchRequest,
    SearchResponse,
    SearchResult,
    SourcesParam,
    TopK,
)
from app.security import ReadCaller, ReadKey
from indexer.search import DEFAULT_MODE, Searcher
from indexer.search import Query as CoreQuery
from indexer.types import Hit

router = APIRouter(tags=["search"], dependencies=[ReadKey])

_ERRORS: dict[int | str, dict[str, object]] = {
    400: {
        "description": "The request cannot be parsed: its URL is over 64 KiB (send long "
        "filters with POST /search), or its body is not UTF-8 JSON text."
    },
    401: {"description": "A read key is configured (SEARCH_READ_API_KEY) and none was sent."},
    403: {"description": "The key sent is not valid."},
    422: {"description": "Invalid parameters or filter: the detail names the problem."},
    503: {"description": "The model is still loading."},
}
_JSON_ERRORS: dict[int | str, dict[str, object]] = {
    **_ERRORS,
    413: {"description": "The body is too large."},
    415: {"description": "The body is not JSON."},
}


@router.get(
    "/search",
    response_model=SearchResponse,
    responses=_ERRORS,
    summary="Search (query string)",
    openapi_extra={"parameters": [FILTER_PARAMETER]},
)
def search_get(
    searcher: SearcherDep,
    latency: LatencyDep,
    caller: ReadCaller,
    q: Annotated[QueryText, Query(openapi_examples={"example": {"value": EXAMPLE_QUERY}})],
    k: Annotated[TopK, Query()] = 5,
    offset: Annotated[Offset, Query()] = 0,
    mode: Annotated[SearchMode, Query()] = DEFAULT_MODE,
    source: Annotated[SourcesParam, Query()] = None,
    min_score: Annotated[MinScoreParam, Query()] = None,
    group_by: Annotated[GroupByParam, Query()] = None,
    filter: QueryFilterDep = None,
) -> SearchResponse:
    """Search with query parameters, e.g. `/search?q=Russian+military+presence&k=5`."""
    try:
        request = SearchRequest(
            query=q,
            k=k,
            offset=offset,
            mode=mode,
            filter=filter,
            source=source,
            min_score=min_score,
            group_by=group_by,
        )
    except ValidationError as error:  # the checks that span several parameters
        raise RequestValidationError(error.errors(include_url=False)) from None
    return _answer(searcher, latency, caller, [request])[0]


@router.post(
    "/search",
    summary="Search (JSON body)",
    response_model=SearchResponse,
    responses=_JSON_ERRORS,
    dependencies=[Depends(require_json)],
)
def search_post(
    searcher: SearcherDep,
    latency: LatencyDep,
    caller: ReadCaller,
    request: Annotated[
        SearchRequest,
        Body(
            openapi_examples={
                "simple": {"summary": "A question", "value": {"query": EXAMPLE_QUERY, "k": 5}},
                "filtered": {
                    "summary": "One article, keyword mode, with a score floor",
                    "value": {
                        "query": EXAMPLE_QUERY,
                        "k": 3,
                        "mode": "keyword",
                        "filter": {"doc_id": "004_6fdace10fca785c4.txt"},
                        "min_score": 1.0,
                    },
                },
                "metadata": {
                    "summary": "Filtered on metadata",
                    "value": {
                        "query": EXAMPLE_QUERY,
                        "filter": FILTER_SCHEMA["examples"][0],
                    },
                },
                "grouped": {
                    "summary": "Best passage per document",
                    "value": {"query": EXAMPLE_QUERY, "k": 5, "group_by": "document"},
                },
            }
        ),
    ],
) -> SearchResponse:
    """Search with a JSON body; same parameters and response as GET."""
    return _answer(searcher, latency, caller, [request])[0]


@router.post(
    "/search/batch",
    summary="Several searches at once",
    response_model=BatchSearchResponse,
    responses=_JSON_ERRORS,
    dependencies=[Depends(require_json)],
)
def search_batch(
    searcher: SearcherDep,
    latency: LatencyDep,
    caller: ReadCaller,
    batch: Annotated[
        BatchSearchRequest,
        Body(
            openapi_examples={
                "two": {
                    "summary": "Two questions",
                    "value": {
                        "searches": [
                            {"query": EXAMPLE_QUERY, "k": 3},
                            {"query": "sanctions and medicine shortages", "k": 3},
                        ]
                    },
                }
            }
        ),
    ],
) -> BatchSearchResponse:
    """Up to 32 searches answered together: their queries are embedded in one batch."""
    started = time.perf_counter()
    responses = _answer(searcher, latency, caller, batch.searches)
    return BatchSearchResponse(took_ms=_elapsed_ms(started), responses=responses)


def _answer(
    searcher: Searcher, latency: Histogram, caller: Caller, requests: list[SearchRequest]
) -> list[SearchResponse]:
    started = time.perf_counter()
    reader = searcher.store.reader()
    pages = searcher.search_in(reader, [_core_query(r, caller) for r in requests])
    seconds = time.perf_counter() - started
    latency.labels(requests[0].mode if len(requests) == 1 else "batch").observe(seconds)
    took_ms = _elapsed_ms(started)
    return [
        SearchResponse(
            query=request.query,
            mode=request.mode,
            took_ms=took_ms,
            total=len(hits),
            results=[_result(hit) for hit in hits],
            index_build=reader.manifest.build_id,
        )
        for request, hits in zip(requests, pages, strict=True)
    ]


def _core_query(request: SearchRequest, caller: Caller) -> CoreQuery:
    return CoreQuery(
        request.query,
        mode=request.mode,
        k=request.k,
        offset=request.offset,
        filter=caller.within(request.effective_filter),
        min_score=request.min_score,
        group_by_document=request.group_by == "document",
    )


def _result(hit: Hit) -> SearchResult:
    passage, evidence = hit.passage, hit.evidence
    return SearchResult(
        rank=hit.rank,
        # Unrounded: a client may feed a score back as min_score and must keep that result.
        score=hit.score,
        text=passage.text,
        title=hit.title,
        doc_id=passage.doc_id,
        metadata=dict(hit.metadata),
        chunk_id=passage.chunk_id,
        start=passage.start,
        end=passage.end,
        scores=Scores(
            semantic=evidence.semantic_score,
            keyword=evidence.keyword_score,
            fused=evidence.fused_score,
        ),
        ranks=Ranks(semantic=evidence.semantic_rank, keyword=evidence.keyword_rank),
        highlights=list(hit.highlights),
        other_matches=hit.other_matches,
    )


def _elapsed_ms(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 3)
