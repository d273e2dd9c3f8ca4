"""The one retry loop waits out transient failures and never gives up a batch; others propagate."""

from __future__ import annotations

import pytest

from streams.retry import RetryPolicy, retry_until_done


class Down(Exception):
    pass


async def test_retries_transient_errors_until_the_write_succeeds() -> None:
    calls = 0
    slept: list[float] = []

    async def write() -> str:
        nonlocal calls
        calls += 1
        if calls < 6:
            raise Down("connection refused")
        return "stored"

    async def fake_sleep(seconds: float) -> None:
        slept.append(seconds)

    result = await retry_until_done(
        write, transient=(Down,), what="sink", policy=RetryPolicy(0.1, 1.0),
        sleep=fake_sleep,
    )  # fmt: skip
    assert result == "stored"
    assert calls == 6
    assert len(slept) == 5
    assert all(0 < s <= 1.0 for s in slept)
    assert slept[-1] > slept[0]  # it backs off


async def test_other_errors_propagate() -> None:
    async def write() -> None:
        raise ValueError("a bug, not an outage")

    with pytest.raises(ValueError, match="a bug"):
        await retry_until_done(write, transient=(Down,), what="sink")


async def test_waits_grow_and_stay_capped_and_it_logs_once_each_way() -> None:
    from structlog.testing import capture_logs

    calls = 0
    slept: list[float] = []

    async def write() -> str:
        nonlocal calls
        calls += 1
        if calls <= 20:
            raise Down("refused")
        return "stored"

    async def fake_sleep(seconds: float) -> None:
        slept.append(seconds)

    with capture_logs() as logs:
        await retry_until_done(
            write, transient=(Down,), what="sink", policy=RetryPolicy(0.2, 5.0), sleep=fake_sleep
        )
    assert max(slept) <= 5.0
    assert min(slept[10:]) >= 2.5  # at the cap: half fixed, half random
    assert [entry["event"] for entry in logs] == ["sink.backpressure", "sink.recovered"]
    assert logs[1]["attempts"] == 21


def test_outage_log_reports_start_and_end_once() -> None:
    from structlog.testing import capture_logs

    from streams.retry import OutageLog

    outage = OutageLog("stats")
    with capture_logs() as logs:
        outage.succeeded()
        for _ in range(5):
            outage.failed(ConnectionError("refused"))
        outage.succeeded()
        outage.succeeded()
    events = [entry["event"] for entry in logs]
    assert events == ["stats.failing", "stats.recovered"]
    assert logs[1]["failed_runs"] == 5
