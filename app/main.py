"""``create_app()``: the FastAPI application, assembled from settings and routers."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import AsyncIterator, Iterator
from typing import Any

from asgi_correlation_id import CorrelationIdMiddleware
from fastapi import FastAPI
from fastapi_offline import FastAPIOffline
from prometheus_client import CollectorRegistry, GCCollector, PlatformCollector, ProcessCollector
from prometheus_fastapi_instrumentator import Instrumentator
from starlette.routing import BaseRoute

from app import tracing
from app.errors import install_error_handlers
from app.keys import reads_open
from app.limits import BodySizeLimitMiddleware
from app.logs import REQUEST_ID_HEADER, AccessLogMiddleware, valid_request_id
from app.mcp import McpEndpoint
from app.metrics import IndexCollector, search_latency
from app.routes import admin, documents, health, page, search
from app.routes.health import service_version
from app.security import drop_open_read_security
from app.service import EmbedderFactory, SearchService, StartupError
from app.settings import Settings

logger = logging.getLogger("app")

DESCRIPTION = """
Ask a question in natural language; get back the passages of the indexed articles that
answer it best, each with its source document, title and exact character offsets
(`document.text[start:end] == passage`). `GET /documents/{doc_id}` returns the full text
to show a passage in context. Agents can use all of this through the MCP endpoint at
`/mcp` (Streamable HTTP, the same API keys; not listed below: see docs/api.md#mcp).
"""


def create_app(
    settings: Settings | None = None, embedder_factory: EmbedderFactory | None = None
) -> FastAPI:
    settings = settings or Settings()
    service = SearchService(settings, embedder_factory)
    mcp = McpEndpoint(service)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        try:
            service.open_index()
        except StartupError as error:
            logger.error("%s", error)
            raise
        # The model takes seconds to load: /health answers meanwhile, /ready says 503.
        loading = asyncio.create_task(asyncio.to_thread(service.load_model))
        with _sighup_reloads_keys(service):
            # /mcp's session manager (FastAPI runs no sub-application's lifespan)
            async with mcp.running():
                yield
        await loading  # a thread cannot be cancelled; let it finish before exiting
        service.close()

    # Docs assets are served from the installed package, so /docs works with no internet.
    app = FastAPIOffline(
        title="Semantic Search",
        version=service_version(),
        description=DESCRIPTION,
        lifespan=lifespan,
    )
    app.state.service = service
    app.add_middleware(BodySizeLimitMiddleware, max_bytes=settings.max_body_bytes)
    if settings.log_format == "json":
        app.add_middleware(AccessLogMiddleware)
    # Outermost of the middlewares (last added): every log line of a request has its id.
    app.add_middleware(
        CorrelationIdMiddleware, header_name=REQUEST_ID_HEADER, validator=valid_request_id
    )
    install_error_handlers(app)
    routers = (search.router, documents.router, health.router, page.router, admin.router)
    for router in routers:
        app.include_router(router)
    app.mount(page.STATIC_URL, page.static_files(), name=page.STATIC_NAME)
    mcp.install(app)
    if reads_open(settings.read_api_key, settings.api_keys_file):
        _open_reads_in_schema(app, [route for router in routers for route in router.routes])
    _reindex_choices_in_schema(app, service)
    registry = _metrics_registry()
    registry.register(IndexCollector(service))
    app.state.search_latency = search_latency(registry)
    instrumentator = Instrumentator(
        excluded_handlers=["/metrics", "/health", "/ready"], registry=registry
    )
    instrumentator.instrument(app).expose(app, include_in_schema=False)
    tracing.instrument(app)
    return app


@contextlib.contextmanager
def _sighup_reloads_keys(service: SearchService) -> Iterator[None]:
    """``kill -HUP`` reads SEARCH_API_KEYS_FILE again (as nginx reloads its configuration),
    and no longer ends the process, as SIGHUP does by default. The handler runs in the event
    loop, not between two bytecodes of whatever holds the key ring's lock."""
    loop = asyncio.get_running_loop()
    try:
        loop.add_signal_handler(signal.SIGHUP, service.keys.reload)
    except (RuntimeError, ValueError, NotImplementedError):
        yield  # not the main thread (an app in a test's client), or no SIGHUP (Windows)
        return
    try:
        yield
    finally:
        loop.remove_signal_handler(signal.SIGHUP)


def _open_reads_in_schema(app: FastAPI, routes: list[BaseRoute]) -> None:
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            drop_open_read_security(generate(), routes)
        return generate()  # cached by FastAPI now

    app.openapi = openapi  # type: ignore[method-assign]


def _reindex_choices_in_schema(app: FastAPI, service: SearchService) -> None:
    """The models and backends a reindex accepts are those installed here: list them as enums,
    so the schema says which values are valid (anything else is a 422)."""
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = generate()
            fields = schema["components"]["schemas"]["ReindexRequest"]["properties"]
            choices: dict[str, list[str]] = {
                "model": service.reindexer.models(),
                "backend": list(service.reindexer.backends()),
            }
            for name, allowed in choices.items():
                for option in fields[name]["anyOf"]:
                    if option.get("type") == "string":
                        option["enum"] = allowed
        return generate()  # cached by FastAPI now

    app.openapi = openapi  # type: ignore[method-assign]


def _metrics_registry() -> CollectorRegistry:
    """One registry per app, so two apps in one process (as in tests) never share counters."""
    registry = CollectorRegistry()
    ProcessCollector(registry=registry)
    PlatformCollector(registry=registry)
    GCCollector(registry=registry)
    return registry
