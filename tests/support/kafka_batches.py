"""Kafka helpers for the "nothing lost" tests: record batches written with a chosen codec (by
aiokafka or by kcat, a librdkafka producer), a byte flipped in a stopped broker's segment file,
and a consumer group's committed offsets.

Nothing here is imported by the running platform.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Sequence
from pathlib import Path

from aiokafka import AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

KCAT_INSTALL = "bash deploy/local/install-test-tools.sh (or: apt-get install kcat)"


async def produce_batch(
    bootstrap: str,
    topic: str,
    partition: int,
    values: Sequence[bytes],
    *,
    compression: str | None = None,
    key: bytes = b"k",
) -> list[int]:
    """`values` to one partition as ONE record batch (one producer, one flush); their offsets."""
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap, acks="all", linger_ms=1000, compression_type=compression,
        max_batch_size=4 * 1024 * 1024,
    )  # fmt: skip
    await producer.start()
    try:
        futures = [
            await producer.send(topic, value=v, key=key, partition=partition) for v in values
        ]
        await producer.flush()
        return [(await fut).offset for fut in futures]
    finally:
        await producer.stop()


def kcat() -> str:
    """The kcat program; AssertionError with the install command when it is missing."""
    path = shutil.which("kcat")
    assert path, f"kcat is not installed; install it with `{KCAT_INSTALL}`"
    return path


def kcat_produce(
    bootstrap: str,
    topic: str,
    messages: Sequence[tuple[bytes, bytes]],
    *,
    codec: str,
    partition: int | None = None,
    headers: Sequence[tuple[str, str]] = (),
) -> None:
    """Send (key, value) messages with kcat, librdkafka's producer, in one run compressed with
    `codec` (none, gzip, snappy, lz4, zstd), as an integrator would; every message gets
    `headers`. Keys and values are one line each (a tab between them)."""
    args = [kcat(), "-P", "-b", bootstrap, "-t", topic, "-z", codec, "-K", "\t", "-X", "acks=all"]
    if partition is not None:
        args += ["-p", str(partition)]
    for name, value in headers:
        args += ["-H", f"{name}={value}"]
    lines = b"".join(key + b"\t" + value + b"\n" for key, value in messages)
    assert lines.count(b"\n") == len(messages) and lines.count(b"\t") == len(messages)
    done = subprocess.run(args, input=lines, capture_output=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr.decode(errors="replace")


def flip_byte(segment: Path, marker: bytes) -> int:
    """Flip one bit of the byte where `marker` starts in a segment file of a STOPPED broker;
    returns its position. The broker checks CRCs when a batch is produced, not when it reads its
    log back after a clean shutdown, so the batch is served as it is now on disk."""
    data = bytearray(segment.read_bytes())
    at = data.find(marker)
    assert at >= 0 and data.find(marker, at + 1) < 0, f"{marker!r} is not once in {segment}"
    data[at] ^= 0x01
    segment.write_bytes(bytes(data))
    return at


def segment_files(kafka_data: Path, topic: str, partition: int) -> list[Path]:
    return sorted((kafka_data / f"{topic}-{partition}").glob("*.log"))


async def committed_offsets(bootstrap: str, group: str) -> dict[tuple[str, int], int]:
    """The group's committed offsets, {(topic, partition): next offset to read}."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        offsets = await admin.list_consumer_group_offsets(group)
    finally:
        await admin.close()
    return {
        (tp.topic, tp.partition): meta.offset
        for tp, meta in offsets.items()
        if isinstance(tp, TopicPartition) and meta.offset >= 0
    }
