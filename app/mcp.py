"""``/mcp``: the API for agents, as a Model Context Protocol server in this same service.

The tools (``app/mcp_tools.py``) search, read, list and describe the documents, and, for a key
that may write, add, replace and delete them. They run the HTTP routes' own functions, so they
answer as the routes do.

The library: the official MCP SDK (``mcp`` 2.x), its low-level ``Server``. The SDK's
``MCPServer`` registers one fixed set of tools, and here the set depends on the key (a read key
is not offered the write tools), which the low-level server's ``tools/list`` handler decides
per request; its ``tools/call`` handler gives each tool the caller and turns a route's error into
a tool error. ``fastapi-mcp`` (0.4) does not start with ``mcp`` 2.x, keeps sessions, and filters
tools statically.

The transport: Streamable HTTP, stateless, answering with JSON rather than an SSE stream. Every
POST carries the whole exchange, so any replica can answer any request, and nothing needs a
proxy to keep a stream open (nginx buffers responses); ``GET`` (a stream for messages from the
server) and ``DELETE`` (the end of a session) are answered 405, as the spec allows. The route
is exactly ``/mcp`` (a mount would answer ``/mcp`` with a redirect to ``/mcp/``, which behind a
proxy points at the public origin, and clients do not follow it). The SDK's session manager
runs in the app's lifespan (``McpEndpoint.running``): FastAPI does not run a sub-application's
lifespan.

Keys: the HTTP API's, checked before the SDK sees the request, by ``require_reader`` as for
every read route (reads open when no read key is configured; 401 with ``WWW-Authenticate`` when
a key is needed and none came, 403 for a wrong one, as JSON ``{"detail": ...}``). The caller is
kept in the request's state, which the SDK hands to the handlers with each message
(``ctx.request``): nothing is shared between requests or threads. The write tools check the
keys again with ``require_writer``.

DNS-rebinding protection (the SDK's ``Host``/``Origin`` allow-list) is off, on purpose. It
guards servers that trust whoever can reach them; this one trusts keys, as the HTTP API beside
it does, which has no such check either: turned on for ``/mcp`` alone it would protect nothing
(a page that rebinds a name to this service can call ``/search`` and ``/documents`` directly),
and it would answer 421 to every request reaching the service through a proxy under its public
name. Which host names are served is the proxy's decision (``server_name`` in nginx), the one
place that knows them.
"""

from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import AsyncIterator, Iterable
from typing import Any

from fastapi import FastAPI, HTTPException
from fastapi.responses import JSONResponse
from mcp.server.context import ServerRequestContext
from mcp.server.lowlevel import Server
from mcp.server.streamable_http_manager import StreamableHTTPSessionManager
from mcp.server.transport_security import TransportSecuritySettings
from mcp_types import (
    CallToolRequestParams,
    CallToolResult,
    ListToolsResult,
    PaginatedRequestParams,
    TextContent,
)
from mcp_types import Tool as ListedTool
from pydantic import BaseModel, ValidationError
from starlette.requests import Request
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from app.keys import Caller
from app.mcp_tools import TOOLS, Call, Tool
from app.routes.health import service_version
from app.security import presented_keys, require_reader
from app.service import SearchService

logger = logging.getLogger("app")

MCP_PATH = "/mcp"
_CALLER = "mcp_caller"
"""Where the endpoint leaves the caller, in the request's state."""

INSTRUCTIONS = """\
Semantic search over a corpus of articles. `search` finds the passages that answer a question \
(each with its document's id and the passage's character offsets); `get_document` reads the \
text around a passage (its doc_id, start and end) or a whole document; `list_documents` pages \
through the documents; `describe` says what is indexed and which metadata fields filters can \
use. Keys that may write also get `put_document` and `delete_document`."""


class McpEndpoint:
    """The ``/mcp`` route (an ASGI app) and the MCP server behind it."""

    def __init__(self, service: SearchService) -> None:
        self.service = service
        self.server: Server[Any] = Server(
            "semantic-search",
            version=service_version(),
            title="Semantic Search",
            instructions=INSTRUCTIONS,
            on_list_tools=self._list_tools,
            on_call_tool=self._call_tool,
            get_tool_input_schema=_input_schema,
        )
        self.sessions = StreamableHTTPSessionManager(
            app=self.server,
            json_response=True,
            stateless=True,
            security_settings=TransportSecuritySettings(enable_dns_rebinding_protection=False),
            max_request_body_size=service.settings.max_body_bytes,
        )

    def install(self, app: FastAPI) -> None:
        """Route ``/mcp`` to this endpoint, outside the OpenAPI schema (it is not a REST
        operation; docs/api.md#mcp describes it)."""
        app.router.routes.append(Route(MCP_PATH, self, name="mcp", include_in_schema=False))

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[None]:
        """The SDK's session manager (its task group), for the app's lifespan."""
        async with self.sessions.run():
            yield

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        request = Request(scope, receive)
        if request.method != "POST":
            # Stateless: no stream to open with GET (the SDK would hold one open, idle, for as
            # long as the client waits), no session to end with DELETE. The spec's answer: 405.
            await _not_allowed(request.method)(scope, receive, send)
            return
        try:
            caller = await require_reader(self.service, await presented_keys(request))
        except HTTPException as refused:
            response = JSONResponse(
                {"detail": refused.detail}, refused.status_code, headers=refused.headers
            )
            await response(scope, receive, send)
            return
        setattr(request.state, _CALLER, caller)
        await self.sessions.handle_request(scope, receive, send)

    # -- MCP handlers ---------------------------------------------------------------------------

    async def _list_tools(
        self, ctx: ServerRequestContext[Any, Any], params: PaginatedRequestParams | None
    ) -> ListToolsResult:
        caller = _caller(_request(ctx))
        return ListToolsResult(tools=[_listed(tool) for tool in _offered(caller)])

    async def _call_tool(
        self, ctx: ServerRequestContext[Any, Any], params: CallToolRequestParams
    ) -> CallToolResult:
        request = _request(ctx)
        call = Call(self.service, _caller(request), request)
        tool = next((tool for tool in TOOLS if tool.name == params.name), None)
        if tool is None:
            names = ", ".join(tool.name for tool in _offered(call.caller))
            return _error(f"unknown tool {params.name!r}; the tools are {names}")
        try:
            arguments = tool.arguments.model_validate(params.arguments or {})
            result: BaseModel = await tool.run(call, arguments)
        except ValidationError as error:
            return _error(f"invalid arguments: {_problems(error)}")
        except Exception as error:  # a route's error: what the HTTP API answers, as a tool error
            return _error(await _detail(request, error))
        return CallToolResult(
            content=[TextContent(type="text", text=result.model_dump_json())],
            structured_content=result.model_dump(mode="json"),
        )


def _not_allowed(method: str) -> JSONResponse:
    return JSONResponse(
        {"detail": f"{method} is not allowed here; use POST"}, 405, headers={"Allow": "POST"}
    )


def _offered(caller: Caller) -> Iterable[Tool[Any, Any]]:
    return [tool for tool in TOOLS if caller.may("write") or not tool.writes]


def _listed(tool: Tool[Any, Any]) -> ListedTool:
    return ListedTool(
        name=tool.name,
        title=tool.title,
        description=tool.description,
        input_schema=tool.arguments.model_json_schema(),
        output_schema=tool.result.model_json_schema(mode="serialization"),
        annotations=tool.annotations,
    )


def _input_schema(name: str) -> dict[str, Any] | None:
    tool = next((tool for tool in TOOLS if tool.name == name), None)
    return None if tool is None else tool.arguments.model_json_schema()


def _request(ctx: ServerRequestContext[Any, Any]) -> Request:
    if not isinstance(ctx.request, Request):  # only McpEndpoint's HTTP transport runs these
        raise TypeError("the MCP handlers serve HTTP requests only")
    return ctx.request


def _caller(request: Request) -> Caller:
    caller = getattr(request.state, _CALLER, None)
    if not isinstance(caller, Caller):
        raise TypeError("an MCP request reached the handlers without passing McpEndpoint")
    return caller


def _error(message: str) -> CallToolResult:
    return CallToolResult(content=[TextContent(type="text", text=message)], is_error=True)


def _problems(error: ValidationError) -> str:
    """Each problem as "field: message"; a validator's own message as it wrote it (a filter's
    is the FilterError's, as GET /search gives it)."""
    problems = []
    for problem in error.errors(include_url=False):
        cause = problem.get("ctx", {}).get("error")
        message = str(cause) if isinstance(cause, ValueError) else problem["msg"]
        where = ".".join(str(part) for part in problem["loc"])
        problems.append(f"{where}: {message}" if where else message)
    return "; ".join(problems)


async def _detail(request: Request, error: Exception) -> str:
    """The ``detail`` the HTTP API answers ``error`` with: the app's own exception handler for
    it (``app/errors.py``: a store error's status and message; anything unexpected is logged,
    with its traceback, and answered "internal error")."""
    handlers = request.app.exception_handlers
    handler = next((handlers[kind] for kind in type(error).__mro__ if kind in handlers), None)
    if handler is None:  # never: the app handles Exception
        logger.exception("unhandled error in an MCP tool")
        return "internal error; the server log has the details"
    response = await handler(request, error)
    detail = json.loads(bytes(response.body))["detail"]
    if isinstance(detail, str):
        return detail
    return "; ".join(
        f"{'.'.join(str(part) for part in problem['loc'])}: {problem['msg']}" for problem in detail
    )
