"""A real `ioc worker` child process, as an operator runs it: what its `/metrics` page says after
it has processed known events, and what its log shows a newcomer on a healthy start.

The module starts one worker on its own topics (fresh prefix), consumer group and scratch
database, feeds it two waves of environment events (valid ones, bad JSON, then redelivered
copies of valid ones), and waits until the worker has counted all of them.
"""

from __future__ import annotations

import asyncio
import os
import re
import time
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
import pytest
from aiokafka import AIOKafkaProducer
from prometheus_client.metrics_core import Metric
from prometheus_client.openmetrics.parser import (
    text_string_to_metric_families as openmetrics_families,
)
from prometheus_client.parser import text_string_to_metric_families

from domains import Registry, binary_message
from localdev.processes import ChildCommand, wait_http_ok
from localdev.runtime import LocalPostgres
from streams.settings import Settings, load_settings
from tests.support.database import free_port, scratch_database
from tests.support.worker_stack import delete_topics

pytestmark = [pytest.mark.integration, pytest.mark.slow]

FIRST_VALID, FIRST_BAD = 30, 2  # before the worker starts
SECOND_VALID, SECOND_BAD, REDELIVERED = 10, 1, 5  # after it has stored the first wave
RECEIVED = FIRST_VALID + FIRST_BAD + SECOND_VALID + SECOND_BAD + REDELIVERED
STORED = FIRST_VALID + SECOND_VALID

Message = tuple[bytes, bytes, list[tuple[str, bytes]]]  # key, value, headers


@dataclass
class RunningWorker:
    child: ChildCommand
    port: int
    settings: Settings
    topic: str
    partitions_written: set[int] = field(default_factory=set)

    def scrape(self, accept: str | None = None) -> tuple[str, str]:
        """(body, content type) of GET /metrics."""
        request = urllib.request.Request(f"http://127.0.0.1:{self.port}/metrics")
        if accept is not None:
            request.add_header("Accept", accept)
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.read().decode(), response.headers["Content-Type"]

    def families(self) -> dict[str, Metric]:
        body, _ = self.scrape()
        return {family.name: family for family in text_string_to_metric_families(body)}

    def received(self) -> float:
        events = self.families().get("ioc_events")
        if events is None:
            return 0.0
        return value_of(events, "ioc_events_total", domain="environment", outcome="received")

    def stored_rows(self) -> int:
        with psycopg.connect(self.settings.db.conninfo("owner")) as conn:
            row = conn.execute("SELECT count(*) FROM events").fetchone()
        assert row is not None
        return int(row[0])


def value_of(family: Metric, name: str, **labels: str) -> float:
    """The one sample `name` of `family` whose labels include `labels` (0 if there is none)."""
    found = [
        s.value
        for s in family.samples
        if s.name == name and all(s.labels.get(k) == v for k, v in labels.items())
    ]
    assert len(found) <= 1, f"{name}{labels}: {len(found)} samples"
    return found[0] if found else 0.0


def water_levels(settings: Settings, count: int) -> list[Message]:
    water_level = f"{settings.domains.namespace}.environment.water_level.v1"
    now = datetime.now(UTC)
    messages = []
    for n in range(count):
        entity = f"test-gauge-{uuid.uuid4().hex[:8]}"
        data = {
            "entity_id": entity, "water_body": "Serepok", "water_body_kind": "river",
            "water_level": 400.0 + n, "location": {"type": "Point", "coordinates": [108.05, 12.68]},
        }  # fmt: skip
        value, headers = binary_message(
            id=str(uuid.uuid4()), source="urn:test:worker", type=water_level,
            time=now - timedelta(seconds=n), data=data,
        )  # fmt: skip
        messages.append((entity.encode(), value, headers))
    return messages


def bad_json(count: int) -> list[Message]:
    return [(b"test-broken-%d" % n, b"{not json", []) for n in range(count)]


async def send(bootstrap: str, topic: str, messages: list[Message]) -> set[int]:
    """Produce and wait for the broker's acknowledgement; the partitions written."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    try:
        futures = [
            await producer.send(topic, value=value, key=key, headers=headers)
            for key, value, headers in messages
        ]
        return {(await future).partition for future in futures}
    finally:
        await producer.stop()


def wait_for(what: str, check: object, timeout: float, child: ChildCommand) -> None:
    deadline = time.monotonic() + timeout
    while not check():  # type: ignore[operator]
        assert child.running(), f"the worker exited:\n{child.log_tail(40)}"
        assert time.monotonic() < deadline, f"{what}: not within {timeout:.0f}s\n{child.log_tail()}"
        time.sleep(0.5)


def run_ioc(env: dict[str, str], logs: Path, *args: str) -> None:
    child = ChildCommand(list(args), logs / f"{args[0]}.log", env).start()
    code = child.wait(120)
    assert code == 0, f"ioc {' '.join(args)} exited {code}:\n{child.log_tail(40)}"


@pytest.fixture(scope="module")
def worker(
    settings: Settings,
    kafka_bootstrap: str,
    pg_conninfo: str,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[RunningWorker]:
    logs = tmp_path_factory.mktemp("worker")
    run = uuid.uuid4().hex[:8]
    prefix = f"wk{run}"
    superuser = LocalPostgres(settings).superuser_conninfo()
    with scratch_database(superuser, settings.db, "ioc_worker") as dbname:
        port = free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith("IOC_")} | {
            "IOC_KAFKA__BOOTSTRAP": settings.kafka.bootstrap,
            "IOC_KAFKA__TOPIC_PREFIX": prefix,
            "IOC_DB__PORT": str(settings.db.port),
            "IOC_DB__NAME": dbname,
            "IOC_DEV__STATE_DIR": str(settings.dev.state_dir),
            "IOC_STREAM__APP_ID": f"ioc-worker-test-{run}",
            "IOC_STREAM__WEB_PORT": str(port),
            "IOC_STREAM__STATS_INTERVAL_S": "1",
        }
        worker_settings = load_settings(
            db=settings.db.model_copy(update={"name": dbname}),
            kafka=settings.kafka.model_copy(update={"topic_prefix": prefix}),
        )
        topic = Registry(worker_settings.domains.namespace, prefix).topic("environment")
        run_ioc(env, logs, "db", "migrate")
        run_ioc(env, logs, "topics", "create")
        running = RunningWorker(
            ChildCommand(["worker"], logs / "worker.log", env), port, worker_settings, topic
        )
        first = water_levels(worker_settings, FIRST_VALID)
        running.partitions_written |= asyncio.run(
            send(kafka_bootstrap, topic, [*first, *bad_json(FIRST_BAD)])
        )
        running.child.start()
        try:
            wait_http_ok(f"http://127.0.0.1:{port}/metrics", timeout=90, child=running.child)
            wait_for(
                "the first wave stored",
                lambda: running.stored_rows() == FIRST_VALID,
                60,
                running.child,
            )
            second = [
                *water_levels(worker_settings, SECOND_VALID),
                *bad_json(SECOND_BAD),
                *first[:REDELIVERED],  # the same messages again: a producer's retry
            ]
            running.partitions_written |= asyncio.run(send(kafka_bootstrap, topic, second))
            wait_for(
                f"ioc_events_total received = {RECEIVED}",
                lambda: running.received() == RECEIVED,
                60,
                running.child,
            )
            yield running
        finally:
            running.child.stop(30)
            asyncio.run(delete_topics(settings.kafka.bootstrap, f"{prefix}."))


def test_metrics_page_counts_what_the_worker_processed(worker: RunningWorker) -> None:
    families = worker.families()
    events = families["ioc_events"]
    assert events.type == "counter"
    outcomes = {
        outcome: value_of(events, "ioc_events_total", domain="environment", outcome=outcome)
        for outcome in ("received", "stored", "duplicates", "rejected")
    }
    assert outcomes == {
        "received": RECEIVED,
        "stored": STORED,
        "duplicates": REDELIVERED,
        "rejected": FIRST_BAD + SECOND_BAD,
    }
    assert worker.stored_rows() == STORED  # the page tells what the database holds
    rejected = families["ioc_events_rejected"]
    assert value_of(
        rejected, "ioc_events_rejected_total", domain="environment", reason="bad_json"
    ) == (FIRST_BAD + SECOND_BAD)
    assert {s.labels["domain"] for s in events.samples} == {"environment"}

    latency = families["ioc_end_to_end_latency_seconds"]
    assert latency.type == "histogram"
    decoded = STORED + REDELIVERED  # every event that decoded got as far as a commit
    name = "ioc_end_to_end_latency_seconds"
    assert value_of(latency, f"{name}_count", domain="environment") == decoded
    assert value_of(latency, f"{name}_bucket", domain="environment", le="+Inf") == decoded
    assert value_of(latency, f"{name}_bucket", domain="environment", le="3600.0") == decoded
    assert value_of(latency, f"{name}_bucket", domain="environment", le="0.01") == 0
    assert 0 < value_of(latency, f"{name}_sum", domain="environment") < decoded * 600


def test_consumer_lag_reaches_zero_for_every_partition_written(worker: RunningWorker) -> None:
    def lags() -> dict[int, float]:
        family = worker.families()["ioc_consumer_lag"]
        assert family.type == "gauge"
        return {
            int(s.labels["partition"]): s.value
            for s in family.samples
            if s.labels["topic"] == worker.topic
        }

    wait_for(
        "lag 0 on every partition written",
        lambda: (seen := lags()).keys() >= worker.partitions_written and not any(seen.values()),
        30,
        worker.child,
    )


def test_metrics_page_speaks_openmetrics_when_asked(worker: RunningWorker) -> None:
    body, content_type = worker.scrape()
    assert content_type.startswith("text/plain; version=0.0.4")
    body, content_type = worker.scrape("application/openmetrics-text; version=1.0.0")
    assert content_type.startswith("application/openmetrics-text; version=1.0.0")
    families = {f.name: f for f in openmetrics_families(body)}  # raises unless valid OpenMetrics
    stored = value_of(
        families["ioc_events"], "ioc_events_total", domain="environment", outcome="stored"
    )
    assert stored == STORED


ALARMING = [
    (re.compile(r"level=(warning|error|critical)\b", re.IGNORECASE), "a warning or an error"),
    (re.compile(r"\[(WARNING|ERROR|CRITICAL)\]"), "a warning or an error"),
    (re.compile(r"\b[A-Z]\w*(Warning|Error):"), "a Python warning or exception"),
    (re.compile(r"Traceback \(most recent call last\)"), "a traceback"),
]
ESCAPE = re.compile(r"\x1b")


def alarming_lines(log: str) -> list[str]:
    return [
        f"{what}: {line!r}"
        for line in log.splitlines()
        for pattern, what in ALARMING
        if pattern.search(line)
    ]


def test_a_healthy_worker_log_is_calm(worker: RunningWorker) -> None:
    """After it has started and processed the events (bad JSON included: an expected outcome,
    counted and dead-lettered, not a worker problem): no warning, error or traceback."""
    assert worker.child.running()
    log = worker.child.log_path.read_text(errors="replace")  # its stdout and stderr
    assert alarming_lines(log) == []


def test_sigterm_stops_the_worker_cleanly(worker: RunningWorker) -> None:
    """It stops the module's worker, as an operator or systemd does: the tests after it read
    the whole log, start and stop."""
    started = worker.child.log_path.stat().st_size
    began = time.monotonic()
    code = worker.child.stop(30)  # SIGTERM, then SIGKILL after 30 s
    assert code == 0, f"exit code {code} after {time.monotonic() - began:.0f}s"
    with worker.child.log_path.open(errors="replace") as log:
        log.seek(started)
        assert alarming_lines(log.read()) == []


def test_the_worker_log_has_no_terminal_escape_codes(worker: RunningWorker) -> None:
    log = worker.child.log_path.read_text(errors="replace")
    assert [line for line in log.splitlines() if ESCAPE.search(line)] == []


def test_the_alarm_patterns_catch_what_they_should() -> None:
    assert ESCAPE.search("\x1b[?25l\x08\x1b[?25h")
    assert len(alarming_lines("timestamp=... level=WARNING logger=faust event=x")) == 1
    assert len(alarming_lines("[2026-12-01 10:00:00,000] [7] [ERROR] boom")) == 1
    assert len(alarming_lines("/x.py:1: RuntimeWarning: coroutine never awaited")) == 1
    assert alarming_lines("timestamp=... level=info event=worker.ready errors=0") == []
