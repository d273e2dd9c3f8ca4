"""Sends simulated messages to Kafka: aiokafka's batch API, one open batch per partition.

The thin I/O part of the simulator. Partitions are chosen like Kafka's default partitioner
(murmur2 of the key, so an entity's events stay in order on one partition), cached per key.
`rate` paces sending to real time (the event times are nominal: start + seq / rate); with
`rate=None` it sends as fast as the broker takes it.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaTimeoutError
from aiokafka.partitioner import murmur2

from simulator.generate import Message
from streams.kafka_io import Brokers, connect_options
from streams.retry import retry_until_done

Progress = Callable[[int], None]


@dataclass
class ProduceReport:
    sent: int = 0
    bytes: int = 0
    seconds: float = 0.0
    batches: int = 0

    @property
    def rate(self) -> float:
        return self.sent / self.seconds if self.seconds else 0.0


async def produce(
    messages: Iterable[Message],
    bootstrap: Brokers,
    *,
    rate: float | None = None,
    progress: Progress | None = None,
    progress_every: int = 2000,
    batch_bytes: int = 1024 * 1024,
    linger_ms: int = 20,
    client_id: str = "ioc-simulator",
) -> ProduceReport:
    """Send every message; returns when all are acknowledged (acks=all). Raises on failure.

    The producer is idempotent: while the broker is down or restarting, batches wait and are
    retried until they are written, never expired, and a retry of a batch the broker had already
    written (its answer lost when it stopped) is not written twice. Sending waits for a broker
    that is away however long it takes, logging once when it starts waiting and once when it
    goes on (`simulate.send.backpressure`, `simulate.send.recovered`).
    """
    producer = AIOKafkaProducer(
        **connect_options(bootstrap),
        client_id=client_id,
        acks="all",
        enable_idempotence=True,
        linger_ms=linger_ms,
        max_batch_size=batch_bytes,
        max_request_size=batch_bytes + 64 * 1024,
        request_timeout_ms=60_000,
    )
    await producer.start()
    report = ProduceReport()
    started = time.monotonic()
    partition_count: dict[str, int] = {}
    partition_of: dict[tuple[str, bytes], int] = {}
    open_batches: dict[tuple[str, int], object] = {}
    pending: list[asyncio.Future[object]] = []
    try:

        async def submit(topic: str, partition: int) -> None:
            batch = open_batches.pop((topic, partition))
            # send_batch waits for the partition's previous batch to leave the accumulator and
            # gives up with KafkaTimeoutError (without taking this one) while the broker is away
            # for longer than about request_timeout_ms: offer the same batch again.
            future = await retry_until_done(
                lambda: producer.send_batch(batch, topic, partition=partition),
                transient=(KafkaTimeoutError,),
                what="simulate.send",
                topic=topic,
                partition=partition,
            )
            pending.append(future)
            report.batches += 1
            if len(pending) > 256:
                done = [f for f in pending if f.done()]
                for future in done:
                    future.result()  # raise a delivery error now, not at the end
                pending[:] = [f for f in pending if not f.done()]

        for n, message in enumerate(messages, 1):
            topic, key = message.topic, message.key
            partition = partition_of.get((topic, key))
            if partition is None:
                if topic not in partition_count:
                    partition_count[topic] = len(await producer.partitions_for(topic))
                partition = (murmur2(key) & 0x7FFFFFFF) % partition_count[topic]
                partition_of[(topic, key)] = partition
            batch = open_batches.get((topic, partition))
            if batch is None:
                batch = open_batches[(topic, partition)] = producer.create_batch()
            if (
                batch.append(key=key, value=message.value, timestamp=None, headers=message.headers)
                is None
            ):  # type: ignore[attr-defined]
                await submit(topic, partition)
                batch = open_batches[(topic, partition)] = producer.create_batch()
                if (
                    batch.append(
                        key=key, value=message.value, timestamp=None, headers=message.headers
                    )
                    is None
                ):  # type: ignore[attr-defined]
                    raise ValueError(
                        f"message {message.seq} does not fit in a batch of {batch_bytes} bytes"
                    )
            report.sent = n
            report.bytes += len(message.value)
            if n % progress_every == 0:
                if progress:
                    progress(n)
                if rate:
                    ahead = n / rate - (time.monotonic() - started)
                    if ahead > 0:
                        for key_tp in list(open_batches):  # don't hold events while we wait
                            await submit(*key_tp)
                        await asyncio.sleep(ahead)
                else:
                    await asyncio.sleep(0)  # let the sender task run
        for key_tp in list(open_batches):
            await submit(*key_tp)
        await producer.flush()
        for future in pending:
            await future
    finally:
        await producer.stop()
    report.seconds = time.monotonic() - started
    if progress:
        progress(report.sent)
    return report
