"""A record batch the consumer cannot read, against the real broker, with the worker's Faust app
machinery (create_app, RecordChunks, take_records): a batch whose codec is missing comes out as
ONE UnreadableRange of exactly that batch's offsets, in order between the readable records; the
partition goes on after it, the other partition is not held up, and the committed offsets cover
the range once the body returned. A batch corrupted on the broker's disk, through a real worker
down to its dead letter: tests/e2e/test_codecs_and_poison.py."""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any

import aiokafka.codec
import pytest
from aiokafka import ConsumerRecord

from localdev.smoke import ensure_topic
from streams.faust_ext import create_app
from streams.kafka_io import UnreadableRange
from streams.settings import Settings
from tests.support.kafka_batches import committed_offsets, produce_batch

pytestmark = pytest.mark.integration


def values(prefix: str, n: int) -> list[bytes]:
    return [f"{prefix}-{i}".encode() for i in range(n)]


async def read_all(
    settings: Settings, topic: str, group: str, expected_end: dict[int, int]
) -> tuple[list[Any], dict[tuple[str, int], int]]:
    """Run an app of `group` on `topic` (chunked, take_records) until its committed offsets
    reach `expected_end` ({partition: end offset}); what the agent's bodies saw, and the
    committed offsets."""
    conf = settings.stream.model_copy(
        update={"web_enabled": False, "batch_window_s": 0.2, "commit_interval_s": 0.2}
    )
    app = create_app(settings.model_copy(update={"stream": conf}), id=group)
    app.chunk_topics(topic)
    source = app.topic(topic, value_serializer="raw", key_serializer="raw")
    seen: list[Any] = []

    async def ingest(stream: Any) -> None:
        async for batch in stream.take_records(1000, within=conf.batch_window_s):
            seen.extend(batch)

    app.agent(source, name=f"test.unreadable.{group}", concurrency=1)(ingest)
    await app.start()
    offsets: dict[tuple[str, int], int] = {}
    try:
        deadline = time.monotonic() + 30
        want = {(topic, p): end for p, end in expected_end.items()}
        while time.monotonic() < deadline:
            offsets = await committed_offsets(settings.kafka.bootstrap, group)
            if {k: v for k, v in offsets.items() if k[0] == topic} == want:
                break
            await asyncio.sleep(0.2)
    finally:
        await app.stop()
    return seen, {k: v for k, v in offsets.items() if k[0] == topic}


def by_partition(seen: list[Any], partition: int) -> list[Any]:
    return [r for r in seen if r.partition == partition]


async def test_a_batch_whose_codec_is_missing_is_one_range_and_the_partition_goes_on(
    kafka_bootstrap: str, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    run = uuid.uuid4().hex[:8]
    topic, group = f"test.codec-missing.{run}", f"test-codec-missing-{run}"
    await ensure_topic(kafka_bootstrap, topic, 2)
    assert await produce_batch(kafka_bootstrap, topic, 0, values("a", 5)) == [0, 1, 2, 3, 4]
    snappy = await produce_batch(kafka_bootstrap, topic, 0, values("b", 5), compression="snappy")
    assert snappy == [5, 6, 7, 8, 9]
    await produce_batch(kafka_bootstrap, topic, 0, values("c", 5), compression="gzip")
    await produce_batch(kafka_bootstrap, topic, 1, values("d", 10))

    monkeypatch.setattr(aiokafka.codec, "cramjam", None)  # snappy, lz4, zstd: not installed
    seen, offsets = await read_all(settings, topic, group, {0: 15, 1: 10})

    first = by_partition(seen, 0)
    assert [r.value for r in first[:5]] == values("a", 5)
    unreadable = first[5]
    assert type(unreadable) is UnreadableRange
    assert (unreadable.topic, unreadable.partition) == (topic, 0)
    assert (unreadable.offset, unreadable.last_offset) == (5, 9)
    assert unreadable.error_class == "UnsupportedCodecError"
    assert "snappy" in unreadable.error
    assert [r.value for r in first[6:]] == values("c", 5)
    assert all(isinstance(r, ConsumerRecord) for r in first[6:])
    assert [r.value for r in by_partition(seen, 1)] == values("d", 10)
    assert offsets == {(topic, 0): 15, (topic, 1): 10}
