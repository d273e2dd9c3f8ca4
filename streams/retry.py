"""Waiting out a database that is down or slow, without losing the batch in hand.

Faust's `take()` acks the buffered events when the agent body returns to the loop, or when an
exception leaves the `async for` (its `finally` runs). So the body must not raise while it holds
a batch: it calls `retry_until_done`, which retries a write on backpressure with capped
exponential backoff, logs once per state change ("waiting", then "recovered"), and only
returns when the batch is stored. Meanwhile the take buffer stays full, the stream stops
pulling, Faust pauses the partitions, and Kafka keeps the data.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

import structlog

log = structlog.get_logger(__name__)

T = TypeVar("T")


class Backoff:
    """Capped exponential backoff with full jitter."""

    def __init__(
        self, first_s: float = 0.2, cap_s: float = 5.0, rng: random.Random | None = None
    ) -> None:
        self.first_s = first_s
        self.cap_s = cap_s
        self.attempt = 0
        self._rng = rng or random.Random()

    def next_delay(self) -> float:
        ceiling = min(self.cap_s, self.first_s * (2**self.attempt))
        self.attempt += 1
        return ceiling / 2 + self._rng.uniform(0, ceiling / 2)


async def retry_until_done(
    attempt: Callable[[], Awaitable[T]],
    *,
    transient: tuple[type[BaseException], ...],
    what: str,
    backoff: Backoff | None = None,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    **context: object,
) -> T:
    """Run `attempt` until it returns; exceptions in `transient` mean wait and try again.

    Anything else propagates (a bug or a permanent error is not retried forever).
    """
    backoff = backoff or Backoff()
    waiting_since: float | None = None
    while True:
        try:
            result = await attempt()
        except transient as exc:
            if waiting_since is None:
                waiting_since = time.monotonic()
                log.warning(f"{what}.backpressure", error=f"{type(exc).__name__}: {exc}", **context)
            await sleep(backoff.next_delay())
            continue
        if waiting_since is not None:
            log.warning(
                f"{what}.recovered",
                waited_s=round(time.monotonic() - waiting_since, 1),
                attempts=backoff.attempt + 1,
                **context,
            )
        return result


class OutageLog:
    """For a recurring task (a timer): log when it starts failing and when it recovers, once each,
    rather than once per failed run."""

    def __init__(self, what: str) -> None:
        self.what = what
        self.failing_since: float | None = None
        self.failures = 0

    def failed(self, exc: BaseException) -> None:
        self.failures += 1
        if self.failing_since is None:
            self.failing_since = time.monotonic()
            log.warning(f"{self.what}.failing", error=f"{type(exc).__name__}: {exc}")

    def succeeded(self) -> None:
        if self.failing_since is not None:
            log.warning(
                f"{self.what}.recovered",
                down_s=round(time.monotonic() - self.failing_since, 1),
                failed_runs=self.failures,
            )
            self.failing_since = None
            self.failures = 0
