"""Small aiokafka helpers shared by the CLI tools: create topics, read a topic to its end.

Each takes the broker as `Brokers`: the Kafka settings (with their security, streams.kafka_auth),
or a bare bootstrap string for a PLAINTEXT broker (the tests' fixtures)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Protocol

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import (
    CoordinatorLoadInProgressError,
    GroupCoordinatorNotAvailableError,
    TopicAlreadyExistsError,
    TopicAuthorizationFailedError,
    for_code,
)

from streams.kafka_auth import client_options
from streams.settings import KafkaSettings

Brokers = KafkaSettings | str


def connect_options(brokers: Brokers) -> dict[str, object]:
    """aiokafka keyword arguments for `brokers` (bootstrap servers and, if set, SASL and TLS)."""
    if isinstance(brokers, str):
        return {"bootstrap_servers": brokers}
    return client_options(brokers)


class KafkaRecord(Protocol):
    """What the pipeline reads from a consumed record: aiokafka's ConsumerRecord, a Faust
    Message and `Record` all have these attributes (headers: (str, bytes) pairs)."""

    @property
    def topic(self) -> str: ...
    @property
    def partition(self) -> int: ...
    @property
    def offset(self) -> int: ...
    @property
    def key(self) -> bytes | None: ...
    @property
    def value(self) -> bytes | None: ...
    @property
    def headers(self) -> Sequence[tuple[str, bytes]]: ...
    @property
    def timestamp(self) -> int:
        """Milliseconds since the epoch: the producer's create time or the broker's append
        time (the topic's message.timestamp.type); -1 if unknown."""
        ...


@dataclass(frozen=True, slots=True)
class Record:
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: tuple[tuple[str, bytes], ...]
    timestamp: int  # ms since the epoch, -1 if unknown


@dataclass(frozen=True, slots=True)
class UnreadableRange:
    """Offsets of one partition that Kafka delivered but the consumer could not turn into
    records (a batch whose codec is missing, a corrupt batch). It travels through the stream in
    place of those records, so that the pipeline dead-letters it (reason `unreadable_batch`)
    and the range is committed only after that dead letter is acknowledged, like any record.

    `offset` is the first offset of the range, `last_offset` the last (inclusive); key, value
    and headers are empty so that it reads like a record."""

    topic: str
    partition: int
    offset: int
    last_offset: int
    error: str
    error_class: str
    key: bytes | None = None
    value: bytes | None = b""
    headers: tuple[tuple[str, bytes], ...] = ()
    timestamp: int = -1


async def create_topics(
    bootstrap: Brokers,
    topics: dict[str, int],
    replication: int = 1,
    configs: dict[str, str] | None = None,
) -> dict[str, str]:
    """Create missing topics ({name: partitions}); returns {name: 'created' | 'exists'}.

    A principal without CREATE on a topic that already exists (the workers' on the domain
    topics, in secure mode) gets 'exists': the broker refuses the creation before it looks."""
    admin = AIOKafkaAdminClient(**connect_options(bootstrap))
    await admin.start()
    outcome: dict[str, str] = {}
    try:
        new = [
            NewTopic(name, parts, replication, topic_configs=configs or {})
            for name, parts in topics.items()
        ]
        response = await admin.create_topics(new)
        refused = [
            name
            for name, code, *_ in response.topic_errors
            if code == TopicAuthorizationFailedError.errno
        ]
        existing = set(await admin.list_topics()) if refused else set()
    finally:
        await admin.close()
    for name, code, *rest in response.topic_errors:
        if code == TopicAlreadyExistsError.errno or (
            code == TopicAuthorizationFailedError.errno and name in existing
        ):
            outcome[name] = "exists"
        elif code:
            raise for_code(code)(f"creating topic {name!r}: {rest[0] if rest else ''}")
        else:
            outcome[name] = "created"
    return outcome


async def read_to_end(
    bootstrap: Brokers, topic: str, *, group_id: str | None = None, from_beginning: bool = True
) -> AsyncIterator[tuple[AIOKafkaConsumer, Record]]:
    """Every record of `topic` up to the end offsets seen at start, then stop.

    With `group_id`, reading starts at the group's committed offsets (or the beginning) and the
    caller may `commit()` on the yielded consumer.
    """
    consumer = AIOKafkaConsumer(
        **connect_options(bootstrap),
        group_id=group_id,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
    )
    await consumer.start()
    try:
        partitions = consumer.partitions_for_topic(topic)
        if partitions is None:
            await consumer._client.force_metadata_update()
            partitions = consumer.partitions_for_topic(topic) or set()
        tps = [TopicPartition(topic, p) for p in sorted(partitions)]
        if not tps:
            return
        consumer.assign(tps)
        if from_beginning and group_id is None:
            await consumer.seek_to_beginning(*tps)
        end = await consumer.end_offsets(tps)
        remaining = {tp for tp in tps if end[tp] > await consumer.position(tp)}
        while remaining:
            batches = await consumer.getmany(*remaining, timeout_ms=1000, max_records=5000)
            for tp, records in batches.items():
                for rec in records:
                    if rec.offset >= end[tp]:
                        continue
                    yield consumer, Record(
                        rec.topic, rec.partition, rec.offset, rec.key, rec.value,
                        tuple(rec.headers or ()), rec.timestamp,
                    )  # fmt: skip
            remaining = {tp for tp in remaining if await consumer.position(tp) < end[tp]}
    finally:
        await consumer.stop()


async def partition_lag(
    bootstrap: Brokers, group: str, topics: list[str]
) -> dict[TopicPartition, int]:
    """Per partition of `topics`: messages not yet committed by consumer `group`.

    A partition the group never committed counts from its beginning offset.
    """
    from aiokafka.admin import AIOKafkaAdminClient

    admin = AIOKafkaAdminClient(**connect_options(bootstrap))
    await admin.start()
    try:
        # A new broker has no group coordinator until __consumer_offsets exists: ask again.
        for attempt in range(40):
            try:
                committed = await admin.list_consumer_group_offsets(group)
                break
            except (GroupCoordinatorNotAvailableError, CoordinatorLoadInProgressError):
                if attempt == 39:
                    raise
                await asyncio.sleep(0.5)
    finally:
        await admin.close()
    consumer = AIOKafkaConsumer(**connect_options(bootstrap))
    await consumer.start()
    try:
        await consumer._client.force_metadata_update()
        tps = [
            TopicPartition(t, p)
            for t in topics
            for p in sorted(consumer.partitions_for_topic(t) or ())
        ]
        if not tps:
            return {}
        ends = await consumer.end_offsets(tps)
        starts = await consumer.beginning_offsets(tps)
    finally:
        await consumer.stop()
    return {tp: ends[tp] - (committed[tp].offset if tp in committed else starts[tp]) for tp in tps}
