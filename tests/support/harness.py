"""One batch through the pipeline in-process, in the spirit of bytewax's TestingSource/TestingSink.

`pipeline_harness` runs the real `Pipeline.handle` with the real `EventSink` on a scratch
PostgreSQL database (migrated, dropped afterwards) and a fake dead-letter sender that keeps the
letters in a list: no Kafka, no Faust. The database is never faked: the cases that matter
(duplicates, refused rows, outages) are the database's behaviour.

    async with pipeline_harness(settings, superuser) as h:
        await h.handle("environment", [h.record(value, headers), ...])
        assert h.stored_ids() == {...}; assert h.reasons() == [...]
"""

from __future__ import annotations

import contextlib
from collections import Counter
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
from psycopg import sql
from psycopg.rows import dict_row

from domains import binary_message
from geo import ZoneIndex
from rules.load import load_rule_files
from sinks.migrate import migrate
from sinks.writer import EventSink
from streams.dlq import DeadLetter
from streams.kafka_io import KafkaRecord, Record
from streams.pipeline import Pipeline, registry_for
from streams.rules_runner import RuleRunner
from streams.settings import Settings
from tests.support.database import scratch_database


@dataclass
class FakeDeadLetters:
    """The DLQ producer's stand-in: keeps what it is given. `fail_next` sends raise
    ConnectionError (a transient Kafka error) first, as a broker that is briefly away would."""

    letters: list[DeadLetter] = field(default_factory=list)
    fail_next: int = 0
    attempts: int = 0

    async def start(self) -> None:
        pass

    async def stop(self) -> None:
        pass

    async def send(self, letters: Sequence[DeadLetter]) -> None:
        self.attempts += 1
        if self.fail_next:
            self.fail_next -= 1
            raise ConnectionError("the DLQ broker is away (test)")
        self.letters.extend(letters)


@dataclass
class Harness:
    settings: Settings
    dbname: str
    superuser: str
    pipeline: Pipeline
    dead: FakeDeadLetters
    rules: str | None = None
    others: list[Pipeline] = field(default_factory=list)
    _offset: int = 0

    def another_worker(self) -> Pipeline:
        """A second pipeline on the same database (its own connections): another worker."""
        other = make_pipeline(self.settings, self.dead, self.rules)
        self.others.append(other)
        return other

    def incidents(self) -> list[dict[str, Any]]:
        with self.owner() as conn, conn.cursor(row_factory=dict_row) as cur:
            return cur.execute("SELECT * FROM incidents ORDER BY opened_at, id").fetchall()

    async def handle(self, domain: str, records: Sequence[KafkaRecord]) -> None:
        await self.pipeline.handle(domain, records)

    def record(
        self,
        value: bytes | None,
        headers: Sequence[tuple[str, bytes]] = (),
        *,
        topic: str = "city.environment.events",
        key: bytes | None = b"k",
    ) -> Record:
        """A consumed record at the next offset of partition 0."""
        self._offset += 1
        return Record(topic, 0, self._offset, key, value, tuple(headers), 0)

    def event(
        self,
        data: dict[str, Any],
        *,
        id: str,
        type: str = "vn.daklak.environment.air_quality.v1",
        time: datetime | None = None,
        topic: str = "city.environment.events",
    ) -> Record:
        """A binary-mode CloudEvent record."""
        value, headers = binary_message(
            id=id, source="/harness", type=type, time=time or datetime.now(UTC), data=data
        )
        return self.record(value, headers, topic=topic)

    def reasons(self) -> list[str]:
        return [letter.reason for letter in self.dead.letters]

    def owner(self) -> psycopg.Connection[tuple[Any, ...]]:
        return psycopg.connect(self.settings.db.conninfo("owner"), autocommit=True)

    def stored_ids(self) -> set[str]:
        with self.owner() as conn:
            return {row[0] for row in conn.execute("SELECT id FROM events")}

    def measurement_count(self) -> int:
        with self.owner() as conn:
            row = conn.execute("SELECT count(*) FROM measurements").fetchone()
        return int(row[0]) if row else 0

    def counted(self, domain: str) -> Counter[str]:
        """The pipeline's own figures for `domain` since the last call (its metrics window)."""
        rows = {row.domain: row for row in self.pipeline.metrics.take_window()}
        row = rows.get(domain)
        if row is None:
            return Counter()
        return Counter(
            received=row.received, stored=row.stored, duplicates=row.duplicates,
            rejected=row.rejected,
        )  # fmt: skip

    @contextlib.contextmanager
    def database_refusing_connections(self) -> Any:
        """An outage: the database refuses new connections and its open ones are cut."""
        with psycopg.connect(self.superuser, autocommit=True) as conn:
            name = sql.Identifier(self.dbname)
            conn.execute(sql.SQL("ALTER DATABASE {} ALLOW_CONNECTIONS false").format(name))
            conn.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s",
                (self.dbname,),
            )
            try:
                yield
            finally:
                conn.execute(sql.SQL("ALTER DATABASE {} ALLOW_CONNECTIONS true").format(name))


def make_pipeline(settings: Settings, dead: FakeDeadLetters, rules: str | None) -> Pipeline:
    zones = ZoneIndex.from_file(settings.geo.zone_file)
    runner = None
    if rules is not None:
        ruleset = load_rule_files([("harness-rules.yaml", rules)])
        runner = RuleRunner(ruleset, {z.id: z.name for z in zones.zones})
    return Pipeline(
        settings, registry_for(settings), zones, EventSink.from_settings(settings.db, settings.storage),
        dead, rules=runner,
    )  # fmt: skip


@contextlib.asynccontextmanager
async def pipeline_harness(
    settings: Settings, superuser: str, *, late_horizon_s: float = 3600.0, rules: str | None = None
) -> AsyncIterator[Harness]:
    """The real pipeline on a fresh, migrated scratch database, with a fake DLQ; `rules` is the
    text of a rule file (None: no rules)."""
    with scratch_database(superuser, settings.db, "ioc_test_harness") as name:
        db = settings.db.model_copy(update={"name": name, "connect_timeout_s": 1.0})
        stream = settings.stream.model_copy(
            update={"late_horizon_s": late_horizon_s, "retry_first_s": 0.05, "retry_cap_s": 0.5}
        )
        local = settings.model_copy(update={"db": db, "stream": stream})
        with psycopg.connect(db.conninfo("owner")) as conn:
            migrate(conn, db, local.storage)
        dead = FakeDeadLetters()
        pipeline = make_pipeline(local, dead, rules)
        harness = Harness(local, name, superuser, pipeline, dead, rules)
        try:
            yield harness
        finally:
            for other in (pipeline, *harness.others):
                await other.stop()


def minutes_ago(minutes: float) -> datetime:
    return datetime.now(UTC) - timedelta(minutes=minutes)
