"""The one retry loop: waiting out a database or broker that is down, without losing the batch.

An acknowledgement may only follow the agent body's normal return (streams.faust_ext), so the
body must not give up a batch it holds: it calls `retry_until_done`, which retries on transient
errors with capped exponential backoff and jitter (tenacity), logs once when it starts waiting
and once when it recovers, and returns only when the attempt succeeded. Meanwhile the take
buffer stays full, the stream stops pulling, Faust pauses the partitions, and Kafka keeps the
data. The sink and the DLQ producer do not retry on their own: they raise at once.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

import structlog
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception_type,
    stop_never,
    wait_exponential,
    wait_random_exponential,
)

log = structlog.get_logger(__name__)

T = TypeVar("T")


@dataclass(frozen=True)
class RetryPolicy:
    """Waits between attempts: half of min(cap, first * 2**n) fixed, the other half random."""

    first_s: float = 0.2
    cap_s: float = 5.0


async def retry_until_done(
    attempt: Callable[[], Awaitable[T]],
    *,
    transient: tuple[type[BaseException], ...],
    what: str,
    policy: RetryPolicy = RetryPolicy(),
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    **context: object,
) -> T:
    """Run `attempt` until it returns; exceptions in `transient` mean wait and try again.

    Anything else propagates (a bug or a permanent error is not retried forever)."""
    half, cap = policy.first_s / 2, policy.cap_s / 2
    waiting_since: list[float] = []

    def started_waiting(state: RetryCallState) -> None:
        if not waiting_since:
            waiting_since.append(time.monotonic())
            exc = state.outcome.exception() if state.outcome else None
            log.warning(f"{what}.backpressure", error=f"{type(exc).__name__}: {exc}", **context)

    retrying = AsyncRetrying(
        retry=retry_if_exception_type(transient),
        wait=wait_exponential(multiplier=half, max=cap) + wait_random_exponential(half, cap),
        stop=stop_never,
        before_sleep=started_waiting,
        sleep=sleep,
        reraise=True,
    )

    async def call() -> T:  # tenacity awaits only what is declared `async def`
        return await attempt()

    result = await retrying(call)
    if waiting_since:
        log.warning(
            f"{what}.recovered",
            waited_s=round(time.monotonic() - waiting_since[0], 1),
            attempts=retrying.statistics.get("attempt_number", 0),
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
