"""Talking to ``/mcp`` in tests with the official MCP client (the ``mcp`` SDK), to a service
process by URL or to an app in-process (through httpx2's ASGI transport, in the test's own
event loop, where the app's lifespan runs too)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable, Coroutine
from contextlib import asynccontextmanager
from typing import Any, TypeVar

import httpx2
from fastapi import FastAPI
from mcp import ClientSession
from mcp.client.streamable_http import create_mcp_http_client, streamable_http_client
from mcp_types import CallToolResult, TextContent

from app.main import create_app
from app.service import SearchService
from app.settings import Settings
from indexer.embedding import Embedder

T = TypeVar("T")
DEADLINE = 60.0
"""Seconds a whole scenario may take: a hung exchange fails the test instead of holding it."""
IN_PROCESS = "http://testserver"

WRITE_TOOLS = {"put_document", "delete_document"}
READ_TOOLS = {"search", "get_document", "list_documents", "describe"}


def run(scenario: Callable[[], Coroutine[Any, Any, T]], seconds: float = DEADLINE) -> T:
    """Run an async scenario to its end, within a deadline."""

    async def bounded() -> T:
        return await asyncio.wait_for(scenario(), seconds)

    return asyncio.run(bounded())


def key_headers(key: str | None, header: str = "Authorization") -> dict[str, str]:
    if key is None:
        return {}
    return {"Authorization": f"Bearer {key}"} if header == "Authorization" else {header: key}


@asynccontextmanager
async def serving(
    settings: Settings, embedder_factory: Callable[[str], Embedder], *, ready: bool = True
) -> AsyncIterator[FastAPI]:
    """``create_app`` with its lifespan running in this event loop; once the model has loaded,
    unless ``ready`` is False."""
    app = create_app(settings, embedder_factory)
    async with app.router.lifespan_context(app):
        if ready:
            service: SearchService = app.state.service
            deadline = time.monotonic() + DEADLINE
            while not service.ready:
                assert service.load_error is None, service.load_error
                assert time.monotonic() < deadline, "the model never loaded"
                await asyncio.sleep(0.01)
        yield app


def http_client(target: FastAPI | str, headers: dict[str, str] | None = None) -> httpx2.AsyncClient:
    """An httpx2 client for ``target``: an in-process app (base URL IN_PROCESS) or a base URL;
    with the MCP transports' timeouts."""
    if isinstance(target, str):
        return create_mcp_http_client(headers=headers)
    return httpx2.AsyncClient(
        transport=httpx2.ASGITransport(app=target), base_url=IN_PROCESS, headers=headers
    )


@asynccontextmanager
async def mcp_session(
    target: FastAPI | str, headers: dict[str, str] | None = None, url: str | None = None
) -> AsyncIterator[ClientSession]:
    """An initialised MCP client session with ``/mcp`` of ``target`` (an app in-process, or a
    base URL), sending ``headers`` with every request."""
    endpoint = url or f"{IN_PROCESS if not isinstance(target, str) else target}/mcp"
    async with (
        http_client(target, headers) as client,
        streamable_http_client(endpoint, http_client=client) as (read, write),
        ClientSession(read, write) as session,
    ):
        await session.initialize()
        yield session


def text_of(result: CallToolResult) -> str:
    [block] = result.content
    assert isinstance(block, TextContent), block
    return block.text


async def structured(session: ClientSession, tool: str, **arguments: object) -> dict[str, Any]:
    """A tool's structured result, which must not be an error."""
    result = await session.call_tool(tool, arguments)
    assert not result.is_error, text_of(result)
    assert isinstance(result.structured_content, dict), result
    return result.structured_content


async def refusal(session: ClientSession, tool: str, **arguments: object) -> str:
    """The message of a tool error, which the call must be."""
    result = await session.call_tool(tool, arguments)
    assert result.is_error, result
    assert result.structured_content is None
    return text_of(result)


async def tool_names(session: ClientSession) -> set[str]:
    return {tool.name for tool in (await session.list_tools()).tools}
