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
from sinks.rows import EventRow
from sinks.writer import EventSink, Rejected, WriteResult
from streams.dlq import DeadLetter, dlq_topic
from streams.ingest import dead_letter, split_batch
from streams.kafka_io import KafkaRecord, create_topics
from streams.metrics import PipelineMetrics
from streams.retry import retry_until_done
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
    prefix = settings.kafka.topic_prefix
    return {"dlq": dlq_topic(prefix), "incidents": f"{prefix}.incidents"}


def all_topics(settings: Settings, registry: Registry) -> dict[str, int]:
    names = [*registry.topics().values(), *service_topics(settings).values()]
    return dict.fromkeys(names, settings.kafka.partitions)


async def ensure_topics(settings: Settings, registry: Registry | None = None) -> dict[str, str]:
    registry = registry or registry_for(settings)
    return await create_topics(
        settings.kafka.bootstrap, all_topics(settings, registry), settings.kafka.replication_factor
    )


def worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


@dataclass
class Pipeline:
    """What the agents share: decoder, zones, the sink, the DLQ producer, the metrics."""

    settings: Settings
    registry: Registry
    zones: ZoneIndex
    sink: EventSink
    metrics: PipelineMetrics = field(default_factory=PipelineMetrics)
    producer: AIOKafkaProducer | None = None
    changed_ranges: list[tuple[datetime, datetime]] = field(default_factory=list)

    def __post_init__(self) -> None:
        conf = self.settings.domains
        self.decoder = Decoder(
            self.registry,
            max_bytes=conf.max_event_bytes,
            max_future=timedelta(seconds=conf.max_future_s),
        )
        self.dlq_topic = service_topics(self.settings)["dlq"]
        self.metrics.topic_domain.update({t: d for d, t in self.registry.topics().items()})
        self.name = worker_name()
        self._start_lock = asyncio.Lock()

    async def ensure_started(self) -> None:
        """Start on the first batch (agents may run before Faust's startup tasks)."""
        async with self._start_lock:
            if self.producer is None:
                await self.start()

    async def start(self) -> None:
        await ensure_topics(self.settings, self.registry)
        self.producer = AIOKafkaProducer(
            bootstrap_servers=self.settings.kafka.bootstrap, acks="all", linger_ms=5,
            max_batch_size=1024 * 1024, client_id=f"{self.settings.kafka.client_id}-dlq",
            max_request_size=4 * 1024 * 1024,
        )  # fmt: skip
        await self.producer.start()
        await retry_until_done(self.sink.open, transient=(Backpressure,), what="sink.open")
        await asyncio.to_thread(self.load_zones_table)

    async def stop(self) -> None:
        if self.producer is not None:
            await self.producer.stop()
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

    async def send_dead_letters(self, letters: Sequence[DeadLetter]) -> None:
        """Produce and wait for Kafka's acknowledgement of every dead letter."""
        assert self.producer is not None
        futures = [
            await self.producer.send(
                self.dlq_topic, key=letter.key, value=letter.value, headers=letter.kafka_headers()
            )
            for letter in letters
        ]
        await asyncio.gather(*futures)

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
            await retry_until_done(
                lambda: self.send_dead_letters(split.dead),
                transient=KAFKA_TRANSIENT, what="dlq", **context,
            )  # fmt: skip
        result: WriteResult = await retry_until_done(
            lambda: self.sink.write(split.batch()),
            transient=(Backpressure,),
            what="sink",
            **context,
        )
        committed = datetime.now(UTC)
        if result.time_range is not None:
            self.changed_ranges.append(result.time_range)
        rejected = self.rejected_letters(result.rejected, records, now)
        if rejected:
            await retry_until_done(
                lambda: self.send_dead_letters(rejected),
                transient=KAFKA_TRANSIENT, what="dlq", **context,
            )  # fmt: skip
        self.metrics.record_batch(
            domain,
            received=len(records),
            stored=result.new_events[domain],
            duplicates=result.duplicate_events[domain],
            rejected=[*split.rejected_reasons, *(letter.reason for letter in rejected)],
            latencies_s=[(committed - t).total_seconds() for t in split.event_times],
        )

    def rejected_letters(
        self, rejected: Sequence[Rejected], records: Sequence[KafkaRecord], now: datetime
    ) -> list[DeadLetter]:
        """Rows the database refused -> dead letters of the records they came from."""
        if not rejected:
            return []
        ids = {r.row.id: r for r in rejected if isinstance(r.row, EventRow)}
        letters = []
        for record in records:
            event_id = self._record_event_id(record)
            if event_id in ids:
                why = ids[event_id]
                letters.append(
                    dead_letter(record, "rejected_by_database", why.error, why.error_class, now)
                )
        unmatched = len(rejected) - len(letters)
        if unmatched:
            log.error("sink.rejected_rows_without_event", count=unmatched, first=rejected[0].error)
        return letters

    def _record_event_id(self, record: KafkaRecord) -> str | None:
        decoded = self.decoder.decode(record.value, record.headers, now=datetime.now(UTC))
        return getattr(decoded, "id", None)

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
