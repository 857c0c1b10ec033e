"""Request dependencies: the service state, and the parts of it a route needs.

They are ``async``: none of them blocks, and FastAPI would run a plain ``def`` dependency in its
threadpool, a thread hop per dependency per request.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, HTTPException, Request, status
from prometheus_client import Histogram

from app.service import SearchService
from indexer.search import Searcher
from indexer.stores import Reader, Store


async def get_service(request: Request) -> SearchService:
    service: SearchService = request.app.state.service
    return service


ServiceDep = Annotated[SearchService, Depends(get_service)]


def _open_store(service: SearchService) -> Store:
    if service.store is None:
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, "the index is not open yet")
    return service.store


async def get_reader(service: ServiceDep) -> Reader:
    """The latest published view of the index."""
    return _open_store(service).reader()


def _model_needed(service: SearchService) -> HTTPException:
    detail = service.load_error or "the model is still loading; retry in a few seconds"
    return HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, detail, headers={"Retry-After": "2"})


async def get_searcher(service: ServiceDep) -> Searcher:
    if service.searcher is None:
        raise _model_needed(service)
    return service.searcher


async def get_deleter(service: ServiceDep) -> SearchService:
    """The service, if its index takes writes (deletes need no model)."""
    problem = _open_store(service).read_only
    if problem is not None:
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, f"writes are disabled: {problem}")
    return service


async def get_writer(service: ServiceDep) -> SearchService:
    """The service, once it can write documents: the index takes writes, the model is loaded."""
    await get_deleter(service)
    if service.preparer is None:
        raise _model_needed(service)
    return service


async def require_json(request: Request) -> None:
    """Runs before the body is parsed, so a form post gets 415 rather than a confusing 422."""
    media_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media_type != "application/json" and not media_type.endswith("+json"):
        raise HTTPException(
            status.HTTP_415_UNSUPPORTED_MEDIA_TYPE,
            "send the request body as JSON (Content-Type: application/json), "
            f"not {media_type or 'nothing'}",
        )


async def get_search_latency(request: Request) -> Histogram:
    latency: Histogram = request.app.state.search_latency
    return latency


ReaderDep = Annotated[Reader, Depends(get_reader)]
SearcherDep = Annotated[Searcher, Depends(get_searcher)]
WriterDep = Annotated[SearchService, Depends(get_writer)]
DeleterDep = Annotated[SearchService, Depends(get_deleter)]
LatencyDep = Annotated[Histogram, Depends(get_search_latency)]
