"""`ioc worker`, `ioc topics create`, `ioc dlq stats | show | replay`."""

from __future__ import annotations

import asyncio
import gc
from collections import Counter
from typing import Annotated, Any

import typer
from aiokafka import AIOKafkaProducer
from rich.table import Table

from ioc.console import check_kafka, console, fail, settings_from
from sinks.connect import refused_logins
from streams.dlq import (
    DeadLetter,
    dlq_topic,
    from_record,
    read_letters,
    replay_headers,
    unique_by_origin,
)
from streams.kafka_auth import client_options
from streams.kafka_io import read_to_end
from streams.net import port_is_free
from streams.settings import Settings

#: Allocations (net) between young-generation collections in the worker (Python: 700).
GC_THRESHOLD = 50_000

topics_app = typer.Typer(help="Kafka topics of the platform.", no_args_is_help=True)
dlq_app = typer.Typer(
    help="The dead-letter topic: what was rejected and why.", no_args_is_help=True
)


def worker_command(
    ctx: typer.Context,
    loglevel: Annotated[str, typer.Option(help="Faust's log level.")] = "warning",
) -> None:
    """Run a pipeline worker (Faust): ingest every domain topic into the database.

    Start several, on one machine or many: they form one consumer group and share the partitions.
    """
    from rules import RuleError
    from streams.faust_ext import FrameworkVersionError, run_worker
    from streams.worker import build

    settings = settings_from(ctx)
    check_kafka(settings)
    conf = settings.stream
    if conf.web_enabled and not port_is_free(conf.web_port, conf.web_host):
        raise fail(
            f"port {conf.web_port} for the worker's web server (/metrics) is taken, perhaps by "
            "another worker on this machine; give each worker its own IOC_STREAM__WEB_PORT",
            code=2,
        )
    if refused := refused_logins(settings.db, ("ingest", "owner")):
        raise fail("cannot start the worker: " + "; ".join(refused))
    try:
        app, _pipeline = build(settings)
    except FrameworkVersionError as exc:
        raise fail(str(exc), code=2) from None
    except RuleError as exc:
        raise fail("invalid rules:\n  " + "\n  ".join(exc.problems), code=2) from None
    tune_gc()
    run_worker(app, loglevel=loglevel)


def tune_gc() -> None:
    """Fewer cyclic garbage collections in the worker. A batch allocates a few hundred thousand
    short-lived tuples and objects (Faust events, records, rows), none of them in cycles that
    must be freed early; with the default threshold (700) a young collection runs every few
    hundred events and the older generations, which hold the stream buffers, are walked again
    and again. Objects alive at start (modules, the app) are frozen out of collection."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(GC_THRESHOLD, 20, 20)


@topics_app.command("create")
def topics_create(ctx: typer.Context) -> None:
    """Create every domain topic, the DLQ and the incidents topic (existing ones are kept).

    The workers' incident relay publishes every incident transition to the incidents topic."""
    from streams.pipeline import all_topics, ensure_topics, registry_for

    settings = settings_from(ctx)
    check_kafka(settings)
    try:
        outcome = asyncio.run(ensure_topics(settings))
    except Exception as exc:  # the broker is unreachable or refused: say which, exit 1
        raise fail(
            f"cannot create topics on {settings.kafka.bootstrap}: {type(exc).__name__}: {exc}"
        ) from None
    partitions = all_topics(settings, registry_for(settings))
    for name, what in sorted(outcome.items()):
        console.print(f"{name}: {what} ({partitions[name]} partitions)", highlight=False)


def letters_in_dlq(settings: Settings) -> list[DeadLetter]:
    return asyncio.run(read_letters(settings.kafka, dlq_topic(settings.kafka.topic_prefix)))


@dlq_app.command("stats")
def dlq_stats(ctx: typer.Context) -> None:
    """Dead letters by reason and domain (each origin offset counted once)."""
    settings = settings_from(ctx)
    check_kafka(settings)
    from streams.pipeline import registry_for

    registry = registry_for(settings)
    letters = unique_by_origin(letters_in_dlq(settings))
    counts = Counter((x.reason, registry.domain_of_topic(x.topic) or x.topic) for x in letters)
    table = Table(title=f"{dlq_topic(settings.kafka.topic_prefix)}: {len(letters):,} dead letters")
    for column in ("reason", "domain", "count"):
        table.add_column(column, justify="right" if column == "count" else "left")
    for (reason, domain), count in sorted(counts.items()):
        table.add_row(reason, domain, f"{count:,}")
    console.print(table)


@dlq_app.command("show")
def dlq_show(
    ctx: typer.Context,
    reason: Annotated[str | None, typer.Option(help="Only this reason code.")] = None,
    limit: Annotated[int, typer.Option(min=1, max=10_000)] = 20,
) -> None:
    """The newest dead letters: reason, message, origin and the start of the original bytes."""
    settings = settings_from(ctx)
    check_kafka(settings)
    letters = letters_in_dlq(settings)
    letters = [x for x in letters if reason is None or x.reason == reason][-limit:]
    for letter in letters:
        preview = (letter.value or b"")[:160].decode(errors="replace")
        offsets = f"{letter.offset}" + (
            f"..{letter.last_offset}" if letter.last_offset is not None else ""
        )
        event = (
            f" event source={letter.event_source} id={letter.event_id}"
            if letter.event_source or letter.event_id else ""
        )  # fmt: skip
        console.print(
            f"[bold]{letter.reason}[/] {letter.topic}[{letter.partition}]@{offsets} "
            f"replays={letter.replay_count} {letter.rejected_at:%Y-%m-%d %H:%M:%S}Z{event}\n"
            f"  {letter.error_class}: {letter.message}\n  {preview!r}",
            highlight=False, soft_wrap=True,
        )  # fmt: skip
    if not letters:
        console.print("no dead letters" + (f" with reason {reason}" if reason else ""))


@dlq_app.command("replay")
def dlq_replay(
    ctx: typer.Context,
    reason: Annotated[str, typer.Option(help="Replay the dead letters with this reason code.")],
    dry_run: Annotated[
        bool, typer.Option(help="Count what would be replayed; send nothing.")
    ] = False,
) -> None:
    """Send dead letters of one reason back to their original topics (after a contract fix).

    Each reason has its own cursor (consumer group), so a letter is replayed once. A replayed
    event that fails again comes back to the DLQ with its replay count.
    """
    settings = settings_from(ctx)
    check_kafka(settings)
    sent = asyncio.run(replay(settings, reason, dry_run=dry_run))
    verb = "would replay" if dry_run else "replayed"
    console.print(f"{verb} {sent:,} dead letters with reason {reason}", highlight=False)


async def replay(settings: Settings, reason: str, *, dry_run: bool = False) -> int:
    from aiokafka import TopicPartition

    group = f"{settings.kafka.client_id}.dlq-replay.{reason}"
    producer = AIOKafkaProducer(**client_options(settings.kafka), acks="all")
    await producer.start()
    sent = 0
    seen: set[tuple[str, int, int, int]] = set()
    read_up_to: dict[TopicPartition, int] = {}
    try:
        async for _consumer, record in read_to_end(
            settings.kafka, dlq_topic(settings.kafka.topic_prefix), group_id=group
        ):
            read_up_to[TopicPartition(record.topic, record.partition)] = record.offset + 1
            letter = from_record(record.key, record.value, record.headers)
            if letter.reason != reason or letter.origin in seen or not letter.topic:
                continue
            seen.add(letter.origin)
            sent += 1
            if not dry_run:
                await producer.send(
                    letter.topic, value=letter.value, key=letter.key, headers=replay_headers(letter)
                )
        if not dry_run:
            await producer.flush()
            await commit_cursor(settings, group, read_up_to)
    finally:
        await producer.stop()
    return sent


async def commit_cursor(settings: Settings, group: str, offsets: dict[Any, int]) -> None:
    """Move the replay cursor of `group` past what was read (after the re-sends were acked)."""
    from aiokafka import AIOKafkaConsumer

    if not offsets:
        return
    consumer = AIOKafkaConsumer(
        **client_options(settings.kafka), group_id=group, enable_auto_commit=False
    )
    await consumer.start()
    try:
        consumer.assign(list(offsets))
        await consumer.commit(offsets)
    finally:
        await consumer.stop()
