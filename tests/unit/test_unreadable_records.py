"""streams.faust_ext.readable_records on fetched bytes built in memory (no broker): a batch that
cannot be read becomes one UnreadableRange of exactly its offsets, the records around it come
out unchanged and in order, and the fetch position ends past everything; and the version guard
names aiokafka as well as Faust."""

from __future__ import annotations

import aiokafka.codec
import pytest
from aiokafka import TopicPartition
from aiokafka.consumer.fetcher import READ_UNCOMMITTED, PartitionRecords
from aiokafka.record.default_records import DefaultRecordBatchBuilder
from aiokafka.record.memory_records import MemoryRecords

from streams.faust_ext import (
    AIOKAFKA_VERSION,
    FAUST_VERSION,
    FrameworkVersionError,
    check_framework,
    readable_records,
)
from streams.kafka_io import UnreadableRange

TP = TopicPartition("city.environment.events", 3)
GZIP, SNAPPY = 1, 2


def batch(base: int, values: list[bytes], codec: int = 0) -> bytes:
    builder = DefaultRecordBatchBuilder(
        magic=2, compression_type=codec, is_transactional=0, producer_id=-1,
        producer_epoch=-1, base_sequence=-1, batch_size=1 << 20,
    )  # fmt: skip
    for delta, value in enumerate(values):
        builder.append(delta, timestamp=1_700_000_000_000, key=b"k", value=value, headers=[])
    data = bytearray(builder.build())
    data[0:8] = base.to_bytes(8, "big")  # the batch's base offset
    return bytes(data)


def fetched(data: bytes, fetch_offset: int) -> PartitionRecords:
    return PartitionRecords(
        TP, MemoryRecords(data), [], fetch_offset, None, None, True, READ_UNCOMMITTED
    )


def test_a_batch_whose_codec_is_missing_is_one_range_between_readable_batches(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    data = (
        batch(10, [b"a0", b"a1"])
        + batch(12, [b"b0", b"b1", b"b2"], SNAPPY)
        + batch(15, [b"c0"], GZIP)
    )
    monkeypatch.setattr(aiokafka.codec, "cramjam", None)
    records = fetched(data, 10)
    out = list(readable_records(records))
    assert [(r.offset, r.value) for r in out if type(r) is not UnreadableRange] == [
        (10, b"a0"), (11, b"a1"), (15, b"c0"),
    ]  # fmt: skip
    (unreadable,) = [r for r in out if type(r) is UnreadableRange]
    assert out.index(unreadable) == 2
    assert (unreadable.topic, unreadable.partition) == (TP.topic, TP.partition)
    assert (unreadable.offset, unreadable.last_offset) == (12, 14)
    assert unreadable.error_class == "UnsupportedCodecError"
    assert "snappy" in unreadable.error
    assert records.next_fetch_offset == 16


def test_a_batch_with_a_flipped_byte_is_one_range_from_the_fetch_position() -> None:
    bad, good = bytearray(batch(2, [b"y0", b"y1", b"y2"])), batch(5, [b"z0"])
    bad[bad.index(b"y1")] ^= 0x01
    records = fetched(bytes(bad) + good, 3)  # a fetch from the middle of the bad batch
    unreadable, after = readable_records(records)
    assert type(unreadable) is UnreadableRange
    assert (unreadable.offset, unreadable.last_offset) == (3, 4)
    assert unreadable.error_class == "CorruptRecordException"
    assert (after.offset, after.value) == (5, b"z0")
    assert records.next_fetch_offset == 6


def test_readable_batches_come_out_as_aiokafka_reads_them() -> None:
    data = batch(0, [b"p0", b"p1"], GZIP) + batch(2, [b"q0"])
    ours = [(r.offset, r.key, r.value) for r in readable_records(fetched(data, 1))]
    theirs = [(r.offset, r.key, r.value) for r in fetched(data, 1)]
    assert ours == theirs == [(1, b"k", b"p1"), (2, b"k", b"q0")]


def test_the_version_guard_names_faust_and_aiokafka() -> None:
    check_framework(FAUST_VERSION, AIOKAFKA_VERSION)
    with pytest.raises(FrameworkVersionError, match=r"aiokafka 0\.13\.0 is installed"):
        check_framework(FAUST_VERSION, "0.13.0")
    with pytest.raises(FrameworkVersionError, match=r"faust-streaming 0\.15\.2 is installed"):
        check_framework("0.15.2", AIOKAFKA_VERSION)
