"""API keys, as Qdrant does them: a key for writes (which also reads) and an optional key
that only reads. Either header works: ``Authorization: Bearer <key>`` or ``X-API-Key: <key>``.

Both schemes are declared to OpenAPI, so Swagger UI's "Authorize" button offers them. The
checks are ours (the schemes never fail on their own): 401 when no key came, 403 when the
key is wrong, and 403 for every write when no write key is configured, so a default
deployment is writable by nobody.
"""

from __future__ import annotations

import hashlib
import hmac
from typing import Annotated

from fastapi import Depends, HTTPException, status
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer
from pydantic import SecretStr

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
    bearer: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    header: Annotated[str | None, Depends(_header)],
) -> str | None:
    if bearer is not None:
        return bearer.credentials
    return header or None


PresentedKey = Annotated[str | None, Depends(_presented)]


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


async def require_write_key(service: ServiceDep, presented: PresentedKey) -> None:
    settings = service.settings
    if settings.api_key is None:
        raise HTTPException(
            status.HTTP_403_FORBIDDEN,
            "writes are disabled: start the service with SEARCH_API_KEY set to enable them",
        )
    if presented is None:
        raise _missing("writes")
    if not _matches(presented, settings.api_key):
        raise HTTPException(status.HTTP_403_FORBIDDEN, "this API key cannot write")


async def require_read_key(service: ServiceDep, presented: PresentedKey) -> None:
    settings = service.settings
    if settings.read_api_key is None:
        return
    if presented is None:
        raise _missing("searches and documents")
    if not (_matches(presented, settings.read_api_key) or _matches(presented, settings.api_key)):
        raise HTTPException(status.HTTP_403_FORBIDDEN, "this API key is not valid here")


WriteKey = Depends(require_write_key)
ReadKey = Depends(require_read_key)
