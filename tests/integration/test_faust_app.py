"""A Faust agent built by create_app and iterating `IngestStream.take_records`, as the worker's
ingest agents do, against the real broker: offsets are committed only after the agent's batch
body has returned, and then all of them. Both deliveries the worker can run are covered:
RecordChunks (`stream.read_chunks`, the default) and Faust's one message per record.
What take_records acks when the body raises or the agent is cancelled has its own tests."""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any

import pytest
from aiokafka import ConsumerRecord

from localdev.smoke import ensure_topic, produce
from streams.faust_ext import IngestStream, create_app
from streams.kafka_io import Record
from streams.settings import Settings
from tests.support.kafka_batches import committed_offsets

pytestmark = pytest.mark.integration

EVENTS = 300
PARTITIONS = 2


async def committed(bootstrap: str, group: str, topic: str) -> dict[int, int]:
    """The group's committed offsets of `topic`, by partition."""
    offsets = await committed_offsets(bootstrap, group)
    return {partition: offset for (name, partition), offset in offsets.items() if name == topic}


def app_reading(settings: Settings, group: str, topic: str, mode: str) -> tuple[Any, Any]:
    """An app of consumer group `group` and its raw-bytes `topic`, chunked in mode "chunks"
    (as streams.worker does with read_chunks on)."""
    app = create_app(settings, id=group)
    if mode == "chunks":
        app.chunk_topics(topic)
    return app, app.topic(topic, value_serializer="raw", key_serializer="raw")


def batches_of(stream: Any, size: int, within: float) -> Any:
    """The agent's batches as lists of records (objects with .partition, .offset, .value):
    aiokafka's records out of RecordChunks, or Faust's messages."""
    assert isinstance(stream, IngestStream)
    return stream.take_records(size, within=within)


@pytest.mark.parametrize("mode", ["records", "chunks"])
async def test_commit_waits_for_the_batch_body(
    kafka_bootstrap: str, settings: Settings, mode: str
) -> None:
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
            "read_chunks": mode == "chunks",
            "batch_size": 10_000,
            "batch_window_s": 0.3,
            "commit_interval_s": 0.2,
        }
    )
    app, source = app_reading(
        settings.model_copy(update={"stream": stream_conf}), group, topic, mode
    )
    taken: list[bytes] = []
    stored: list[bytes] = []
    holding = asyncio.Event()
    release = asyncio.Event()

    async def ingest(stream: Any) -> None:
        size, within = stream_conf.batch_size, stream_conf.batch_window_s
        async for batch in batches_of(stream, size, within):
            taken.extend(r.value for r in batch)
            holding.set()
            await release.wait()  # a database write that has not returned yet
            stored.extend(r.value for r in batch)

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


@pytest.mark.parametrize("mode", ["records", "chunks"])
async def test_commits_exactly_the_batches_whose_body_returned(
    kafka_bootstrap: str, settings: Settings, mode: str
) -> None:
    """Batches of 400 from 3,000 records on 2 partitions (chunks of at most 400): the first body
    returns, the second holds. The committed offsets are exactly, per partition, one past the
    last record of the returned batch, whose records are that partition's prefix; still so
    after the app is stopped while the second body holds; and a new app of the group reads
    exactly the other records."""
    run = uuid.uuid4().hex[:8]
    topic, group = f"test.faust-exact.{run}", f"test-faust-exact-{run}"
    total = 3000
    await ensure_topic(kafka_bootstrap, topic, PARTITIONS)
    await produce(
        kafka_bootstrap,
        topic,
        [b"%d" % n for n in range(total)],
        [b"k%d" % n for n in range(total)],
    )
    stream_conf = settings.stream.model_copy(
        update={
            "web_enabled": False,
            "read_chunks": mode == "chunks",
            "batch_size": 400,
            "commit_interval_s": 0.2,
        }
    )
    app, source = app_reading(
        settings.model_copy(update={"stream": stream_conf}), group, topic, mode
    )
    done: list[Any] = []
    holding = asyncio.Event()
    release = asyncio.Event()

    held: list[Any] = []

    async def ingest(stream: Any) -> None:
        async for batch in batches_of(stream, 400, 5.0):
            if done and not held:
                held.extend(batch)
                holding.set()
                await release.wait()  # a database write that has not returned yet
            done.extend(batch)

    app.agent(source, name=f"test.exact.{run}", concurrency=1)(ingest)
    await app.start()
    try:
        await asyncio.wait_for(holding.wait(), 25)
        await asyncio.sleep(1.2)  # six commit intervals
        offsets = await committed(kafka_bootstrap, group, topic)
        expected: dict[int, int] = {}
        for record in done:
            expected[record.partition] = max(expected.get(record.partition, 0), record.offset + 1)
        assert offsets == expected
        for partition, end in expected.items():
            assert sorted(r.offset for r in done if r.partition == partition) == list(range(end))
        if mode == "chunks":  # aiokafka's records, out of RecordChunks; a chunk may overshoot
            assert all(isinstance(r, ConsumerRecord) for r in done)
            assert 400 <= len(done) < 800
        else:
            assert all(isinstance(r, Record) for r in done)  # faust_ext.record_of
            assert len(done) == 400
        # A graceful stop while the second body holds its batch: Faust waits for the body (as
        # the worker's shutdown waits for a sink write), and commits nothing of that batch.
        stopping = asyncio.create_task(app.stop())
        await asyncio.sleep(3)
        assert not stopping.done()
        assert await committed(kafka_bootstrap, group, topic) == expected, (
            "stopping the app committed a batch whose body had not returned"
        )
    finally:
        release.set()
    await asyncio.wait_for(stopping, 30)

    # A new app of the group starts at the committed offsets: nothing is lost, and only the
    # batch that was held during the stop may be read again (at least once).
    again, source = app_reading(
        settings.model_copy(update={"stream": stream_conf}), group, topic, mode
    )
    rest: list[Any] = []
    all_read = asyncio.Event()

    read_by_first = {(r.partition, r.offset) for r in done}

    async def resume(stream: Any) -> None:
        async for batch in batches_of(stream, 400, 0.3):
            rest.extend(batch)
            if len(read_by_first | {(r.partition, r.offset) for r in rest}) == total:
                all_read.set()

    again.agent(source, name=f"test.exact.{run}", concurrency=1)(resume)
    await again.start()
    try:
        await asyncio.wait_for(all_read.wait(), 25)
        await asyncio.sleep(0.5)
        again_read = [(r.partition, r.offset) for r in rest]
        assert len(again_read) == len(set(again_read))
        twice = read_by_first & set(again_read)
        assert twice <= {(r.partition, r.offset) for r in held}, "re-read beyond the held batch"
    finally:
        await again.stop()
