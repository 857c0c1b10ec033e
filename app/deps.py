"""Request dependencies: the service state, and the parts of it a route needs."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, HTTPException, Request, status

from app.service import SearchService
from indexer.index import SearchIndex
from indexer.search import Searcher


def get_service(request: Request) -> SearchService:
    service: SearchService = request.app.state.service
    return service


ServiceDep = Annotated[SearchService, Depends(get_service)]


def get_index(service: ServiceDep) -> SearchIndex:
    if service.index is None:
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, "the index is not loaded yet")
    return service.index


def get_searcher(service: ServiceDep) -> Searcher:
    if service.searcher is None:
        detail = service.load_error or "the model is still loading; retry in a few seconds"
        raise HTTPException(
            status.HTTP_503_SERVICE_UNAVAILABLE, detail, headers={"Retry-After": "2"}
        )
    return service.searcher


def require_json(request: Request) -> None:
    """Runs before the body is parsed, so a form post gets 415 rather than a confusing 422."""
    media_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media_type != "application/json" and not media_type.endswith("+json"):
        raise HTTPException(
            status.HTTP_415_UNSUPPORTED_MEDIA_TYPE,
            "send the request body as JSON (Content-Type: application/json), "
            f"not {media_type or 'nothing'}",
        )


IndexDep = Annotated[SearchIndex, Depends(get_index)]
SearcherDep = Annotated[Searcher, Depends(get_searcher)]
