"""A bounded HTTP load generator for the service on loopback: N requests, C at a time."""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Sequence
from dataclasses import dataclass

import httpx


@dataclass(frozen=True, slots=True)
class LoadResult:
    concurrency: int
    requests: int
    errors: int
    seconds: float
    latencies: list[float]

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
    return asyncio.run(_load(base_url, queries, concurrency, requests, params))


async def _load(
    base_url: str, queries: Sequence[str], concurrency: int, requests: int, params: dict[str, str]
) -> LoadResult:
    upcoming = itertools.islice(itertools.cycle(queries), requests)
    latencies: list[float] = []
    errors = 0
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=base_url, limits=limits, timeout=60) as client:

        async def worker() -> None:
            nonlocal errors
            for query in upcoming:  # shared iterator: workers take the next query in turn
                started = time.perf_counter()
                try:
                    response = await client.get("/search", params={"q": query, **params})
                    ok = response.status_code == 200
                except httpx.HTTPError:
                    ok = False
                latencies.append(time.perf_counter() - started)
                errors += not ok

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed = time.perf_counter() - started
    return LoadResult(concurrency, len(latencies), errors, elapsed, latencies)
