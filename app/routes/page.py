"""``/``: a small search page for people, plus the static files it loads (``/static``).

The page is plain HTML, CSS and JavaScript shipped inside the package: no CDN, no build step.
Behind a proxy that serves the app under a prefix (uvicorn ``--root-path /search-api``), every
URL the page uses must carry that prefix, so the route writes the request's ``root_path`` into
the HTML: into the stylesheet and script URLs, and into ``<meta name="api-base">``, from which
the script builds its API URLs.
"""

from __future__ import annotations

import functools
import hashlib
import html
from pathlib import Path

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

STATIC_DIR = Path(__file__).resolve().parent.parent / "static"
STATIC_URL = "/static"
STATIC_NAME = "static"

_PAGE = "search.html"
_ASSETS = ("search.css", "search.js")
_ROOT = "{{root}}"
_VERSION = "{{version}}"

# Everything the page loads comes from this origin; no inline script or style is needed.
_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
    "img-src 'self' data:; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)

router = APIRouter()


def static_files() -> StaticFiles:
    """The page's stylesheet and script, to mount at ``STATIC_URL``."""
    return StaticFiles(directory=STATIC_DIR)


@functools.cache
def _template() -> tuple[str, str]:
    """The page's HTML, and a digest of its assets that changes their URLs when they change."""
    digest = hashlib.sha256()
    for name in _ASSETS:
        digest.update((STATIC_DIR / name).read_bytes())
    return (STATIC_DIR / _PAGE).read_text(encoding="utf-8"), digest.hexdigest()[:12]


@router.get("/", include_in_schema=False, response_class=HTMLResponse)
def search_page(request: Request) -> HTMLResponse:
    """The search page, with the proxy prefix (if any) written into its URLs."""
    page, version = _template()
    root = html.escape(str(request.scope.get("root_path", "")).rstrip("/"), quote=True)
    return HTMLResponse(
        page.replace(_ROOT, root).replace(_VERSION, version),
        headers={"Cache-Control": "no-cache", "Content-Security-Policy": _CSP},
    )
