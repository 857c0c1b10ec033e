"""Opt-in retries with tenacity: exponential backoff with jitter, never sooner than the
service's Retry-After.

What is retried: a connection that failed or dropped before an answer came (refused, reset,
a connect timeout), 429 and 503. A read timeout is not: the service may still be working on the
request, and the caller's timeout was its budget. Every call the client makes may be repeated
safely: searches and reads change nothing, ``PUT /documents/{id}`` and ``DELETE
/documents/{id}`` are idempotent by id, a bulk ``POST /documents`` writes each document by its
id (sent again, it replaces them with the same content), and a delete by filter deletes what
still matches. Only the outcome reported can differ (``created`` then ``replaced``, a 404 for a
delete that had gone through).
"""

from __future__ import annotations

from dataclasses import dataclass

import httpx
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    Retrying,
    retry_if_exception,
    stop_after_attempt,
    wait_exponential,
    wait_random,
)
from tenacity.stop import stop_base
from tenacity.wait import wait_base

from semantic_search_client.errors import RetryableError, TransportError

# The failures of the connection itself, before any answer: sent again, nothing is repeated
# that the service has not at most half-received.
RETRIED_TRANSPORT_ERRORS = (
    httpx.ConnectError,
    httpx.ConnectTimeout,
    httpx.ReadError,
    httpx.WriteError,
    httpx.RemoteProtocolError,
    httpx.PoolTimeout,
)


def retryable(error: BaseException) -> bool:
    if isinstance(error, RetryableError):
        return True
    return isinstance(error, TransportError) and isinstance(
        error.__cause__, RETRIED_TRANSPORT_ERRORS
    )


def retry_after(state: RetryCallState) -> float | None:
    """The Retry-After of the attempt that just failed, if it gave one."""
    error = state.outcome.exception() if state.outcome is not None else None
    return error.retry_after if isinstance(error, RetryableError) else None


class wait_backoff_or_retry_after(wait_base):  # noqa: N801 (tenacity's naming)
    """The backoff, or the service's Retry-After if that is longer."""

    def __init__(self, backoff: wait_base) -> None:
        self.backoff = backoff

    def __call__(self, retry_state: RetryCallState) -> float:
        backoff = float(self.backoff(retry_state))
        asked = retry_after(retry_state)
        return backoff if asked is None else max(asked, backoff)


class stop_if_retry_after_exceeds(stop_base):  # noqa: N801 (tenacity's naming)
    """Give up at once when the service asks for a longer wait than the caller accepts."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds

    def __call__(self, retry_state: RetryCallState) -> bool:
        asked = retry_after(retry_state)
        return asked is not None and asked > self.seconds


@dataclass(frozen=True)
class RetryPolicy:
    """``retries`` more attempts after the first (0: none); waits of ``backoff`` seconds
    doubling up to ``max_backoff``, plus up to ``backoff`` of random jitter; a Retry-After over
    ``max_retry_after`` seconds is not waited for (the error is raised)."""

    retries: int = 0
    backoff: float = 0.5
    max_backoff: float = 8.0
    max_retry_after: float = 60.0

    def __post_init__(self) -> None:
        if self.retries < 0:
            raise ValueError(f"retries must be 0 or more, not {self.retries}")

    def _stop(self) -> stop_base:
        return stop_after_attempt(self.retries + 1) | stop_if_retry_after_exceeds(
            self.max_retry_after
        )

    def _wait(self) -> wait_base:
        doubling = wait_exponential(multiplier=self.backoff, max=self.max_backoff)
        return wait_backoff_or_retry_after(doubling + wait_random(0, self.backoff))

    def retrying(self) -> Retrying:
        # reraise: the last error itself, not tenacity's RetryError.
        retry = retry_if_exception(retryable)
        return Retrying(stop=self._stop(), wait=self._wait(), retry=retry, reraise=True)

    def async_retrying(self) -> AsyncRetrying:
        retry = retry_if_exception(retryable)
        return AsyncRetrying(stop=self._stop(), wait=self._wait(), retry=retry, reraise=True)
