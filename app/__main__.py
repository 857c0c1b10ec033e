"""``python -m app``: check the index, then serve it with uvicorn."""

from __future__ import annotations

import copy
import ctypes
import importlib
import os
import sys
import threading

import uvicorn
from uvicorn.config import LOGGING_CONFIG

from app.logs import log_config
from app.protocol import JsonErrorsProtocol
from app.service import SearchService, StartupError
from app.settings import Settings

# glibc's M_ARENA_MAX (malloc.h): how many malloc arenas threads may spread over.
_M_ARENA_MAX = -8
MALLOC_ARENAS = 2


def limit_malloc_arenas() -> None:
    """Two malloc arenas, not glibc's 8 per core, unless MALLOC_ARENA_MAX says otherwise.

    Requests run on up to 40 threadpool threads; each gets an arena of its own, and the memory
    a merge frees stays spread over them. Measured (make soak, 10 minutes at concurrency 32):
    resident memory grew 15 % with glibc's default and not at all with two arenas, at the same
    throughput. Call it before threads start: arenas already made stay.
    """
    if os.environ.get("MALLOC_ARENA_MAX") or not sys.platform.startswith("linux"):
        return
    try:
        libc = ctypes.CDLL(None)
        libc.mallopt(_M_ARENA_MAX, MALLOC_ARENAS)
    except (OSError, AttributeError):  # not glibc (e.g. musl): nothing to tune
        pass


def main() -> None:
    limit_malloc_arenas()
    settings = Settings()
    try:
        # Fail before binding the port, with one sentence instead of a traceback.
        SearchService(settings).preflight()
    except StartupError as error:
        print(f"error: {error}", file=sys.stderr)
        raise SystemExit(2) from None
    if settings.backend == "torch":
        # Importing sentence-transformers takes most of the start-up (torch, transformers,
        # scikit-learn: ~3 s); begin now, alongside uvicorn's own start, not after it.
        threading.Thread(
            target=importlib.import_module, args=("sentence_transformers",), daemon=True
        ).start()
    uvicorn.run(
        "app.main:create_app",
        factory=True,
        http=JsonErrorsProtocol,
        host=settings.host,
        port=settings.port,
        root_path=settings.root_path,
        log_level=settings.log_level,
        proxy_headers=True,
        forwarded_allow_ips=settings.forwarded_allow_ips,
        timeout_graceful_shutdown=10,
        # Idle connections outlive a proxy's pooled ones (nginx keeps upstream connections
        # 60 s): with uvicorn's 5 s, a client could send on a connection as it is being closed,
        # a reset the client sees as an error (the soak test saw a few in 10 000 requests).
        timeout_keep_alive=75,
        log_config=log_config(
            copy.deepcopy(LOGGING_CONFIG), settings.log_level, settings.log_format
        ),
    )


if __name__ == "__main__":
    main()
