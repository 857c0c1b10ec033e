"""Every error leaves as JSON with a ``detail``; internals never reach the client."""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request, status
from fastapi.responses import JSONResponse

from app.service import WriteTimeoutError
from indexer.stores.base import ReadOnlyStoreError, StorageFullError, StoreWriteError

logger = logging.getLogger("app")


def install_error_handlers(app: FastAPI) -> None:
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

    @app.exception_handler(WriteTimeoutError)
    async def not_visible_in_time(request: Request, error: WriteTimeoutError) -> JSONResponse:
        return JSONResponse({"detail": str(error)}, status_code=status.HTTP_504_GATEWAY_TIMEOUT)

    @app.exception_handler(Exception)
    async def unexpected_error(request: Request, error: Exception) -> JSONResponse:
        logger.exception("unhandled error on %s %s", request.method, request.url.path)
        return JSONResponse(
            {"detail": "internal error; the server log has the details"},
            status_code=status.HTTP_500_INTERNAL_SERVER_ERROR,
        )
