"""A bounded HTTP load generator for the service on loopback: N requests, C at a time."""

from __future__ import annotations

import asyncio
import itertools
import time
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx


@dataclass(frozen=True, slots=True)
class Request:
    method: str
    url: str
    params: dict[str, str] = field(default_factory=dict)
    json: Any = None
    ok: tuple[int, ...] = (200,)
    """The status codes that count as success."""


@dataclass(frozen=True, slots=True)
class LoadResult:
    concurrency: int
    requests: int
    errors: int
    seconds: float
    latencies: list[float]
    background: int = 0
    """Background requests sent while the foreground ran (all of them succeeded)."""
    failures: dict[str, int] = field(default_factory=dict)
    """What the errors were: "PUT 503", "GET ReadTimeout", … and how many of each."""

    @property
    def requests_per_second(self) -> float:
        return self.requests / self.seconds if self.seconds > 0 else 0.0


def run_load(
    base_url: str,
    queries: Sequence[str],
    *,
    concurrency: int,
    requests: int,
    params: dict[str, str],
) -> LoadResult:
    """``requests`` searches, cycling through ``queries``, ``concurrency`` at a time."""
    searches = (
        Request("GET", "/search", {"q": query, **params})
        for query in itertools.islice(itertools.cycle(queries), requests)
    )
    return run_requests(base_url, searches, concurrency=concurrency)


def run_requests(
    base_url: str,
    requests: Iterable[Request],
    *,
    concurrency: int,
    headers: dict[str, str] | None = None,
    background: Iterator[Request] | None = None,
    background_rate: float = 0.0,
) -> LoadResult:
    """Send ``requests``, ``concurrency`` at a time; with ``background``, also send those at
    ``background_rate`` per second until the foreground is done (not counted)."""
    return asyncio.run(
        _load(base_url, iter(requests), concurrency, headers or {}, background, background_rate)
    )


async def _load(
    base_url: str,
    upcoming: Iterator[Request],
    concurrency: int,
    headers: dict[str, str],
    background: Iterator[Request] | None,
    background_rate: float,
) -> LoadResult:
    latencies: list[float] = []
    errors = 0
    failures: Counter[str] = Counter()
    background_done = 0
    done = asyncio.Event()
    limits = httpx.Limits(max_connections=concurrency + 2, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(
        base_url=base_url, limits=limits, timeout=120, headers=headers
    ) as client:

        async def send(request: Request) -> bool:
            try:
                response = await client.request(
                    request.method, request.url, params=request.params, json=request.json
                )
            except httpx.HTTPError as error:
                failures[f"{request.method} {type(error).__name__}"] += 1
                return False
            if response.status_code in request.ok:
                return True
            failures[f"{request.method} {response.status_code}"] += 1
            return False

        async def worker() -> None:
            nonlocal errors
            for request in upcoming:  # shared iterator: workers take the next request in turn
                started = time.perf_counter()
                ok = await send(request)
                latencies.append(time.perf_counter() - started)
                errors += not ok

        async def paced() -> None:
            """Open loop: one request every 1/rate s whether or not the last one is done, as
            independent writers would send them (a closed loop would fall behind under load
            and flatter the foreground)."""
            nonlocal background_done
            assert background is not None
            sent: list[asyncio.Task[bool]] = []
            next_at = time.perf_counter()
            for request in background:
                if done.is_set():
                    break
                sent.append(asyncio.create_task(send(request)))
                next_at += 1 / background_rate
                await asyncio.sleep(max(0.0, next_at - time.perf_counter()))
            results = await asyncio.gather(*sent)
            background_done = len(results)
            if not all(results):
                raise RuntimeError(f"{results.count(False)} background requests failed")

        pacer = asyncio.create_task(paced()) if background is not None else None
        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed = time.perf_counter() - started
        done.set()
        if pacer is not None:
            await pacer
    return LoadResult(
        concurrency, len(latencies), errors, elapsed, latencies, background_done, dict(failures)
    )
