"""Offsets never pass an event that is neither stored nor dead-lettered, whatever the way out of
a real `ioc worker` (kill -9 is in test_pipeline.py).

Each test sends valid events, lets a worker store its first batch, then makes it leave while it
holds its second batch unstored (tests.support.faulty_worker): an exception in the fetcher, the
cancellation of its agent, an exception out of its loop body, a crash of its stats timer, or
SIGTERM while the database is away. A crash takes the worker down with a non-zero exit (its
supervisor restarts it); SIGTERM stops it within STOP_WAIT_S. The test then reads the group's
committed offsets and checks every event below them against the database and the DLQ, and
finally lets a plain worker finish: every event ends up stored.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from localdev.processes import ChildCommand
from localdev.runtime import LocalPostgres
from streams.faust_ext import STOP_WAIT_S
from streams.settings import Settings
from tests.support.worker_stack import Sent, WorkerStack, water_level_events, worker_stack

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

EVENTS = 300


@pytest.fixture
def stack(
    settings: Settings, kafka_bootstrap: str, pg_conninfo: str, tmp_path: Path
) -> Iterator[WorkerStack]:
    with worker_stack(
        settings, tmp_path, IOC_STREAM__BATCH_SIZE="40", IOC_STREAM__STATS_INTERVAL_S="1"
    ) as stack:
        yield stack


def held_then_check(stack: WorkerStack, sent: Sent, worker_log: Path) -> None:
    """The fault fired on a held batch; nothing below the committed offsets is unaccounted for;
    a plain worker then stores every event."""
    assert "fault.injected" in worker_log.read_text(errors="replace")
    stored = stack.stored_ids()
    assert stored, "the first batch was never stored: the fault fired too early to test anything"
    assert set(sent.values()) - stored, "every event was stored: no batch was held"
    assert stack.unaccounted_below_committed(sent) == []
    stack.start_worker()
    assert stack.wait_until_stored(set(sent.values())) == set()
    stack.wait_until_committed(sent)
    assert stack.unaccounted_below_committed(sent) == []


def exits_non_zero(worker: ChildCommand) -> None:
    """The worker leaves on its own, non-zero: its supervisor starts it again."""
    code = worker.wait(60)
    assert code is not None, f"the worker went on after the fault:\n{worker.log_tail()}"
    assert code != 0, worker.log_tail()


def test_an_exception_in_the_fetcher_commits_nothing_unstored(stack: WorkerStack) -> None:
    worker = stack.worker(fault="fetch_raises").start()
    sent = stack.send(water_level_events(stack.settings, EVENTS, tag="fetch"))
    exits_non_zero(worker)
    held_then_check(stack, sent, worker.log_path)


def test_a_cancelled_agent_commits_nothing_unstored(stack: WorkerStack) -> None:
    worker = stack.worker(fault="agent_cancelled").start()
    sent = stack.send(water_level_events(stack.settings, EVENTS, tag="cancel"))
    exits_non_zero(worker)
    held_then_check(stack, sent, worker.log_path)


def test_a_crashed_timer_commits_nothing_unstored(stack: WorkerStack) -> None:
    worker = stack.worker(fault="timer_raises").start()
    sent = stack.send(water_level_events(stack.settings, EVENTS, tag="timer"))
    exits_non_zero(worker)
    held_then_check(stack, sent, worker.log_path)


def test_a_raising_body_commits_nothing_unstored(stack: WorkerStack) -> None:
    worker = stack.worker(fault="body_raises").start()
    sent = stack.send(water_level_events(stack.settings, EVENTS, tag="raise"))
    exits_non_zero(worker)
    held_then_check(stack, sent, worker.log_path)


def set_connections(superuser: str, dbname: str, *, allowed: bool) -> None:
    """Open or close one database to new connections, and end the open ones when closing: an
    outage of the worker's database that leaves the other tests' databases alone."""
    statement = sql.SQL("ALTER DATABASE {} WITH ALLOW_CONNECTIONS {}").format(
        sql.Identifier(dbname), sql.SQL("true" if allowed else "false")
    )
    with psycopg.connect(superuser, autocommit=True) as conn:
        conn.execute(statement)
        if not allowed:
            conn.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s",
                (dbname,),
            )


def test_sigterm_during_a_database_outage_commits_nothing_unstored(
    stack: WorkerStack, settings: Settings
) -> None:
    """The worker holds its batches and retries while the database is away; SIGTERM then stops
    it within STOP_WAIT_S (and a little), cleanly, without committing the batches it held."""
    worker = stack.start_worker()
    superuser = LocalPostgres(settings).superuser_conninfo()
    first = stack.send(water_level_events(stack.settings, 40, tag="before"))
    assert stack.wait_until_stored(set(first.values())) == set()
    assert stack.wait_until_committed(first)
    set_connections(superuser, stack.settings.db.name, allowed=False)
    try:
        sent = first | stack.send(water_level_events(stack.settings, EVENTS, tag="outage"))
        time.sleep(4)  # the worker takes batches, fails to write them, and retries
        started = time.monotonic()
        code = worker.stop(STOP_WAIT_S + 30)
        took = time.monotonic() - started
    finally:
        set_connections(superuser, stack.settings.db.name, allowed=True)
    assert code == 0, worker.log_tail()
    assert took < STOP_WAIT_S + 15, f"SIGTERM took {took:.0f} s"
    assert "in flight: they are not committed" in worker.log_path.read_text(errors="replace")
    assert stack.stored_ids() == set(first.values())
    assert stack.unaccounted_below_committed(sent) == []
    stack.start_worker()
    assert stack.wait_until_stored(set(sent.values())) == set()
