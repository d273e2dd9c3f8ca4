"""Every codec a producer may use, from a real librdkafka producer (kcat), through a real
`ioc worker`; and batches Kafka hands over but the consumer cannot read (a codec missing on
purpose, a batch corrupted on the broker's disk) are dead-lettered as ranges, logged once,
counted, and passed, while every other partition goes on and the worker never exits.
"""

from __future__ import annotations

import asyncio
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from localdev.runtime import LocalKafka
from streams.dlq import DeadLetter
from streams.settings import Settings
from tests.support.kafka_batches import flip_byte, kcat_produce, produce_batch, segment_files
from tests.support.worker_stack import Sent, WorkerStack, water_level_events, worker_stack

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

CODECS = ["none", "gzip", "snappy", "lz4", "zstd"]  # on partitions 0..4
NEEDS_CRAMJAM = {"snappy", "lz4", "zstd"}
PER_CODEC = 20
CORRUPT_PARTITION = 5
STRUCTURED = [("content-type", "application/cloudevents+json")]


@pytest.fixture
def stack(
    settings: Settings, kafka_bootstrap: str, pg_conninfo: str, tmp_path: Path
) -> Iterator[WorkerStack]:
    with worker_stack(settings, tmp_path, IOC_STREAM__STATS_INTERVAL_S="1") as stack:
        yield stack


def send_with_kcat(stack: WorkerStack) -> dict[str, Sent]:
    """PER_CODEC valid events per codec, codec i on partition i of the environment topic (fresh,
    so their offsets are 0..PER_CODEC-1)."""
    sent: dict[str, Sent] = {}
    for partition, codec in enumerate(CODECS):
        events = water_level_events(stack.settings, PER_CODEC, tag=codec)
        kcat_produce(
            stack.settings.kafka.bootstrap, stack.topic(),
            [(key, value) for key, value, _headers, _id in events],
            codec=codec, partition=partition, headers=STRUCTURED,
        )  # fmt: skip
        sent[codec] = {
            (stack.topic(), partition, offset): event_id
            for offset, (*_, event_id) in enumerate(events)
        }
    return sent


def test_every_codec_from_kcat_is_stored(stack: WorkerStack) -> None:
    stack.start_worker()
    sent = send_with_kcat(stack)
    every = {event_id for by_codec in sent.values() for event_id in by_codec.values()}
    assert stack.wait_until_stored(every) == set()
    assert stack.dead_letters() == []


def wait_for_letters(stack: WorkerStack, count: int, timeout: float = 60) -> list[DeadLetter]:
    deadline = time.monotonic() + timeout
    letters = stack.dead_letters()
    while len(letters) < count and time.monotonic() < deadline:
        time.sleep(0.5)
        letters = stack.dead_letters()
    return letters


def covered(letters: list[DeadLetter], partition: int) -> list[int]:
    return sorted(
        offset
        for letter in letters
        if letter.partition == partition
        for offset in range(letter.offset, (letter.last_offset or letter.offset) + 1)
    )


def test_unreadable_batches_are_dead_lettered_and_every_partition_goes_on(
    stack: WorkerStack, settings: Settings
) -> None:
    """A worker without the codec library (snappy, lz4, zstd cannot be decompressed) reads the
    five codecs' partitions and one with a batch corrupted on disk between two good ones."""
    sent = send_with_kcat(stack)
    bootstrap, topic = stack.settings.kafka.bootstrap, stack.topic()
    before, corrupt, after = (
        water_level_events(stack.settings, 5, tag=tag) for tag in ("before", "corrupt", "after")
    )
    good: Sent = {}
    for events in (before, corrupt, after):
        offsets = asyncio.run(
            produce_batch(
                bootstrap, topic, CORRUPT_PARTITION, [e[1] for e in events], key=events[0][0]
            )
        )
        good |= {(topic, CORRUPT_PARTITION, o): e[3] for o, e in zip(offsets, events, strict=True)}
    corrupt_offsets = sorted(o for (_, _, o), i in good.items() if i.startswith("corrupt-"))
    kafka = LocalKafka(settings)
    kafka.stop()  # a clean shutdown: the broker does not re-check its log when it starts
    try:
        (segment,) = segment_files(kafka.data, topic, CORRUPT_PARTITION)
        flip_byte(segment, corrupt[2][3].encode())  # inside one event's id
    finally:
        kafka.start()

    worker = stack.start_worker(fault="no_cramjam")
    readable = {
        event_id
        for codec, by_offset in sent.items()
        if codec not in NEEDS_CRAMJAM
        for event_id in by_offset.values()
    } | {event_id for event_id in good.values() if not event_id.startswith("corrupt-")}
    assert stack.wait_until_stored(readable) == set()
    partitions_hit = len(NEEDS_CRAMJAM) + 1
    letters = wait_for_letters(stack, partitions_hit)
    committed = stack.wait_until_committed(
        {k: v for by_codec in sent.values() for k, v in by_codec.items()} | good
    )

    assert {letter.reason for letter in letters} == {"unreadable_batch"}
    for partition, codec in enumerate(CODECS):
        if codec in NEEDS_CRAMJAM:  # exactly the codec's offsets, not one more
            assert covered(letters, partition) == list(range(PER_CODEC)), codec
            assert {x.error_class for x in letters if x.partition == partition} == {
                "UnsupportedCodecError"
            }
        else:
            assert covered(letters, partition) == []
    assert covered(letters, CORRUPT_PARTITION) == corrupt_offsets
    (corrupt_letter,) = [x for x in letters if x.partition == CORRUPT_PARTITION]
    assert corrupt_letter.error_class == "CorruptRecordException"
    assert stack.stored_ids() == readable  # nothing of an unreadable batch was stored
    for partition in range(len(CODECS)):
        assert committed[topic, partition] == PER_CODEC
    assert committed[topic, CORRUPT_PARTITION] == 15

    time.sleep(2)  # a stats window
    assert worker.running(), worker.log_tail()
    log = worker.log_path.read_text(errors="replace")
    assert log.count("ingest.unreadable_batch") == len(letters)  # once per range
    with urllib.request.urlopen(f"http://127.0.0.1:{worker.web_port}/metrics") as page:  # type: ignore[attr-defined]
        metrics = page.read().decode()
    assert any(
        line.startswith("ioc_events_rejected_total{")
        and 'reason="unreadable_batch"' in line
        and float(line.rsplit(" ", 1)[1]) == len(letters)
        for line in metrics.splitlines()
    ), metrics
    with psycopg.connect(stack.settings.db.conninfo("owner")) as conn:
        (counted,) = conn.execute(
            "SELECT coalesce(sum((rejected_by_reason->>'unreadable_batch')::int), 0)"
            " FROM pipeline_stats"
        ).fetchone() or (0,)
    assert counted == len(letters)
