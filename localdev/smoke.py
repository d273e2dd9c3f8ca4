"""A round trip through the real broker and database, used by `ioc demo` and the tests.

Produces N small JSON events to a topic, reads them back as a consumer group, and writes them
to the database in one COPY (into a temporary table: no schema is touched), then counts them.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

import orjson
import psycopg
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from localdev.runtime import RuntimeProblem
from streams.kafka_io import Brokers, connect_options, create_topics
from streams.settings import Settings


@dataclass
class SmokeReport:
    produced: int = 0
    consumed: int = 0
    stored: int = 0
    seconds: dict[str, float] = field(default_factory=dict)

    @property
    def complete(self) -> bool:
        return self.produced == self.consumed == self.stored

    def rows(self) -> list[tuple[str, int, float]]:
        return [
            ("produced to Kafka", self.produced, self.seconds.get("produce", 0.0)),
            ("consumed by a consumer group", self.consumed, self.seconds.get("consume", 0.0)),
            ("stored in PostgreSQL", self.stored, self.seconds.get("store", 0.0)),
        ]


async def ensure_topic(
    bootstrap: Brokers, name: str, partitions: int, replication: int = 1
) -> bool:
    """Create `name` if missing; True if it was created."""
    outcome = await create_topics(bootstrap, {name: partitions}, replication)
    return outcome[name] == "created"


async def produce(bootstrap: Brokers, topic: str, values: list[bytes], keys: list[bytes]) -> int:
    producer = AIOKafkaProducer(
        **connect_options(bootstrap), acks="all", linger_ms=5, max_batch_size=256 * 1024
    )
    await producer.start()
    try:
        futures = [
            await producer.send(topic, value=v, key=k) for v, k in zip(values, keys, strict=True)
        ]
        await producer.flush()
        for fut in futures:
            await fut  # raises if any send failed
    finally:
        await producer.stop()
    return len(values)


async def consume(
    bootstrap: Brokers,
    topic: str,
    group: str,
    expected: int,
    timeout: float,
    keep: Callable[[bytes], bool] = lambda _value: True,
) -> list[bytes]:
    """Read `topic` from the start as consumer `group` until `expected` values pass `keep`."""
    consumer = AIOKafkaConsumer(
        topic,
        **connect_options(bootstrap),
        group_id=group,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    await consumer.start()
    values: list[bytes] = []
    deadline = time.monotonic() + timeout
    try:
        while len(values) < expected and time.monotonic() < deadline:
            batches = await consumer.getmany(timeout_ms=500, max_records=5000)
            for records in batches.values():
                values.extend(r.value for r in records if r.value is not None and keep(r.value))
            if batches:
                await consumer.commit()
    finally:
        await consumer.stop()
    return values


def store(conninfo: str, values: list[bytes]) -> int:
    with psycopg.connect(conninfo) as conn:
        conn.execute(
            "create temporary table smoke (id uuid primary key, time timestamptz, body jsonb)"
            " on commit drop"
        )
        with conn.cursor() as cur, cur.copy("copy smoke (id, time, body) from stdin") as copy:
            for raw in values:
                doc = orjson.loads(raw)
                copy.write_row((doc["id"], doc["time"], raw.decode()))
        row = conn.execute("select count(distinct id) from smoke").fetchone()
        return int(row[0]) if row else 0


async def run_smoke(settings: Settings, count: int, timeout: float = 60.0) -> SmokeReport:
    bootstrap = settings.kafka
    topic = f"{settings.kafka.topic_prefix}.dev.smoke"
    report = SmokeReport()
    try:
        await ensure_topic(bootstrap, topic, settings.kafka.partitions)
    except Exception as exc:  # any failure here means the broker is not reachable
        raise RuntimeProblem(
            f"cannot reach Kafka at {bootstrap.bootstrap} ({exc.__class__.__name__}: {exc}); "
            "start it with `ioc dev up`"
        ) from exc
    run = uuid.uuid4().hex[:8]
    now = datetime.now(UTC).isoformat()
    ids = [str(uuid.uuid4()) for _ in range(count)]
    values = [orjson.dumps({"id": i, "time": now, "run": run, "n": n}) for n, i in enumerate(ids)]
    keys = [f"entity-{n % 97}".encode() for n in range(count)]

    started = time.monotonic()
    report.produced = await produce(bootstrap, topic, values, keys)
    report.seconds["produce"] = time.monotonic() - started

    started = time.monotonic()
    mine = await consume(
        bootstrap, topic, f"ioc-smoke-{run}", count, timeout,
        keep=lambda value: orjson.loads(value).get("run") == run,
    )  # fmt: skip
    report.consumed = len(mine)
    report.seconds["consume"] = time.monotonic() - started

    started = time.monotonic()
    try:
        report.stored = store(settings.db.conninfo("owner"), mine)
    except psycopg.OperationalError as exc:
        raise RuntimeProblem(
            f"cannot reach PostgreSQL at {settings.db.host}:{settings.db.port} ({exc}); "
            "start it with `ioc dev up`"
        ) from exc
    report.seconds["store"] = time.monotonic() - started
    return report
