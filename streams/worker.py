"""`ioc worker`: the Faust app with one ingest agent per domain topic, and its timers.

Each agent iterates `stream.take_records(n, within)` (streams.faust_ext: records arrive as
RecordChunks, one Faust message per partition per fetch; concurrency 1 per topic) and hands each
batch to `Pipeline.handle` (streams.pipeline), which returns once the batch is durable. Only then
are the batch's events acked, and committed within the commit interval. A crash anywhere before
that return leaves the offsets where they were: the batch is read again and the natural keys
make the second write a no-op. Dead letters of a redelivered batch are sent
again; `ioc dlq stats` counts dead letters by their origin (topic, partition, offset), once.

Timers: pipeline health to `pipeline_stats` every `stream.stats_interval_s`; storage maintenance
(aggregate refresh for the ranges that changed, partitions, retention) every
`stream.maintenance_interval_s`, on its own owner connection in a thread. `/metrics` on the
Faust web port serves Prometheus text.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import psycopg
import structlog
from aiokafka.errors import KafkaError

from geo import ZoneIndex
from rules.load import RuleSet, load_rules
from sinks.writer import EventSink
from streams.faust_ext import IngestApp, IngestStream, create_app
from streams.kafka_io import partition_lag
from streams.metrics import PipelineMetrics
from streams.pipeline import KAFKA_TRANSIENT, KafkaDeadLetters, Pipeline, registry_for
from streams.relay import OutboxRelay
from streams.retry import OutageLog
from streams.rules_runner import RuleRunner
from streams.settings import Settings

log = structlog.get_logger(__name__)

#: Refreshing the aggregates may take at most about this share of the worker's time: after a run
#: that took d seconds, the next starts no sooner than d / share later (and no sooner than the
#: maintenance interval). A refresh recomputes every touched bucket from the raw rows, so while a
#: large backlog drains each run gets longer; refreshing every 10 s regardless cost ~17% of the
#: drain rate (1M events: 9,598 events/s with it, 11,556 without; PostgreSQL 0.83 -> 0.51 cores).
MAINTENANCE_SHARE = 0.1


async def record_lag(settings: Settings, metrics: PipelineMetrics, group: str) -> None:
    """Consumer lag per partition of the domain topics: end offsets minus committed offsets."""
    lags = await partition_lag(settings.kafka, group, list(metrics.topic_domain))
    for tp, lag in lags.items():
        metrics.record_lag(tp.topic, tp.partition, lag)


def build(settings: Settings, *, app_id: str | None = None) -> tuple[IngestApp, Pipeline]:
    """The worker's Faust app and the pipeline its agents share (nothing runs yet)."""
    registry = registry_for(settings)
    app = create_app(settings, id=app_id)
    zones = ZoneIndex.from_file(settings.geo.zone_file)
    ruleset = load_rules(settings.rules) if settings.rules.enabled else RuleSet()
    runner = RuleRunner(ruleset, {z.id: z.name for z in zones.zones}) if ruleset else None
    pipeline = Pipeline(
        settings, registry, zones, EventSink.from_settings(settings.db, settings.storage),
        KafkaDeadLetters(settings), rules=runner,
    )  # fmt: skip
    conf = settings.stream

    for domain, topic_name in registry.topics().items():
        topic = app.topic(topic_name, partitions=settings.kafka.partitions)
        if conf.read_chunks:
            app.chunk_topics(topic_name)

        async def ingest(stream: IngestStream, domain: str = domain) -> None:
            async for records in stream.take_records(conf.batch_size, within=conf.batch_window_s):
                await pipeline.handle(domain, records)

        app.agent(topic, name=f"ingest-{domain}", concurrency=1)(ingest)

    @app.on_before_shutdown.connect
    async def stop_pipeline(app: IngestApp, **_: Any) -> None:
        await pipeline.stop()

    stats_outage, maintenance_outage = OutageLog("stats"), OutageLog("maintenance")
    silence_outage, relay_outage = OutageLog("rules.silence"), OutageLog("incidents.relay")
    relay = OutboxRelay(settings)

    if runner is not None:

        @app.timer(settings.rules.relay_interval_s)
        async def relay_incidents() -> None:
            try:
                await relay.run_once()
            except (psycopg.OperationalError, KafkaError, *KAFKA_TRANSIENT) as exc:
                relay_outage.failed(exc)  # the rows stay unpublished; the next tick retries
                await relay.reset()
            else:
                relay_outage.succeeded()

        @app.on_before_shutdown.connect
        async def stop_relay(app: IngestApp, **_: Any) -> None:
            await relay.reset()

    if runner is not None and runner.has_silence:

        @app.timer(settings.rules.silence_interval_s)
        async def check_silence() -> None:
            try:
                async with (
                    await psycopg.AsyncConnection.connect(settings.db.conninfo("ingest")) as conn,
                    conn.transaction(),
                ):
                    counts = await runner.check_silence(conn)
                pipeline.rule_totals.add(counts)
            except psycopg.OperationalError as exc:
                silence_outage.failed(exc)  # checked again at the next tick
            else:
                silence_outage.succeeded()

    @app.timer(conf.stats_interval_s)
    async def write_stats() -> None:
        try:
            await record_lag(settings, pipeline.metrics, app.conf.id)
            await asyncio.to_thread(pipeline.write_stats)
        except (psycopg.OperationalError, KafkaError, *KAFKA_TRANSIENT) as exc:
            stats_outage.failed(exc)  # that window's figures are lost; the data is not
        else:
            stats_outage.succeeded()

    next_maintenance = [0.0]  # monotonic time before which a timer tick skips the run

    @app.timer(conf.maintenance_interval_s)
    async def maintain_storage() -> None:
        started = time.monotonic()
        if started < next_maintenance[0]:
            return  # the changed ranges wait for the next run, none is dropped
        try:
            await asyncio.to_thread(pipeline.maintain_now)
        except psycopg.OperationalError as exc:
            maintenance_outage.failed(exc)  # changed ranges are kept for the next run
        else:  # a failed run (database down) is retried at the next tick, as before
            maintenance_outage.succeeded()
            next_maintenance[0] = started + (time.monotonic() - started) / MAINTENANCE_SHARE

    @app.page("/metrics")
    async def metrics(web: Any, request: Any) -> Any:
        body, content_type = pipeline.metrics.exposition(request.headers.get("Accept"))
        return web.bytes(body, headers={"Content-Type": content_type})

    return app, pipeline
