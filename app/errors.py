"""Every error leaves as JSON with a ``detail``; internals never reach the client."""

from __future__ import annotations

import logging
import re

from fastapi import FastAPI, Request, status
from fastapi.exception_handlers import http_exception_handler
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from app.keys import ScopeError
from app.logs import REQUEST_ID_HEADER, current_request_id
from app.service import WriteTimeoutError
from indexer.stores.base import (
    DocumentRefusedError,
    OutOfScopeError,
    ReadOnlyStoreError,
    SearchUnsupportedError,
    StorageFullError,
    StoreUnavailableError,
    StoreWriteError,
)

logger = logging.getLogger("app")


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, error: StarletteHTTPException) -> Response:
        if error.status_code == status.HTTP_405_METHOD_NOT_ALLOWED:
            # Starlette's Allow names the methods of the first route on the path only; /search
            # has a GET and a POST route, and a client told "GET" would never try POST.
            allowed = _documented_methods(request) or [(error.headers or {}).get("Allow", "GET")]
            return JSONResponse(
                {"detail": f"{request.method} is not allowed here; use {', '.join(allowed)}"},
                status_code=error.status_code,
                headers={"Allow": ", ".join(allowed)},
            )
        return await http_exception_handler(request, error)

    @app.exception_handler(StoreWriteError)
    async def write_failed(request: Request, error: StoreWriteError) -> JSONResponse:
        # Nothing of the write was applied; searches and reads go on.
        logger.error("write refused on %s %s: %s", request.method, request.url.path, error)
        code = status.HTTP_503_SERVICE_UNAVAILABLE
        if isinstance(error, StorageFullError):
            code = status.HTTP_507_INSUFFICIENT_STORAGE
        detail = str(error)
        if isinstance(error, ReadOnlyStoreError) and not detail.startswith("writes are disabled"):
            detail = f"writes are disabled: {detail}"
        return JSONResponse({"detail": detail}, status_code=code)

    @app.exception_handler(StoreUnavailableError)
    async def store_unavailable(request: Request, error: StoreUnavailableError) -> JSONResponse:
        # Milvus down or overloaded: the client may retry (a proxy may try another replica).
        logger.error("the store failed on %s %s: %s", request.method, request.url.path, error)
        return JSONResponse(
            {"detail": f"the index store is unavailable: {error}"},
            status_code=status.HTTP_503_SERVICE_UNAVAILABLE,
            headers={"Retry-After": "2"},
        )

    @app.exception_handler(DocumentRefusedError)
    async def refused(request: Request, error: DocumentRefusedError) -> JSONResponse:
        return JSONResponse(
            {"detail": str(error)}, status_code=status.HTTP_422_UNPROCESSABLE_ENTITY
        )

    @app.exception_handler(OutOfScopeError)
    async def out_of_scope(request: Request, error: OutOfScopeError) -> JSONResponse:
        # Ids are shared by every tenant of the index: the id is taken, and nothing was written.
        return JSONResponse({"detail": str(error)}, status_code=status.HTTP_409_CONFLICT)

    @app.exception_handler(ScopeError)
    async def outside_scope(request: Request, error: ScopeError) -> JSONResponse:
        return JSONResponse({"detail": str(error)}, status_code=status.HTTP_403_FORBIDDEN)

    @app.exception_handler(SearchUnsupportedError)
    async def unsupported(request: Request, error: SearchUnsupportedError) -> JSONResponse:
        return JSONResponse({"detail": str(error)}, status_code=status.HTTP_400_BAD_REQUEST)

    @app.exception_handler(WriteTimeoutError)
    async def not_visible_in_time(request: Request, error: WriteTimeoutError) -> JSONResponse:
        return JSONResponse({"detail": str(error)}, status_code=status.HTTP_504_GATEWAY_TIMEOUT)

    @app.exception_handler(Exception)
    async def unexpected_error(request: Request, error: Exception) -> JSONResponse:
        logger.exception("unhandled error on %s %s", request.method, request.url.path)
        # Starlette answers this one outside the request-id middleware: echo the id here.
        request_id = current_request_id()
        return JSONResponse(
            {"detail": "internal error; the server log has the details"},
            status_code=status.HTTP_500_INTERNAL_SERVER_ERROR,
            headers={REQUEST_ID_HEADER: request_id} if request_id else None,
        )


def _documented_methods(request: Request) -> list[str]:
    """The methods the OpenAPI schema gives the request's path (none for undocumented paths)."""
    path, root = request.scope["path"], request.scope.get("root_path", "")
    path = path[len(root) :] if root and path.startswith(root) else path
    for template, operations in request.app.openapi()["paths"].items():
        # A parameter matches any non-empty text: doc ids may hold slashes ({doc_id:path}).
        if re.fullmatch(re.sub(r"\\{[^}]*\\}", ".+", re.escape(template)), path):
            return sorted(method.upper() for method in operations)
    return []
