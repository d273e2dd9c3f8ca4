"""The pipeline: what the ingest agents do with one batch (`Pipeline.handle`), and the topics.

Per batch: split (pure: decode, validate, place; streams.ingest) -> dead letters produced to the
DLQ topic and acknowledged by Kafka -> events and measurements written by the sink in one
transaction (idempotent) -> refused rows dead-lettered -> return. `handle` never raises for bad
input or an outage: it waits and retries (streams.retry) while it holds the batch, and returns
only when every record of the batch is stored, counted as a duplicate, or dead-lettered.
"""

from __future__ import annotations

import asyncio
import os
import socket
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Protocol

import orjson
import psycopg
import structlog
from aiokafka import AIOKafkaProducer
from aiokafka.errors import (
    KafkaConnectionError,
    KafkaTimeoutError,
    NotLeaderForPartitionError,
)

from domains import Decoder, Registry
from geo import ZoneIndex
from sinks.errors import Backpressure
from sinks.maintenance import maintain
from sinks.writer import EventSink, WriteResult
from streams.dlq import DeadLetter, dlq_topic
from streams.ingest import dead_letter, split_batch
from streams.kafka_auth import client_options
from streams.kafka_io import KafkaRecord, create_topics
from streams.metrics import PipelineMetrics
from streams.relay import incidents_topic
from streams.retry import RetryPolicy, retry_until_done
from streams.rules_runner import RuleCounts, RuleRunner
from streams.settings import Settings

log = structlog.get_logger(__name__)

KAFKA_TRANSIENT: tuple[type[BaseException], ...] = (
    KafkaConnectionError,
    KafkaTimeoutError,
    NotLeaderForPartitionError,
    OSError,
    TimeoutError,
)


def registry_for(settings: Settings) -> Registry:
    return Registry(namespace=settings.domains.namespace, topic_prefix=settings.kafka.topic_prefix)


def service_topics(settings: Settings) -> dict[str, str]:
    return {"dlq": dlq_topic(settings.kafka.topic_prefix), "incidents": incidents_topic(settings)}


def all_topics(settings: Settings, registry: Registry) -> dict[str, int]:
    names = [*registry.topics().values(), *service_topics(settings).values()]
    return dict.fromkeys(names, settings.kafka.partitions)


async def ensure_topics(settings: Settings, registry: Registry | None = None) -> dict[str, str]:
    registry = registry or registry_for(settings)
    return await create_topics(
        settings.kafka, all_topics(settings, registry), settings.kafka.replication_factor
    )


def worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


class DeadLetterSender(Protocol):
    """Where dead letters go. `send` returns once every letter is durable, or raises."""

    async def start(self) -> None: ...
    async def stop(self) -> None: ...
    async def send(self, letters: Sequence[DeadLetter]) -> None: ...


class KafkaDeadLetters:
    """Dead letters to the DLQ topic, each acknowledged by every in-sync replica (acks=all)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.topic = service_topics(settings)["dlq"]
        self.producer: AIOKafkaProducer | None = None

    async def start(self) -> None:
        await ensure_topics(self.settings)
        self.producer = AIOKafkaProducer(
            **client_options(self.settings.kafka), acks="all", linger_ms=5,
            enable_idempotence=True,  # a retry across a broker outage never writes a letter twice
            max_batch_size=1024 * 1024, client_id=f"{self.settings.kafka.client_id}-dlq",
            max_request_size=4 * 1024 * 1024,
        )  # fmt: skip
        await self.producer.start()

    async def stop(self) -> None:
        if self.producer is not None:
            await self.producer.stop()

    async def send(self, letters: Sequence[DeadLetter]) -> None:
        assert self.producer is not None, "start() first"
        futures = [
            await self.producer.send(
                self.topic, key=letter.key, value=letter.value, headers=letter.kafka_headers()
            )
            for letter in letters
        ]
        await asyncio.gather(*futures)


@dataclass
class Pipeline:
    """What the ingest agents share: the decoder, the zones, the sink, the dead-letter sender,
    the metrics. `handle(domain, records)` is one batch."""

    settings: Settings
    registry: Registry
    zones: ZoneIndex
    sink: EventSink
    dead_letters: DeadLetterSender
    metrics: PipelineMetrics = field(default_factory=PipelineMetrics)
    changed_ranges: list[tuple[datetime, datetime]] = field(default_factory=list)
    #: The rules, run inside each batch's write transaction (None: no rules).
    rules: RuleRunner | None = None
    #: What the rules did since the worker started (late_for_rule, errors, transitions, outbox).
    rule_totals: RuleCounts = field(default_factory=RuleCounts)

    def __post_init__(self) -> None:
        conf = self.settings.domains
        self.decoder = Decoder(
            self.registry,
            max_bytes=conf.max_event_bytes,
            max_future=timedelta(seconds=conf.max_future_s),
        )
        self.metrics.topic_domain.update({t: d for d, t in self.registry.topics().items()})
        self.name = worker_name()
        self.retry_policy = RetryPolicy(
            self.settings.stream.retry_first_s, self.settings.stream.retry_cap_s
        )
        self._started = False
        self._start_lock = asyncio.Lock()

    async def ensure_started(self) -> None:
        """Start on the first batch (agents may run before Faust's startup tasks)."""
        async with self._start_lock:
            if not self._started:
                await self.start()
                self._started = True

    async def start(self) -> None:
        await retry_until_done(
            self.dead_letters.start, transient=KAFKA_TRANSIENT, what="dlq.start",
            policy=self.retry_policy,
        )  # fmt: skip
        await retry_until_done(
            self.sink.open, transient=(Backpressure,), what="sink.open", policy=self.retry_policy
        )
        await retry_until_done(
            lambda: asyncio.to_thread(self.load_zones_table),
            transient=(psycopg.OperationalError,), what="zones", policy=self.retry_policy,
        )  # fmt: skip

    async def stop(self) -> None:
        await self.dead_letters.stop()
        await self.sink.close()

    def load_zones_table(self) -> None:
        """Upsert the zone file into `zones`, so panels can name and draw them."""
        rows = [
            (z.id, z.name, z.kind, z.parent, orjson.dumps(z.geometry.__geo_interface__).decode(),
             z.geometry.centroid.x, z.geometry.centroid.y)
            for z in self.zones.zones
        ]  # fmt: skip
        with psycopg.connect(self.settings.db.conninfo("ingest")) as conn:
            conn.cursor().executemany(
                "INSERT INTO zones (id, name, kind, parent, geometry, centroid_lon, centroid_lat)"
                " VALUES (%s, %s, %s, %s, %s, %s, %s) ON CONFLICT (id) DO UPDATE SET"
                " name = excluded.name, kind = excluded.kind, parent = excluded.parent,"
                " geometry = excluded.geometry, centroid_lon = excluded.centroid_lon,"
                " centroid_lat = excluded.centroid_lat",
                rows,
            )

    async def handle(self, domain: str, records: Sequence[KafkaRecord]) -> None:
        """One batch: never raises for bad input or an outage; returns once all is durable."""
        await self.ensure_started()
        now = datetime.now(UTC)
        split = split_batch(
            records, domain=domain, decoder=self.decoder, zones=self.zones, now=now,
            late_horizon=timedelta(seconds=self.settings.stream.late_horizon_s),
        )  # fmt: skip
        context = {"domain": domain, "size": len(records), "first_offset": records[0].offset}
        if split.dead:
            await self.send_dead_letters(split.dead, context)
        batch = split.batch()
        after_insert = self.rules.after_insert if self.rules else None
        result: WriteResult = await retry_until_done(
            lambda: self.sink.write(batch, after_insert=after_insert), transient=(Backpressure,),
            what="sink", policy=self.retry_policy, **context,
        )  # fmt: skip
        committed = datetime.now(UTC)
        if isinstance(result.after, RuleCounts):
            self.rule_totals.add(result.after)
        elif result.after_failed:
            self.rule_totals.errors["(batch)"] += 1
        if result.time_range is not None:
            self.changed_ranges.append(result.time_range)
        rejected = [
            dead_letter(
                records[r.row.record], "rejected_by_database", r.error, r.error_class, now,
                event=(r.row.source, r.row.id),
            )
            for r in result.rejected
        ]  # fmt: skip
        if rejected:
            await self.send_dead_letters(rejected, context)
        self.metrics.record_batch(
            domain,
            received=len(records),
            stored=result.new_events[domain],
            duplicates=result.duplicate_events[domain],
            rejected=[*split.rejected_reasons, *(letter.reason for letter in rejected)],
            latencies_s=[(committed - t).total_seconds() for t in split.event_times],
        )

    async def send_dead_letters(
        self, letters: Sequence[DeadLetter], context: dict[str, object]
    ) -> None:
        await retry_until_done(
            lambda: self.dead_letters.send(letters), transient=KAFKA_TRANSIENT, what="dlq",
            policy=self.retry_policy, **context,
        )  # fmt: skip

    def maintain_now(self) -> None:
        """Refresh what changed, partitions, retention. On failure the ranges stay for next time."""
        ranges = list(self.changed_ranges)
        with psycopg.connect(self.settings.db.conninfo("owner")) as conn:
            maintain(conn, self.settings.db.flavour, self.settings.storage, refresh_ranges=ranges)
        del self.changed_ranges[: len(ranges)]

    def write_stats(self) -> None:
        rows = self.metrics.take_window()
        if not rows:
            return
        now = datetime.now(UTC)
        with psycopg.connect(self.settings.db.conninfo("ingest")) as conn:
            conn.cursor().executemany(
                "INSERT INTO pipeline_stats (time, worker, domain, window_s, received, stored,"
                " duplicates, rejected, rejected_by_reason, lag, latency_p50_s, latency_p95_s,"
                " latency_p99_s) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)"
                " ON CONFLICT DO NOTHING",
                [
                    (now, self.name, r.domain, self.settings.stream.stats_interval_s, r.received,
                     r.stored, r.duplicates, r.rejected, orjson.dumps(r.rejected_by_reason).decode(),
                     r.lag, r.latency_p50_s, r.latency_p95_s, r.latency_p99_s)
                    for r in rows
                ],
            )  # fmt: skip
