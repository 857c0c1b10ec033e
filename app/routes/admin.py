"""``/admin/snapshot``: a consistent archive of the live index, streamed, behind the write key.

The same snapshot as ``python -m indexer snapshot`` (see ``indexer.stores.snapshot``): the
files are pinned (opened) when the request arrives, so searches and writes go on, a merge
cannot delete what the archive still has to send, and the archive holds every write
acknowledged before the request.
"""

from __future__ import annotations

from datetime import UTC, datetime

from fastapi import APIRouter, HTTPException, status
from fastapi.responses import StreamingResponse

from app.deps import ServiceDep
from app.security import WriteKey
from indexer.stores.snapshot import SnapshotError, pin

router = APIRouter(tags=["admin"])


@router.get(
    "/admin/snapshot",
    dependencies=[WriteKey],
    response_class=StreamingResponse,
    responses={
        200: {
            "content": {"application/x-tar": {}},
            "description": "The archive: restore it with `python -m indexer restore`.",
        },
        401: {"description": "No API key was sent."},
        403: {"description": "The key is wrong, or no SEARCH_API_KEY is configured."},
        503: {"description": "The index is not open yet, or cannot be snapshotted now."},
    },
)
def snapshot(service: ServiceDep) -> StreamingResponse:
    """A tar archive of the index (CURRENT, its version, the translog after it, and
    `snapshot.json` with the write sequence number covered and every file's checksum).
    Not included: the ONNX model export. Searches and writes go on while it streams."""
    if service.store is None:
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, "the index is not open yet")
    try:
        pinned = pin(service.store.location)  # a plain def: FastAPI runs it in a thread
    except (SnapshotError, OSError) as error:
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, str(error)) from None
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    name = f"index-{stamp}-seq{pinned.seq}.tar"
    return StreamingResponse(
        pinned.chunks(),
        media_type="application/x-tar",
        headers={
            "Content-Disposition": f'attachment; filename="{name}"',
            "X-Snapshot-Seq": str(pinned.seq),
        },
    )
