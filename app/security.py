"""API keys on the HTTP API, as Qdrant does them: either header works, ``Authorization: Bearer
<key>`` or ``X-API-Key: <key>``; who each key is, its role and scope, is ``app.keys``'s.

Both schemes are declared to OpenAPI, so Swagger UI's "Authorize" button offers them (on the
read routes only when reads need a key: otherwise reads are open, and the schema says so). The
checks are ours (the schemes never fail on their own): 401 when no key came, 403 when a key sent
is wrong (a request sending both headers needs both right), or lacks the role, and 403 for every
write when no key may write, so a default deployment is writable by nobody.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Depends, HTTPException, Request, status
from fastapi.routing import APIRoute
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer
from starlette.routing import BaseRoute

from app.deps import ServiceDep
from app.keys import ANONYMOUS, Caller, KeyRing, Role
from app.service import WRITES_DISABLED, SearchService

_bearer = HTTPBearer(
    auto_error=False,
    scheme_name="bearer",
    description="`Authorization: Bearer <key>`: SEARCH_API_KEY, SEARCH_READ_API_KEY for reads, "
    "or a key of SEARCH_API_KEYS_FILE.",
)
_header = APIKeyHeader(
    name="X-API-Key",
    auto_error=False,
    scheme_name="apiKey",
    description="`X-API-Key: <key>`, the same keys as the bearer scheme.",
)


async def _presented(
    request: Request,
    bearer: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    header: Annotated[str | None, Depends(_header)],
) -> list[str]:
    """Every key the request sent. A wrong one is refused even beside a right one: a client
    whose credentials disagree is misconfigured, and picking the one that works would hide it.
    An Authorization header that is not ``Bearer <key>`` counts as a wrong key, not as none."""
    del header  # declared for OpenAPI (Swagger's Authorize); the raw header is read below
    # The raw headers, not only what the schemes parsed: those drop an empty header, which is
    # a key sent (and wrong), not a key left out.
    authorization = bearer.credentials if bearer else request.headers.get("authorization")
    return [
        key for key in (authorization, request.headers.get(_header.model.name)) if key is not None
    ]


PresentedKeys = Annotated[list[str], Depends(_presented)]


async def presented_keys(request: Request) -> list[str]:
    """The keys a request sent, as the routes' dependencies see them: for endpoints outside
    FastAPI's dependency injection (``/mcp``, ``app/mcp.py``)."""
    return await _presented(request, await _bearer(request), await _header(request))


def _missing(what: str) -> HTTPException:
    return HTTPException(
        status.HTTP_401_UNAUTHORIZED,
        f"{what} need an API key: send Authorization: Bearer <key> or X-API-Key: <key>",
        headers={"WWW-Authenticate": "Bearer"},
    )


def identify(keys: KeyRing, presented: list[str]) -> Caller | None:
    """Who the keys a request sent are (None: none sent). Every key sent must be known, and
    all must be the same caller: 403 otherwise."""
    callers = {keys.caller(key) for key in presented}
    if None in callers:
        raise HTTPException(status.HTTP_403_FORBIDDEN, "this API key is not valid here")
    if len(callers) > 1:
        raise HTTPException(status.HTTP_403_FORBIDDEN, "the API keys sent belong to two callers")
    return callers.pop() if callers else None


async def require_reader(service: ServiceDep, presented: PresentedKeys) -> Caller:
    keys = service.keys
    if keys.reads_open:
        # A key sent to open reads needs not be right; a known one says who calls (/mcp offers
        # a write key its write tools).
        known = [caller for caller in map(keys.caller, presented) if caller is not None]
        return known[0] if len(known) == len(presented) and known else ANONYMOUS
    caller = identify(keys, presented)
    if caller is None:
        raise _missing("searches and documents")
    return caller


async def require_writer(service: ServiceDep, presented: PresentedKeys) -> Caller:
    return _require(service, presented, "write")


async def require_admin(service: ServiceDep, presented: PresentedKeys) -> Caller:
    return _require(service, presented, "admin")


def _require(service: SearchService, presented: list[str], role: Role) -> Caller:
    keys = service.keys
    if not keys.writes_enabled:
        raise HTTPException(status.HTTP_403_FORBIDDEN, f"writes are disabled: {WRITES_DISABLED}")
    caller = identify(keys, presented)
    if caller is None:
        raise _missing("writes" if role == "write" else "snapshots and reindexes")
    if not caller.may(role):
        doing = "write" if role == "write" else "snapshot or reindex (it needs the admin role)"
        raise HTTPException(status.HTTP_403_FORBIDDEN, f"this API key cannot {doing}")
    return caller


def drop_open_read_security(schema: dict[str, Any], routes: list[BaseRoute]) -> None:
    """With no read key configured, reads need no key: take their security requirement (and
    the 401/403 they cannot answer) out of the OpenAPI schema, so it says what the service does."""
    for route in routes:
        if not isinstance(route, APIRoute) or not route.include_in_schema:
            continue
        if not any(depends.dependency is require_reader for depends in route.dependencies):
            continue
        for method in route.methods or ():
            operation = schema["paths"][route.path_format].get(method.lower(), {})
            operation.pop("security", None)
            for code in ("401", "403"):
                operation.get("responses", {}).pop(code, None)


ReadCaller = Annotated[Caller, Depends(require_reader)]
WriteCaller = Annotated[Caller, Depends(require_writer)]
AdminCaller = Annotated[Caller, Depends(require_admin)]
# In a route's dependencies=[...], so the key is checked before the body (401 before 415);
# a route that needs the caller also takes it as a parameter (one call: FastAPI caches it).
ReadKey = Depends(require_reader)
WriteKey = Depends(require_writer)
AdminKey = Depends(require_admin)
