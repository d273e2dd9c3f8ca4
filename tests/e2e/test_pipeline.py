"""End to end: simulator -> Kafka -> `ioc worker` (real child processes) -> PostgreSQL.

Every test runs on its own topics (fresh prefix), consumer group and database, and checks that
every sent event is accounted for exactly: stored rows per domain, dead letters per domain and
reason (one per origin offset), duplicates = the rest, all equal to the simulator's manifest.
"""

from __future__ import annotations

import asyncio
import os
import time
import urllib.request
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
import pytest
from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient

from domains import Registry, binary_message
from localdev.accounting import Observed, observe, split_expected, wait_until_accounted
from localdev.processes import ChildCommand, wait_http_ok
from localdev.runtime import LocalPostgres
from simulator.generate import Manifest
from streams.dlq import DeadLetter, dlq_topic, read_letters
from streams.settings import Settings, load_settings
from tests.support.database import free_port, scratch_database
from tests.support.worker_stack import delete_topics

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

HORIZON_S = 3600.0
MARGIN_S = 600.0  # late faults this close to the horizon may fall either side of it


@dataclass
class Stack:
    env: dict[str, str]
    settings: Settings
    registry: Registry
    logs: Path
    workers: list[ChildCommand]

    def ioc(self, *args: str, timeout: float = 180) -> str:
        child = ChildCommand(
            list(args), self.logs / f"{args[0]}-{uuid.uuid4().hex[:6]}.log", self.env
        ).start()
        code = child.wait(timeout)
        assert code == 0, f"ioc {' '.join(args)} exited {code}:\n{child.log_tail(40)}"
        return child.log_path.read_text(errors="replace")

    def start_worker(self) -> ChildCommand:
        port = free_port()
        env = self.env | {"IOC_STREAM__WEB_PORT": str(port)}
        child = ChildCommand(["worker"], self.logs / f"worker-{len(self.workers)}.log", env).start()
        self.workers.append(child)
        wait_http_ok(f"http://127.0.0.1:{port}/metrics", timeout=90, child=child)
        return child

    def simulate(self, count: int, *, faults: float = 0.002, seed: int = 1) -> Manifest:
        path = self.logs / f"manifest-{seed}.json"
        self.ioc(
            "simulate", "--count", str(count), "--fast", "--seed", str(seed),
            "--faults", str(faults), "--manifest", str(path),
        )  # fmt: skip
        return Manifest.from_json(path.read_bytes())

    def observe(self) -> Observed:
        return observe(self.settings, self.registry)


@pytest.fixture
def stack(
    settings: Settings, kafka_bootstrap: str, pg_conninfo: str, tmp_path: Path
) -> Iterator[Stack]:
    superuser = LocalPostgres(settings).superuser_conninfo()
    run = uuid.uuid4().hex[:8]
    with scratch_database(superuser, settings.db, "ioc_e2e") as dbname:
        env = {k: v for k, v in os.environ.items() if not k.startswith("IOC_")} | {
            "IOC_DB__NAME": dbname,
            "IOC_KAFKA__TOPIC_PREFIX": f"e2e{run}",
            "IOC_STREAM__APP_ID": f"ioc-e2e-{run}",
            "IOC_STREAM__LATE_HORIZON_S": str(HORIZON_S),
            "IOC_STREAM__STATS_INTERVAL_S": "2",
            "IOC_STREAM__MAINTENANCE_INTERVAL_S": "2",
            "IOC_KAFKA__BOOTSTRAP": settings.kafka.bootstrap,
            "IOC_DB__PORT": str(settings.db.port),
        }
        stack_settings = load_settings(
            db=settings.db.model_copy(update={"name": dbname}),
            kafka=settings.kafka.model_copy(update={"topic_prefix": f"e2e{run}"}),
        )
        registry = Registry(stack_settings.domains.namespace, stack_settings.kafka.topic_prefix)
        stack = Stack(env, stack_settings, registry, tmp_path, [])
        stack.ioc("db", "migrate")
        stack.ioc("topics", "create")
        try:
            yield stack
        finally:
            for worker in stack.workers:
                worker.stop(20)
            asyncio.run(delete_topics(settings.kafka.bootstrap, f"e2e{run}."))


def expected_bounds(
    manifest: Manifest,
) -> tuple[dict[str, dict[str, int]], dict[str, dict[str, int]]]:
    """Expectations with the horizon a little earlier and later: a late fault whose lag is within
    MARGIN_S of the horizon may land either side (its age grows while it waits in Kafka)."""
    return manifest.expected(late_horizon_s=HORIZON_S - MARGIN_S), manifest.expected(
        late_horizon_s=HORIZON_S + MARGIN_S
    )


def assert_accounted(stack: Stack, manifest: Manifest, timeout_s: float = 120) -> Observed:
    strict, lenient = expected_bounds(manifest)
    stored_lo, dead_hi, _ = split_expected(strict)
    stored_hi, dead_lo, _ = split_expected(lenient)
    observed = wait_until_accounted(
        stack.settings, stack.registry,
        expected_dead={d: sum(c.values()) for d, c in dead_lo.items()},
        expected_stored=stored_lo, timeout_s=timeout_s,
    )  # fmt: skip
    time.sleep(3)  # anything still in flight now would be a double write or a double letter
    observed = stack.observe()
    for domain, sent in manifest.sent.items():
        assert stored_lo[domain] <= observed.stored[domain] <= stored_hi[domain], (
            domain,
            observed.stored,
        )
        for reason in (
            set(dead_lo[domain]) | set(dead_hi[domain]) | set(observed.dead.get(domain, {}))
        ):
            got = observed.dead.get(domain, Counter())[reason]
            assert dead_lo[domain][reason] <= got <= dead_hi[domain][reason], (domain, reason, got)
        duplicates = sent - observed.accounted(domain)
        assert duplicates == strict[domain].get("duplicate", 0), (domain, duplicates)
    return observed


def test_hundred_thousand_events_with_faults_are_all_accounted_for(stack: Stack) -> None:
    stack.start_worker()
    manifest = stack.simulate(100_000, faults=0.002, seed=11)
    assert sum(manifest.sent.values()) == 100_000
    observed = assert_accounted(stack, manifest)
    assert sum(observed.stored.values()) > 95_000
    assert {r for c in observed.dead.values() for r in c} >= {
        "bad_json",
        "unknown_type",
        "too_large",
    }


def test_kill_9_three_times_loses_nothing_and_stores_nothing_twice(stack: Stack) -> None:
    worker = stack.start_worker()
    manifest = stack.simulate(120_000, faults=0.002, seed=12)
    for _ in range(3):
        time.sleep(4)
        worker.kill9()
        assert not worker.running()
        worker = stack.start_worker()
    assert_accounted(stack, manifest, timeout_s=180)
    with psycopg.connect(stack.settings.db.conninfo("owner")) as conn:
        row = conn.execute("SELECT count(*) - count(DISTINCT id) FROM events").fetchone()
    assert row == (0,)


def test_database_down_for_30_seconds_the_worker_waits_and_resumes(
    stack: Stack, settings: Settings
) -> None:
    worker = stack.start_worker()
    postgres = LocalPostgres(settings)
    manifest = stack.simulate(60_000, faults=0.002, seed=13)
    time.sleep(2)
    postgres.stop()
    try:
        time.sleep(30)
        assert worker.running(), worker.log_tail()
    finally:
        postgres.start()
    assert_accounted(stack, manifest, timeout_s=180)
    assert worker.running()
    log = worker.log_path.read_text(errors="replace")
    assert "sink.backpressure" in log and "sink.recovered" in log
    # once per state change (per agent), not once per retry
    assert log.count("sink.backpressure") <= len(stack.registry.domains())
    assert log.count("stats.failing") <= 1 and log.count("maintenance.failing") <= 1


def group_members(stack: Stack) -> list[set[tuple[str, int]]]:
    async def describe() -> list[set[tuple[str, int]]]:
        from aiokafka.coordinator.protocol import ConsumerProtocolMemberAssignment

        admin = AIOKafkaAdminClient(bootstrap_servers=stack.settings.kafka.bootstrap)
        await admin.start()
        try:
            (response,) = await admin.describe_consumer_groups([stack.env["IOC_STREAM__APP_ID"]])
        finally:
            await admin.close()
        (group,) = response.groups
        members = []
        for _id, _client, _host, _metadata, raw_assignment in group[5]:
            assignment = ConsumerProtocolMemberAssignment.decode(raw_assignment)
            members.append({(t, p) for t, parts in assignment.assignment for p in parts})
        return members

    return asyncio.run(describe())


def test_two_workers_share_partitions_and_one_takes_over(stack: Stack) -> None:
    first = stack.start_worker()
    second = stack.start_worker()
    time.sleep(5)  # let the group settle
    members = group_members(stack)
    domain_topics = set(stack.registry.topics().values())
    owned = [{tp for tp in m if tp[0] in domain_topics} for m in members]
    assert len(owned) == 2 and all(owned), owned
    assert not owned[0] & owned[1]
    manifest = stack.simulate(60_000, faults=0.002, seed=14)
    time.sleep(2)
    assert second.stop(30) is not None  # a clean stop: its partitions move to the first
    assert first.running()
    assert_accounted(stack, manifest, timeout_s=180)
    (alone,) = group_members(stack)
    assert {tp for tp in alone if tp[0] in domain_topics} == {
        (t, p) for t in domain_topics for p in range(stack.settings.kafka.partitions)
    }


def test_late_and_out_of_order_events_land_in_their_minute(stack: Stack) -> None:
    registry = stack.registry
    water_level = f"{stack.settings.domains.namespace}.environment.water_level.v1"
    assert registry.lookup(water_level) is not None
    now = datetime.now(UTC).replace(second=30, microsecond=0)
    minutes_ago = [
        50,
        3,
        20,
        0,
        35,
        3,
        50,
        12,
    ]  # out of order; some share a minute; up to 50 min late
    sent: list[tuple[datetime, float]] = []
    messages = []
    for n, minutes in enumerate(minutes_ago):
        when = now - timedelta(minutes=minutes, seconds=n)
        level = 400.0 + n
        sent.append((when, level))
        data = {
            "entity_id": "e2e-gauge-serepok", "water_body": "Serepok", "water_body_kind": "river",
            "water_level": level, "location": {"type": "Point", "coordinates": [108.05, 12.68]},
        }  # fmt: skip
        value, headers = binary_message(
            id=str(uuid.uuid4()), source="urn:test:e2e", type=water_level, time=when, data=data
        )
        messages.append((b"e2e-gauge-serepok", value, headers))
    asyncio.run(send_all(stack, messages))
    stack.start_worker()

    by_minute: dict[datetime, list[float]] = {}
    for when, level in sent:
        by_minute.setdefault(when.replace(second=0, microsecond=0), []).append(level)
    expected = {
        minute: (len(levels), sum(levels) / len(levels)) for minute, levels in by_minute.items()
    }
    deadline = time.monotonic() + 90
    got: dict[datetime, tuple[int, float]] = {}
    while time.monotonic() < deadline:
        with psycopg.connect(stack.settings.db.conninfo("grafana")) as conn:
            rows = conn.execute(
                "SELECT bucket, sum(count), sum(avg * count) / sum(count) FROM measurements_1m"
                " WHERE domain = 'environment' AND metric = 'water_level' GROUP BY bucket"
            ).fetchall()
        got = {bucket: (int(count), float(avg)) for bucket, count, avg in rows}
        if set(got) == set(expected) and all(got[m][0] == expected[m][0] for m in expected):
            break
        time.sleep(1)
    assert set(got) == set(expected)
    for minute, (count, avg) in expected.items():
        assert got[minute][0] == count
        assert got[minute][1] == pytest.approx(avg)


async def send_all(
    stack: Stack, messages: list[tuple[bytes, bytes, list[tuple[str, bytes]]]]
) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=stack.settings.kafka.bootstrap, acks="all")
    await producer.start()
    try:
        topic = stack.registry.topic("environment")
        for key, value, headers in messages:
            await producer.send(topic, value=value, key=key, headers=headers)
        await producer.flush()
    finally:
        await producer.stop()


def test_dead_letter_tools_stats_show_and_replay(stack: Stack) -> None:
    worker_port = free_port()
    stack.env["IOC_STREAM__WEB_PORT"] = str(worker_port)
    child = ChildCommand(["worker"], stack.logs / "worker-dlq.log", stack.env).start()
    stack.workers.append(child)
    wait_http_ok(f"http://127.0.0.1:{worker_port}/metrics", timeout=90, child=child)
    manifest = stack.simulate(5_000, faults=0.01, seed=15)
    observed = assert_accounted(stack, manifest)

    stats = stack.ioc("dlq", "stats")
    expected_unknown = sum(c["unknown_type"] for c in observed.dead.values())
    assert expected_unknown > 0
    assert "unknown_type" in stats and "bad_json" in stats
    shown = stack.ioc("dlq", "show", "--reason", "bad_json", "--limit", "3")
    assert shown.count(f"bad_json {stack.settings.kafka.topic_prefix}.") == 3

    replayed = stack.ioc("dlq", "replay", "--reason", "unknown_type")
    assert f"replayed {expected_unknown:,} dead letters" in replayed
    # still unknown to the registry: they come back, once each, with replay count 1
    deadline = time.monotonic() + 60
    again: list[int] = []
    while time.monotonic() < deadline:
        letters = asyncio.run(read_all_letters(stack))
        again = [
            x.replay_count for x in letters if x.reason == "unknown_type" and x.replay_count == 1
        ]
        if len(again) >= expected_unknown:
            break
        time.sleep(1)
    assert len(again) == expected_unknown
    # the cursor moved: only the returned letters are left to replay for this reason
    dry = stack.ioc("dlq", "replay", "--reason", "unknown_type", "--dry-run")
    assert f"would replay {expected_unknown:,} dead letters" in dry

    metrics = (
        urllib.request.urlopen(f"http://127.0.0.1:{worker_port}/metrics", timeout=5).read().decode()
    )
    stored_total = sum(
        float(line.rsplit(" ", 1)[1])
        for line in metrics.splitlines()
        if line.startswith("ioc_events_total{") and 'outcome="stored"' in line
    )
    assert stored_total == sum(observed.stored.values())
    with psycopg.connect(stack.settings.db.conninfo("grafana")) as conn:
        row = conn.execute(
            "SELECT sum(stored), max(latency_p95_s) FROM pipeline_stats WHERE received > 0"
        ).fetchone()
    assert row is not None and row[0] == sum(observed.stored.values()) and row[1] is not None


async def read_all_letters(stack: Stack) -> list[DeadLetter]:
    return await read_letters(
        stack.settings.kafka.bootstrap, dlq_topic(stack.settings.kafka.topic_prefix)
    )
