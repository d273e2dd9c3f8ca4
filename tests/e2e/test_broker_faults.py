"""End to end under Kafka broker faults: the simulator sends at a steady pace, one `ioc worker`
consumes, and the local broker (the one `ioc dev up` started) is stopped for 20 s, or killed
with -9, and started again in the middle of it.

Each test checks what an operator would: the simulator finished (its producer buffered and
retried, nothing dropped), the worker process never exited, every sent event is accounted for
exactly against the simulator's manifest (stored + duplicates + dead letters = sent, per domain
and reason), and the group's lag drains to 0. The broker is running again when a test ends,
whatever happened: the tests after these need it.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import psycopg
import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import KafkaError

from localdev.accounting import group_lag
from localdev.processes import ChildCommand
from localdev.runtime import LocalKafka, wait_gone
from simulator.generate import Manifest
from streams.settings import Settings
from tests.e2e import test_pipeline as pipeline_e2e

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

stack = pipeline_e2e.stack  # own topics, consumer group and database per test
Stack = pipeline_e2e.Stack

RATE = 300  # events/s: the simulator sends before, during and after the fault
COUNT = 12_000  # 40 s of sending
FAULT_AFTER_S = 6.0
STOPPED_S = 20.0
KILLED_S = 10.0


@pytest.fixture
def broker(stack: Stack, settings: Settings) -> Iterator[LocalKafka]:
    """The local broker, started again at teardown if a test left it down (it is torn down
    before `stack`, whose teardown deletes the test's topics)."""
    kafka = LocalKafka(settings)
    assert kafka.pid(), (
        f"no local broker of `ioc dev up` runs under {kafka.home} for {settings.kafka.bootstrap};"
        " these tests stop and kill it: start it with `.venv/bin/ioc dev up`"
    )
    try:
        yield kafka
    finally:
        if not (kafka.pid() and kafka.ready(timeout=5.0)):
            kafka.start()


def kill9(kafka: LocalKafka) -> None:
    pid = kafka.pid()
    assert pid, "the broker is not running"
    os.kill(pid, signal.SIGKILL)
    assert wait_gone(pid, "kafka.Kafka", 10), f"broker pid {pid} survived SIGKILL"


def start_simulator(stack: Stack, seed: int) -> tuple[ChildCommand, Path]:
    manifest = stack.logs / f"manifest-{seed}.json"
    args = ["simulate", "--count", str(COUNT), "--rate", str(RATE), "--seed", str(seed)]
    args += ["--faults", "0.002", "--manifest", str(manifest)]
    log = stack.logs / f"simulate-{uuid.uuid4().hex[:6]}.log"
    return ChildCommand(args, log, stack.env).start(), manifest


def stay_alive(seconds: float, *children: ChildCommand) -> None:
    """Sleep `seconds`, failing as soon as one of `children` exits."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        for child in children:
            assert child.running(), f"{child.args[0]} exited:\n{child.log_tail(40)}"
        time.sleep(0.5)


def wait_lag_drained(stack: Stack, timeout_s: float = 120) -> int:
    topics = list(stack.registry.topics().values())
    group = stack.env["IOC_STREAM__APP_ID"]
    deadline = time.monotonic() + timeout_s
    lag = -1
    while time.monotonic() < deadline:
        with contextlib.suppress(KafkaError, OSError):  # a broker still loading: ask again
            lag = asyncio.run(group_lag(stack.settings, group, topics))
            if lag == 0:
                return lag
        time.sleep(1)
    return lag


def messages_in_log(stack: Stack) -> dict[str, int]:
    """Messages in each domain's topic (end minus beginning offsets, every partition)."""

    async def count() -> dict[str, int]:
        consumer = AIOKafkaConsumer(bootstrap_servers=stack.settings.kafka.bootstrap)
        await consumer.start()
        try:
            out = {}
            for domain, topic in stack.registry.topics().items():
                tps = [TopicPartition(topic, p) for p in range(stack.settings.kafka.partitions)]
                ends, starts = (
                    await consumer.end_offsets(tps),
                    await consumer.beginning_offsets(tps),
                )
                out[domain] = sum(ends[tp] - starts[tp] for tp in tps)
            return out
        finally:
            await consumer.stop()

    return asyncio.run(count())


#: Does something to the broker while the worker and the simulator (the children) run.
Fault = Callable[[LocalKafka, tuple[ChildCommand, ...]], None]


def run_through_fault(stack: Stack, broker: LocalKafka, fault: Fault, seed: int) -> None:
    """Worker and simulator running; `fault` in the middle of sending; then every check."""
    worker = stack.start_worker()
    simulator, manifest_path = start_simulator(stack, seed)
    stay_alive(FAULT_AFTER_S, worker, simulator)
    fault(broker, (worker, simulator))
    code = simulator.wait(240)
    assert code == 0, f"the simulator exited {code}:\n{simulator.log_tail(40)}"
    manifest = Manifest.from_json(manifest_path.read_bytes())
    assert sum(manifest.sent.values()) == COUNT
    # the producer's retries neither dropped nor doubled a message
    assert messages_in_log(stack) == {d: manifest.sent.get(d, 0) for d in stack.registry.topics()}
    # every message committed: each one below the offsets must be stored or dead-lettered
    assert wait_lag_drained(stack, timeout_s=180) == 0
    pipeline_e2e.assert_accounted(stack, manifest, timeout_s=60)
    assert worker.running(), worker.log_tail(40)
    with psycopg.connect(stack.settings.db.conninfo("owner")) as conn:
        assert conn.execute("SELECT count(*) - count(DISTINCT id) FROM events").fetchone() == (0,)
    # the worker lived through the outage: its stats timer saw the broker go and come back
    log = worker.log_path.read_text(errors="replace")
    assert "stats.failing" in log and "stats.recovered" in log


def stop_for_20_seconds(broker: LocalKafka, children: tuple[ChildCommand, ...]) -> None:
    broker.stop()
    stay_alive(STOPPED_S, *children)
    broker.start()


def kill_9_and_restart(broker: LocalKafka, children: tuple[ChildCommand, ...]) -> None:
    kill9(broker)
    stay_alive(KILLED_S, *children)
    broker.start()


def test_broker_stopped_for_20_seconds_while_the_simulator_sends(
    stack: Stack, broker: LocalKafka
) -> None:
    run_through_fault(stack, broker, stop_for_20_seconds, seed=21)


def test_broker_killed_with_9_and_restarted_while_the_simulator_sends(
    stack: Stack, broker: LocalKafka
) -> None:
    run_through_fault(stack, broker, kill_9_and_restart, seed=22)
