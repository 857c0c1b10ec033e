"""Typed errors: one class per kind of failure, each carrying the service's ``detail``.

The service answers every error with ``{"detail": ...}``: a message, or for invalid input
FastAPI's list of validation errors (``[{"loc": [...], "msg": "...", "type": "..."}]``).
"""

from __future__ import annotations

import email.utils
import time
from typing import Any

import httpx

Detail = str | list[dict[str, Any]]


class SearchError(Exception):
    """Any failure of a call to the service.

    ``status_code`` is the HTTP status (None when no response came back), ``detail`` the
    service's explanation, ``request_id`` its X-Request-ID (quote it when reporting a problem).
    """

    def __init__(
        self,
        detail: Detail,
        *,
        status_code: int | None = None,
        response: httpx.Response | None = None,
    ) -> None:
        self.detail: Detail = detail
        self.status_code = status_code
        self.response = response
        self.request_id = response.headers.get("x-request-id") if response is not None else None
        super().__init__(self._message())

    def _message(self) -> str:
        detail = self.detail
        if isinstance(detail, list):
            detail = "; ".join(_validation_message(item) for item in detail)
        return detail if self.status_code is None else f"{self.status_code}: {detail}"


class TransportError(SearchError):
    """No answer: the connection failed, was refused or dropped, or the call timed out. The
    httpx exception is the ``__cause__``."""


class InvalidRequestError(SearchError):
    """The request is invalid (400, 413, 415, 422), or could not be built (``status_code``
    None): ``detail`` names the problem."""


class AuthenticationError(SearchError):
    """401: the call needs an API key and none was sent."""


class PermissionDeniedError(SearchError):
    """403: the key is wrong, cannot do this, or writes are disabled on the service."""


class NotFoundError(SearchError):
    """404: no such document (or route)."""


class ConflictError(SearchError):
    """409: the request conflicts with the service's state (e.g. a reindex already runs)."""


class RetryableError(SearchError):
    """A status worth retrying later; ``retry_after`` is the service's Retry-After, in seconds."""

    def __init__(
        self,
        detail: Detail,
        *,
        status_code: int | None = None,
        response: httpx.Response | None = None,
    ) -> None:
        super().__init__(detail, status_code=status_code, response=response)
        header = response.headers.get("retry-after") if response is not None else None
        self.retry_after = parse_retry_after(header)


class RateLimitedError(RetryableError):
    """429: too many requests; retry after ``retry_after`` seconds."""


class ServerError(SearchError):
    """5xx: the service failed (507: its disk is full; 504: a write was not visible in time)."""


class UnavailableError(ServerError, RetryableError):
    """503: the model is still loading, or the index is read-only or its store unavailable."""


_BY_STATUS: dict[int, type[SearchError]] = {
    400: InvalidRequestError,
    401: AuthenticationError,
    403: PermissionDeniedError,
    404: NotFoundError,
    409: ConflictError,
    413: InvalidRequestError,
    415: InvalidRequestError,
    422: InvalidRequestError,
    429: RateLimitedError,
    503: UnavailableError,
}


def error_for(response: httpx.Response) -> SearchError:
    """The typed error for an answer with an error status."""
    status = response.status_code
    kind = _BY_STATUS.get(status) or (ServerError if status >= 500 else SearchError)
    return kind(detail_of(response), status_code=status, response=response)


def detail_of(response: httpx.Response) -> Detail:
    """The ``detail`` of an error body; the raw text when it is not the service's JSON (say,
    a proxy's HTML page)."""
    try:
        body = response.json()
    except ValueError:
        return response.text.strip() or response.reason_phrase
    if isinstance(body, dict) and isinstance(body.get("detail"), str | list):
        detail: Detail = body["detail"]
        return detail
    return response.text.strip()


def parse_retry_after(value: str | None) -> float | None:
    """Retry-After in seconds: a number of seconds, or an HTTP date (RFC 9110)."""
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def _validation_message(item: dict[str, Any]) -> str:
    location = ".".join(str(part) for part in item.get("loc", ()))
    message = str(item.get("msg", item))
    return f"{location}: {message}" if location else message
