"""``/admin/snapshot`` and ``/admin/reindex``, behind an admin key (SEARCH_API_KEY).

``/admin/snapshot``: a consistent archive of the live index, streamed.

The same snapshot as ``python -m indexer snapshot`` (see ``indexer.stores.faiss.snapshot``): the
files are pinned (opened) when the request arrives, so searches and writes go on, a merge
cannot delete what the archive still has to send, and the archive holds every write
acknowledged before the request.

``/admin/reindex``: rebuild the index with new settings or another installed model while it
serves (see ``indexer.reindex``); ``GET`` says how it goes.
"""

from __future__ import annotations

from dataclasses import asdict
from datetime import UTC, datetime

from fastapi import APIRouter, Depends, HTTPException, status
from fastapi.responses import JSONResponse, StreamingResponse
from starlette.background import BackgroundTask

from app.deps import ServiceDep, require_json
from app.reindexing import ReindexRefusedError
from app.schemas.admin import ReindexRequest, ReindexStatusBody
from app.schemas.common import ErrorBody
from app.security import AdminKey
from indexer.reindex import ReindexChanges
from indexer.stores.base import SnapshotError, SnapshotUnsupportedError

router = APIRouter(tags=["admin"])


@router.get(
    "/admin/snapshot",
    dependencies=[AdminKey],
    response_class=StreamingResponse,
    responses={
        200: {
            "content": {"application/x-tar": {}},
            "description": "The archive: restore it with `python -m indexer restore`.",
        },
        401: {"description": "No API key was sent."},
        403: {"description": "The key is wrong or not an admin key, or none is configured."},
        501: {"model": ErrorBody, "description": "The store is not one this API snapshots."},
        503: {"description": "The index is not open yet, or cannot be snapshotted now."},
    },
)
def snapshot(service: ServiceDep) -> StreamingResponse:
    """A tar archive of the index (CURRENT, its version, the translog after it, and
    `snapshot.json` with the write sequence number covered and every file's checksum).
    Not included: the ONNX model export. Searches and writes go on while it streams."""
    if service.store is None:
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, "the index is not open yet")
    try:  # a plain def: FastAPI runs it in a thread
        pinned = service.settings.store_kind.snapshot(service.store.location)
    except SnapshotUnsupportedError as error:
        raise HTTPException(status.HTTP_501_NOT_IMPLEMENTED, str(error)) from None
    except (SnapshotError, OSError) as error:
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, str(error)) from None
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    name = f"index-{stamp}-seq{pinned.seq}.tar"
    return StreamingResponse(
        pinned.chunks(),
        media_type="application/x-tar",
        # Also when the client leaves midway: the abandoned generator's own cleanup waits
        # for the garbage collector, and until then a merge cannot free what it pins.
        background=BackgroundTask(pinned.close),
        headers={
            "Content-Disposition": f'attachment; filename="{name}"',
            "X-Snapshot-Seq": str(pinned.seq),
        },
    )


_KEY_ERRORS: dict[int | str, dict[str, object]] = {
    401: {"model": ErrorBody, "description": "No API key was sent."},
    403: {
        "model": ErrorBody,
        "description": "The key is wrong or not an admin key, or none is configured.",
    },
}


@router.post(
    "/admin/reindex",
    dependencies=[AdminKey, Depends(require_json)],
    response_model=ReindexStatusBody,
    status_code=status.HTTP_202_ACCEPTED,
    responses={
        **_KEY_ERRORS,
        400: {"model": ErrorBody, "description": "The body cannot be read as JSON text."},
        409: {"model": ErrorBody, "description": "A reindex is already running."},
        413: {"model": ErrorBody, "description": "The body is too large."},
        415: {"model": ErrorBody, "description": "The body is not JSON."},
        422: {
            "model": ErrorBody,
            "description": "Invalid settings, or a model or backend not installed here.",
        },
        503: {"model": ErrorBody, "description": "The model is loading, or writes are disabled."},
    },
)
def start_reindex(request: ReindexRequest, service: ServiceDep) -> JSONResponse:
    """Rebuild the index with new settings (chunking, BM25, title prefix) or another model,
    in the background, while the current index serves searches and takes writes. Writes made
    meanwhile are prepared again with the new settings; the switch is atomic (writes wait a
    moment), and a new version that does not verify is refused: the old one serves on.
    Follow it with `GET /admin/reindex`."""
    problem = service.reindexer.problem(request.model, request.backend)
    if problem is not None:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_ENTITY, problem)
    changes = ReindexChanges(
        chunk_max_tokens=request.chunk_size,
        chunk_overlap=request.chunk_overlap,
        title_prefix=request.title_prefix,
        bm25_k1=request.bm25_k1,
        bm25_b=request.bm25_b,
    )
    try:
        started = service.reindexer.start(changes, request.model, request.backend)
    except ReindexRefusedError as error:
        code = status.HTTP_409_CONFLICT if service.reindexer.status.state == "running" else 503
        raise HTTPException(code, str(error)) from None
    body = ReindexStatusBody(**asdict(started))
    return JSONResponse(body.model_dump(mode="json"), status_code=status.HTTP_202_ACCEPTED)


@router.get(
    "/admin/reindex",
    dependencies=[AdminKey],
    response_model=ReindexStatusBody,
    responses=_KEY_ERRORS,
)
def reindex_status(service: ServiceDep) -> ReindexStatusBody:
    """The last reindex this process ran (or `idle`): its phase, progress and outcome."""
    return ReindexStatusBody(**asdict(service.reindexer.status))
