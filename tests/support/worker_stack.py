"""A real `ioc worker` on its own topics, consumer group and scratch database, and the check the
"nothing lost" tests share: every event below the group's committed offsets is in the database
or in the DLQ.

Nothing here is imported by the running platform.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
import time
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient

from domains import Registry, structured_message
from localdev.processes import ChildCommand, wait_http_ok
from localdev.runtime import LocalPostgres
from streams.dlq import DeadLetter, dlq_topic, read_letters
from streams.kafka_io import Brokers, connect_options
from streams.pipeline import ensure_topics
from streams.settings import Settings, load_settings
from tests.support.database import free_port, scratch_database
from tests.support.kafka_batches import committed_offsets

#: (key, value, headers, event id) of one message to send.
Message = tuple[bytes, bytes, list[tuple[str, bytes]], str]
#: Where a sent event landed: (topic, partition, offset) -> its event id.
Sent = dict[tuple[str, int, int], str]


def water_level_events(settings: Settings, count: int, *, tag: str) -> list[Message]:
    """`count` valid environment events (river gauges, structured-mode CloudEvents) keyed by
    gauge, a few minutes old, each with a fresh id."""
    kind = f"{settings.domains.namespace}.environment.water_level.v1"
    now = datetime.now(UTC)
    out = []
    for n in range(count):
        event_id = f"{tag}-{n}-{uuid.uuid4().hex[:8]}"
        gauge = f"gauge-{n % 12}"
        data = {
            "entity_id": gauge, "water_body": "Serepok", "water_body_kind": "river",
            "water_level": 400.0 + n % 50, "location": {"type": "Point", "coordinates": [108.05, 12.68]},
        }  # fmt: skip
        value, headers = structured_message(
            id=event_id, source="urn:test:nothing-lost", type=kind,
            time=now - timedelta(seconds=120 - n % 60), data=data,
        )  # fmt: skip
        out.append((gauge.encode(), value, headers, event_id))
    return out


@dataclass
class WorkerStack:
    env: dict[str, str]
    settings: Settings
    registry: Registry
    logs: Path
    workers: list[ChildCommand] = field(default_factory=list)

    @property
    def group(self) -> str:
        return self.env["IOC_STREAM__APP_ID"]

    def topic(self, domain: str = "environment") -> str:
        return self.registry.topic(domain)

    def worker(self, *, fault: str | None = None, **env: str) -> ChildCommand:
        """A worker child (with `fault` injected by tests.support.faulty_worker), not started."""
        port = free_port()
        child_env = self.env | {"IOC_STREAM__WEB_PORT": str(port)} | env
        program = None
        if fault is not None:
            child_env["NOTHING_LOST_FAULT"] = fault
            program = [sys.executable, "-m", "tests.support.faulty_worker"]
        name = f"worker-{len(self.workers)}-{fault or 'plain'}.log"
        child = ChildCommand(["worker"], self.logs / name, child_env, program=program)
        child.web_port = port  # type: ignore[attr-defined]
        self.workers.append(child)
        return child

    def start_worker(self, *, fault: str | None = None, **env: str) -> ChildCommand:
        child = self.worker(fault=fault, **env).start()
        wait_http_ok(f"http://127.0.0.1:{child.web_port}/metrics", 90, child=child)  # type: ignore[attr-defined]
        return child

    def send(self, messages: Sequence[Message], domain: str = "environment") -> Sent:
        return asyncio.run(send(self.settings.kafka.bootstrap, self.topic(domain), messages))

    def committed(self) -> dict[tuple[str, int], int]:
        return asyncio.run(committed_offsets(self.settings.kafka.bootstrap, self.group))

    def stored_ids(self) -> set[str]:
        with psycopg.connect(self.settings.db.conninfo("owner")) as conn:
            return {row[0] for row in conn.execute("SELECT id FROM events")}

    def dead_letters(self) -> list[DeadLetter]:
        topic = dlq_topic(self.settings.kafka.topic_prefix)
        return asyncio.run(read_letters(self.settings.kafka.bootstrap, topic))

    def dead_offsets(self) -> set[tuple[str, int, int]]:
        """Every origin offset the DLQ covers (a range's letter covers all of its offsets)."""
        return {
            (letter.topic, letter.partition, offset)
            for letter in self.dead_letters()
            for offset in range(letter.offset, (letter.last_offset or letter.offset) + 1)
        }

    def unaccounted_below_committed(self, sent: Sent) -> list[tuple[str, int, int]]:
        """Sent events below the group's committed offsets that are neither stored nor in the
        DLQ: what a commit lost. Empty when nothing was lost."""
        committed = self.committed()
        stored, dead = self.stored_ids(), self.dead_offsets()
        return sorted(
            where
            for where, event_id in sent.items()
            if where[2] < committed.get(where[:2], 0)
            and event_id not in stored
            and where not in dead
        )

    def wait_until_stored(self, ids: set[str], timeout: float = 60) -> set[str]:
        """Wait until every id in `ids` is stored; the ids still missing at the timeout."""
        deadline = time.monotonic() + timeout
        missing = ids - self.stored_ids()
        while missing and time.monotonic() < deadline:
            time.sleep(0.5)
            missing = ids - self.stored_ids()
        return missing

    def wait_until_committed(self, sent: Sent, timeout: float = 60) -> dict[tuple[str, int], int]:
        """Wait until the group committed past every sent offset; the committed offsets."""
        ends: dict[tuple[str, int], int] = {}
        for topic, partition, offset in sent:
            ends[topic, partition] = max(ends.get((topic, partition), 0), offset + 1)
        deadline = time.monotonic() + timeout
        committed = self.committed()
        while time.monotonic() < deadline and any(committed.get(k, 0) < v for k, v in ends.items()):
            time.sleep(0.5)
            committed = self.committed()
        return committed


async def send(bootstrap: str, topic: str, messages: Sequence[Message]) -> Sent:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5)
    await producer.start()
    try:
        futures = [
            (await producer.send(topic, value=value, key=key, headers=headers), event_id)
            for key, value, headers, event_id in messages
        ]
        await producer.flush()
        sent: Sent = {}
        for future, event_id in futures:
            meta = await future
            sent[topic, meta.partition, meta.offset] = event_id
        return sent
    finally:
        await producer.stop()


async def delete_topics(bootstrap: Brokers, prefix: str) -> None:
    """Delete every topic whose name starts with `prefix` (in secure mode: as the admin)."""
    admin = AIOKafkaAdminClient(**connect_options(bootstrap))
    await admin.start()
    try:
        names = [t for t in await admin.list_topics() if t.startswith(prefix)]
        if names:
            await admin.delete_topics(names)
    finally:
        await admin.close()


@contextlib.contextmanager
def worker_stack(settings: Settings, logs: Path, **env: str) -> Iterator[WorkerStack]:
    """Fresh topics (prefix), consumer group and scratch database, migrated; workers started
    through the stack are stopped (SIGTERM, then SIGKILL) and the topics deleted afterwards."""
    superuser = LocalPostgres(settings).superuser_conninfo()
    run = uuid.uuid4().hex[:8]
    prefix = f"lost{run}"
    with scratch_database(superuser, settings.db, "ioc_lost") as dbname:
        child_env = (
            {k: v for k, v in os.environ.items() if not k.startswith("IOC_")}
            | {
                "IOC_DB__NAME": dbname,
                "IOC_DB__PORT": str(settings.db.port),
                "IOC_KAFKA__BOOTSTRAP": settings.kafka.bootstrap,
                "IOC_KAFKA__TOPIC_PREFIX": prefix,
                "IOC_STREAM__APP_ID": f"ioc-lost-{run}",
                "IOC_STREAM__COMMIT_INTERVAL_S": "0.3",
            }
            | env
        )
        stack_settings = load_settings(
            db=settings.db.model_copy(update={"name": dbname}),
            kafka=settings.kafka.model_copy(update={"topic_prefix": prefix}),
        )
        registry = Registry(stack_settings.domains.namespace, prefix)
        stack = WorkerStack(child_env, stack_settings, registry, logs)
        migrate = ChildCommand(["db", "migrate"], logs / "migrate.log", child_env).start()
        assert migrate.wait(120) == 0, migrate.log_tail()
        asyncio.run(ensure_topics(stack_settings, registry))
        try:
            yield stack
        finally:
            for worker in stack.workers:
                worker.stop(20)
            asyncio.run(delete_topics(settings.kafka.bootstrap, f"{prefix}."))
