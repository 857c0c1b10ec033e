"""API keys, as Qdrant does them: a key for writes (which also reads) and an optional key
that only reads. Either header works: ``Authorization: Bearer <key>`` or ``X-API-Key: <key>``.

Both schemes are declared to OpenAPI, so Swagger UI's "Authorize" button offers them (on the
read routes only when a read key is configured: otherwise reads are open, and the schema says
so). The checks are ours (the schemes never fail on their own): 401 when no key came, 403 when
a key sent is wrong (a request sending both headers needs both right), and 403 for every write
when no write key is configured, so a default deployment is writable by nobody.
"""

from __future__ import annotations

import hashlib
import hmac
from typing import Annotated, Any

from fastapi import Depends, HTTPException, Request, status
from fastapi.routing import APIRoute
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer
from pydantic import SecretStr
from starlette.routing import BaseRoute

from app.deps import ServiceDep

_bearer = HTTPBearer(
    auto_error=False,
    scheme_name="bearer",
    description="`Authorization: Bearer <key>`: SEARCH_API_KEY, or SEARCH_READ_API_KEY for reads.",
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


def _matches(presented: str, configured: SecretStr | None) -> bool:
    """Constant time: hashing first makes both sides the same length, so the comparison
    reveals neither the key nor its length."""
    if configured is None:
        return False
    digest = hashlib.sha256
    return hmac.compare_digest(
        digest(presented.encode()).digest(),
        digest(configured.get_secret_value().encode()).digest(),
    )


def _missing(what: str) -> HTTPException:
    return HTTPException(
        status.HTTP_401_UNAUTHORIZED,
        f"{what} need an API key: send Authorization: Bearer <key> or X-API-Key: <key>",
        headers={"WWW-Authenticate": "Bearer"},
    )


async def require_write_key(service: ServiceDep, presented: PresentedKeys) -> None:
    settings = service.settings
    if settings.api_key is None:
        raise HTTPException(
            status.HTTP_403_FORBIDDEN,
            "writes are disabled: start the service with SEARCH_API_KEY set to enable them",
        )
    if not presented:
        raise _missing("writes")
    if not all(_matches(key, settings.api_key) for key in presented):
        raise HTTPException(status.HTTP_403_FORBIDDEN, "this API key cannot write")


async def require_read_key(service: ServiceDep, presented: PresentedKeys) -> None:
    settings = service.settings
    if settings.read_api_key is None:
        return
    if not presented:
        raise _missing("searches and documents")
    keys = (settings.read_api_key, settings.api_key)
    if not all(any(_matches(key, known) for known in keys) for key in presented):
        raise HTTPException(status.HTTP_403_FORBIDDEN, "this API key is not valid here")


def drop_open_read_security(schema: dict[str, Any], routes: list[BaseRoute]) -> None:
    """With no read key configured, reads need no key: take their security requirement (and
    the 401/403 they cannot answer) out of the OpenAPI schema, so it says what the service does."""
    for route in routes:
        if not isinstance(route, APIRoute) or not route.include_in_schema:
            continue
        if not any(depends.dependency is require_read_key for depends in route.dependencies):
            continue
        for method in route.methods or ():
            operation = schema["paths"][route.path_format].get(method.lower(), {})
            operation.pop("security", None)
            for code in ("401", "403"):
                operation.get("responses", {}).pop(code, None)


WriteKey = Depends(require_write_key)
ReadKey = Depends(require_read_key)
