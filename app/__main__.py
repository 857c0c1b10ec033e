"""``python -m app``: check the index, then serve it with uvicorn."""

from __future__ import annotations

import sys

import uvicorn

from app.service import SearchService, StartupError
from app.settings import Settings


def main() -> None:
    settings = Settings()
    try:
        # Fail before binding the port, with one sentence instead of a traceback.
        SearchService(settings).preflight()
    except StartupError as error:
        print(f"error: {error}", file=sys.stderr)
        raise SystemExit(2) from None
    uvicorn.run(
        "app.main:create_app",
        factory=True,
        host=settings.host,
        port=settings.port,
        root_path=settings.root_path,
        log_level=settings.log_level,
        proxy_headers=True,
        timeout_graceful_shutdown=10,
    )


if __name__ == "__main__":
    main()
