"""A Faust agent built by create_app, against the real broker: offsets are committed only
after the agent's `take()` batch body has returned, and then all of them."""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any

import pytest
from aiokafka import TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from streams.app import create_app
from streams.dev.smoke import ensure_topic, produce
from streams.settings import Settings

pytestmark = pytest.mark.integration

EVENTS = 300
PARTITIONS = 2


async def committed(bootstrap: str, group: str, topic: str) -> dict[int, int]:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        offsets = await admin.list_consumer_group_offsets(group)
    finally:
        await admin.close()
    return {
        tp.partition: meta.offset
        for tp, meta in offsets.items()
        if isinstance(tp, TopicPartition) and tp.topic == topic and meta.offset >= 0
    }


async def test_commit_waits_for_the_batch_body(kafka_bootstrap: str, settings: Settings) -> None:
    run = uuid.uuid4().hex[:8]
    topic, group = f"test.faust-app.{run}", f"test-faust-app-{run}"
    await ensure_topic(kafka_bootstrap, topic, PARTITIONS)
    await produce(
        kafka_bootstrap,
        topic,
        [f'{{"n": {n}}}'.encode() for n in range(EVENTS)],
        [f"k{n % 7}".encode() for n in range(EVENTS)],
    )
    stream_conf = settings.stream.model_copy(
        update={
            "web_enabled": False,
            "batch_size": 10_000,
            "batch_window_s": 0.3,
            "commit_interval_s": 0.2,
        }
    )
    app = create_app(settings.model_copy(update={"stream": stream_conf}), id=group)
    source = app.topic(topic, value_serializer="raw", key_serializer="raw")
    taken: list[bytes] = []
    stored: list[bytes] = []
    holding = asyncio.Event()
    release = asyncio.Event()

    async def ingest(stream: Any) -> None:
        async for batch in stream.take(stream_conf.batch_size, within=stream_conf.batch_window_s):
            taken.extend(batch)
            holding.set()
            await release.wait()  # a database write that has not returned yet
            stored.extend(batch)

    app.agent(source, name=f"test.ingest.{run}", concurrency=1)(ingest)
    await app.start()
    try:
        await asyncio.wait_for(holding.wait(), 25)
        await asyncio.sleep(1.2)  # six commit intervals while the body holds its batch
        assert taken, "the agent saw no events"
        assert await committed(kafka_bootstrap, group, topic) == {}, (
            "offsets were committed while the batch body had not returned"
        )

        release.set()
        deadline = time.monotonic() + 15
        offsets: dict[int, int] = {}
        while time.monotonic() < deadline:
            offsets = await committed(kafka_bootstrap, group, topic)
            if sum(offsets.values()) >= EVENTS:
                break
            await asyncio.sleep(0.2)
        assert sum(offsets.values()) == EVENTS, offsets
        assert sorted(stored) == sorted(taken)
        assert len(stored) == EVENTS
    finally:
        release.set()
        await app.stop()


async def test_an_exception_out_of_the_body_acks_the_batch(
    kafka_bootstrap: str, settings: Settings
) -> None:
    """Faust's take() acks its batch in a `finally`: a sink error that escapes the loop body
    commits events that were never stored. This is why ingest bodies must not raise."""
    run = uuid.uuid4().hex[:8]
    topic, group = f"test.faust-raise.{run}", f"test-faust-raise-{run}"
    await ensure_topic(kafka_bootstrap, topic, 1)
    await produce(kafka_bootstrap, topic, [b'{"n": %d}' % n for n in range(100)], [b"k"] * 100)
    stream_conf = settings.stream.model_copy(
        update={"web_enabled": False, "batch_window_s": 0.3, "commit_interval_s": 0.2}
    )
    app = create_app(settings.model_copy(update={"stream": stream_conf}), id=group)
    source = app.topic(topic, value_serializer="raw", key_serializer="raw")
    batches: list[int] = []

    async def ingest(stream: Any) -> None:
        async for batch in stream.take(1000, within=stream_conf.batch_window_s):
            batches.append(len(batch))
            raise RuntimeError("sink failed")  # what an ingest agent must never do

    app.agent(source, name=f"test.raiser.{run}")(ingest)
    await app.start()
    try:
        deadline = time.monotonic() + 20
        offsets: dict[int, int] = {}
        while time.monotonic() < deadline and not offsets:
            await asyncio.sleep(0.2)
            offsets = await committed(kafka_bootstrap, group, topic) if batches else {}
        assert batches == [100]
        assert offsets == {0: 100}, "the failed batch was committed anyway"
    finally:
        await app.stop()
