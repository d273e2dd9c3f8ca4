"""Everything the pipeline adapts in faust-streaming: the one module that touches Faust's internals.

The rest of the pipeline speaks only to this module (`create_app`, `IngestApp`, `IngestStream`,
`run_worker`); an import-linter contract keeps `faust` and `mode` out of every other module.
The adapted methods were read in faust-streaming FAUST_VERSION (and aiokafka AIOKAFKA_VERSION)
and copied with small changes; each names its original (file and method) and says what changed.
`check_framework()` runs when an app is created and refuses any other version of either, so an
upgrade breaks loudly here and nowhere else.

Acknowledgement rule: an event is acked only after the agent's loop body returned normally for
the batch that holds it (`IngestStream.take_records`). An exception in the body, a cancelled
agent, a crashed app or a stopped worker leaves the batch unacked, so its offsets are never
committed; Kafka delivers it again and the sink's natural key makes the second write a no-op.

Ways out, and what each does (tests/e2e/test_nothing_lost.py):
- an agent that leaves its loop other than by the app stopping (an exception out of its body,
  a cancellation) crashes the worker: agents run under mode's CrashingSupervisor, so the
  process exits non-zero and its supervisor (systemd, compose `restart:`) starts it again.
  Faust's default restarts the agent in place, and the new agent goes on after the unacked
  batch: offsets then stay behind it for good while lag grows, a worker silently stuck;
- a crash of any other task (the consumer, the fetcher, a timer) crashes the app: the same;
- a stop (SIGTERM) waits at most STOP_WAIT_S for the batches in flight
  (`IngestConsumer.wait_empty`); a body still waiting then, e.g. for a database that is down,
  is cancelled with its batch unacked;
- in every case the batches whose bodies did not return stay unacked and uncommitted.

Unreadable batches: a record batch that aiokafka cannot turn into records (its codec is not
installed, its CRC does not match, its records do not parse) would raise out of the consumer
on every fetch of that partition, for ever. The consumer thread reads fetches through
`readable_records` instead (aiokafka FetchResult/PartitionRecords, AIOKAFKA_VERSION, adapted):
such a batch becomes one `UnreadableRange` (streams.kafka_io) delivered in place of its records
(the pipeline logs it and dead-letters it), and the fetch position moves past exactly that
batch. The range travels as a RecordChunk, so it is acked, and committed, only after the
agent's body returned for it.

Why each piece exists, and the measurements behind the settings: docs/performance.md.
"""

from __future__ import annotations

import asyncio
import gc
import sys
import time
import zlib
from collections.abc import AsyncIterator, Callable, Iterable, Iterator, Sequence
from importlib.metadata import version
from typing import Any, cast

import aiokafka
import faust
from aiokafka import codec as aiokafka_codec
from aiokafka import errors as kafka_errors
from aiokafka.consumer import fetcher as aiokafka_fetcher
from aiokafka.consumer.fetcher import READ_COMMITTED, FetchResult
from faust import streams as faust_streams
from faust.exceptions import Skip
from faust.transport.consumer import CONSUMER_FETCHING
from faust.transport.drivers import aiokafka as faust_aiokafka
from faust.types import TP, EventT, Message
from faust.types.transports import TransportT
from faust.types.tuples import ConsumerMessage
from mode import CrashingSupervisor, Service, ServiceT
from mode.utils.futures import maybe_async, notify

from streams.kafka_auth import ssl_context
from streams.kafka_io import Record, UnreadableRange
from streams.settings import Settings

__all__ = [
    "AIOKAFKA_VERSION", "FAUST_VERSION", "FrameworkVersionError", "IngestApp", "IngestConsumer",
    "IngestConsumerThread", "IngestStream", "RecordChunk", "check_framework", "create_app",
    "run_worker",
]  # fmt: skip

#: The faust-streaming release the adapted methods below were read from; pinned in pyproject.toml.
FAUST_VERSION = "0.15.3"
#: The aiokafka release whose Fetcher internals `readable_records` and `fetched_records` adapt;
#: pinned in pyproject.toml.
AIOKAFKA_VERSION = "0.14.0"


class FrameworkVersionError(RuntimeError):
    """The installed faust-streaming or aiokafka is not the release this module adapts."""


def check_framework(installed: str | None = None, installed_aiokafka: str | None = None) -> None:
    """Refuse to run on any faust-streaming but FAUST_VERSION, or any aiokafka but
    AIOKAFKA_VERSION: the adapted private methods would silently diverge from the ones they
    replace."""
    for package, found, adapted, name in (
        ("faust-streaming", installed, FAUST_VERSION, "FAUST_VERSION"),
        ("aiokafka", installed_aiokafka, AIOKAFKA_VERSION, "AIOKAFKA_VERSION"),
    ):
        found = found or version(package)
        if found != adapted:
            raise FrameworkVersionError(
                f"{package} {found} is installed, but streams/faust_ext.py adapts the "
                f"internals of {adapted}: install {package}=={adapted}, or re-read each "
                f"adapted method against the new release and update {name}"
            )


#: Seconds a stopping app waits for the agents' batches in flight before it cancels them.
STOP_WAIT_S = 10.0
#: Events a stream takes from its buffer before it lets other tasks run (Faust: 1).
STREAM_YIELD_EVERY = 100
#: Faust's Cython stream iterator; None when the extension is not built (then Faust's own
#: pure-Python iterator runs, unchanged).
_CStreamIterator: Any = getattr(faust_streams, "_CStreamIterator", None)


#: Faust's decorator registering take()-like generators for cleanup at stream stop (0.15.3);
#: identity if a Faust release drops it.
_tracks_buffer_agen: Callable[[Any], Any] = getattr(
    faust_streams, "_tracks_buffer_agen", lambda fun: fun
)


class RecordChunk(ConsumerMessage):
    """Consecutive records of one partition from one fetch, travelling through Faust as ONE
    message: the conductor, the topic's channel, the stream and its acks see a single message
    whose offset is the chunk's last; `records` are aiokafka's ConsumerRecords, untouched.

    The offsets before the last are registered as a gap when the chunk is delivered
    (`IngestConsumer._deliver`), Faust's own mechanism for offsets no stream will ack
    (compacted or control records). `Consumer._new_offset` folds a gap into the acked offsets
    only up to the highest acked offset, so the chunk's offsets become committable exactly when
    the chunk is acked, i.e. after the agent's loop body returned (see the module docstring).

    A record may be an `UnreadableRange`; when it is the last, the chunk's offset is the
    range's last offset, so that acking the chunk covers the whole range.
    """

    __slots__ = ("first_offset", "records")

    def __init__(self, tp: TP, records: Sequence[Any], generation_id: int) -> None:
        last = records[-1]
        if type(last) is UnreadableRange:
            offset, timestamp, timestamp_type = last.last_offset, None, 0
        else:
            offset, timestamp, timestamp_type = (
                last.offset,
                last.timestamp / 1000.0,
                last.timestamp_type,
            )
        super().__init__(
            tp.topic, tp.partition, offset, timestamp, timestamp_type,
            None, None, b"", None, 0, 0, tp, generation_id=generation_id,
        )  # fmt: skip
        self.records = records
        self.first_offset: int = records[0].offset

    def keep_from(self, read_offset: int | None) -> bool:
        """Drop the records before the consumer's read offset (as Faust drops such a message);
        False if none is left."""
        if read_offset is None or self.first_offset >= read_offset:
            return True
        kept = [record for record in self.records if record.offset >= read_offset]
        if kept:
            self.records, self.first_offset = kept, kept[0].offset
        return bool(kept)

    def gap(self, read_offset: int | None) -> tuple[int, int] | None:
        """The offsets no stream will ack, inclusive: from the first record (or from just
        after the read offset) to the last but one."""
        start = (
            self.first_offset if read_offset is None else min(self.first_offset, read_offset + 1)
        )
        return (start, self.offset - 1) if start < self.offset else None


#: What decoding one batch raises when its bytes are bad: aiokafka's CorruptRecordException and
#: UnsupportedCodecError (both KafkaError), and the codecs' own errors (gzip: OSError, EOFError,
#: zlib.error; cramjam: DecompressionError, a plain Exception subclass; struct: ValueError).
UNREADABLE_BATCH_ERRORS: tuple[type[BaseException], ...] = (
    kafka_errors.KafkaError, OSError, EOFError, zlib.error, ValueError, IndexError,
    *([aiokafka_codec.cramjam.DecompressionError] if aiokafka_codec.cramjam else []),
)  # fmt: skip


def readable_records(partition_records: Any) -> Iterator[Any]:
    """aiokafka's `PartitionRecords._unpack_records` (consumer/fetcher.py, 0.14.0), changed so
    that a batch it cannot turn into records yields one UnreadableRange (its offsets, the
    error) instead of raising, and the next fetch offset moves past exactly that batch.

    The original raises out of the consumer on a bad CRC or a missing codec; after that the
    records it had already taken from the same fetch are dropped silently and the same batch
    is fetched and raises again. Here each batch is decoded whole before any of its records is
    yielded, so a batch is either all records or one range.
    """
    pr = partition_records
    tp = pr._tp
    records = pr._records
    while records.has_next():
        next_batch = records.next_batch()
        first = max(next_batch.base_offset, pr.next_fetch_offset)
        try:
            if pr._check_crcs and not next_batch.validate_crc():
                raise kafka_errors.CorruptRecordException(f"Invalid CRC - {tp}")
            if pr._isolation_level == READ_COMMITTED and next_batch.producer_id is not None:
                pr._consume_aborted_up_to(next_batch.base_offset)
                if next_batch.is_control_batch and pr._contains_abort_marker(next_batch):
                    pr._aborted_producers.discard(next_batch.producer_id)
                if next_batch.is_transactional and next_batch.producer_id in pr._aborted_producers:
                    pr.next_fetch_offset = next_batch.next_offset
                    continue
            if next_batch.is_control_batch:
                pr.next_fetch_offset = next_batch.next_offset
                continue
            batch = [
                pr._consumer_record(tp, record)
                for record in next_batch
                if record.offset >= pr.next_fetch_offset
            ]
        except UNREADABLE_BATCH_ERRORS as exc:
            unreadable = UnreadableRange(
                tp.topic, tp.partition, first, next_batch.next_offset - 1,
                str(exc), type(exc).__name__,
            )  # fmt: skip
            pr.next_fetch_offset = next_batch.next_offset
            yield unreadable
            continue
        for consumer_record in batch:
            pr.next_fetch_offset = consumer_record.offset + 1
            yield consumer_record
        pr.next_fetch_offset = next_batch.next_offset


def _readable(result: FetchResult) -> FetchResult:
    """Make a fetched partition's records iterate through `readable_records` (once, before
    anything iterated them: only `fetched_records` below does)."""
    partition_records = result._partition_records
    if partition_records is not None and not getattr(partition_records, "readable", False):
        partition_records.readable = True
        partition_records._records_iterator = readable_records(partition_records)
    return result


async def fetched_records(
    fetcher: aiokafka_fetcher.Fetcher,
    partitions: Any,
    timeout: float = 0,
    max_records: int | None = None,
) -> dict[Any, list[Any]]:
    """aiokafka's `Fetcher.fetched_records` (consumer/fetcher.py, 0.14.0) with one change: each
    fetched partition's records are read through `readable_records` (`_readable`)."""
    while True:
        if fetcher._subscriptions.reassignment_in_progress:
            await fetcher._subscriptions.wait_for_assignment()
        start_time = time.monotonic()
        drained: dict[Any, list[Any]] = {}
        for tp in list(fetcher._records.keys()):
            if partitions and tp not in partitions:
                if not fetcher._subscriptions.is_assigned(tp):
                    del fetcher._records[tp]
                continue
            res_or_error = fetcher._records[tp]
            if type(res_or_error) is FetchResult:
                records = _readable(res_or_error).getall(max_records)
                if not res_or_error.has_more():
                    del fetcher._records[tp]
                    fetcher._notify(fetcher._wait_consume_future)
                if not records:
                    continue
                drained[tp] = records
                if max_records is not None:
                    max_records -= len(drained[tp])
                    if max_records == 0:
                        break
            elif drained:
                return drained
            else:
                del fetcher._records[tp]
                fetcher._notify(fetcher._wait_consume_future)
                res_or_error.check_raise()
        if drained or not timeout:
            return drained
        waiter = fetcher._create_fetch_waiter()
        done, pending = await asyncio.wait([waiter], timeout=timeout)
        if not done or fetcher._closed:
            if pending:
                pending.pop().cancel()
            return {}
        if waiter.done():
            waiter.result()
        timeout = max(0, timeout - (time.monotonic() - start_time))


class IngestConsumerThread(faust_aiokafka.AIOKafkaConsumerThread):
    """The aiokafka consumer thread, with `fetch_max_wait_ms` from the app's settings, reading
    fetches through `fetched_records` (unreadable batches become UnreadableRanges).

    Faust passes `fetch_max_wait_ms=1500` literally; aiokafka keeps the value on the consumer
    and hands it to its Fetcher in `start()`, so setting it before start is enough.
    """

    async def _fetch_records(
        self,
        consumer: aiokafka.AIOKafkaConsumer,
        active_partitions: Any,
        timeout: float | None = None,
        max_records: int | None = None,
    ) -> Any:
        """Faust's (transport/drivers/aiokafka.py, 0.15.3) calling `fetched_records` above
        instead of `consumer._fetcher.fetched_records`."""
        if not self.consumer.flow_active:
            return {}
        fetcher = consumer._fetcher
        if consumer._closed or fetcher._closed:
            raise kafka_errors.ConsumerStoppedError()
        with fetcher._subscriptions.fetch_context():
            return await fetched_records(
                fetcher, active_partitions, timeout=timeout or 0, max_records=max_records
            )

    def _create_worker_consumer(self, transport: Any) -> aiokafka.AIOKafkaConsumer:
        consumer = super()._create_worker_consumer(transport)
        wait_ms = getattr(self.app, "fetch_max_wait_ms", None)
        if wait_ms is not None:
            consumer._fetch_max_wait_ms = int(wait_ms)
        return consumer


class IngestConsumer(faust_aiokafka.Consumer):
    """aiokafka-driver consumer whose drainer waits once per fetched batch, not per event."""

    def _new_consumer_thread(self) -> IngestConsumerThread:
        return IngestConsumerThread(self, loop=self.loop, beacon=self.beacon)

    async def _drain_messages(self, fetcher: ServiceT) -> None:
        # Mirrors faust.transport.consumer.Consumer._drain_messages (0.15.3) except that the
        # delivery of one fetched batch runs under a single wait_first(..., suspend_flow).
        consumer_should_stop = cast(Service, self)._stopped.is_set
        fetcher_should_stop = cast(Service, fetcher)._stopped.is_set
        set_flag = self.diag.set_flag
        unset_flag = self.diag.unset_flag
        try:
            while not (consumer_should_stop() or fetcher_should_stop()):
                set_flag(CONSUMER_FETCHING)
                ait = cast(AsyncIterator[tuple[TP, Message]], self.getmany(timeout=1.0))
                await self.sleep(0)
                if not self.should_stop:
                    # The first item carries the fetch (a thread hop); the rest of the
                    # generator is synchronous, so only delivery runs under wait_first.
                    try:
                        first = await ait.__anext__()
                    except StopAsyncIteration:
                        first = None
                    if first is not None:
                        await self.wait_first(
                            self._deliver_batch(first, ait), self.suspend_flow.wait()
                        )
                unset_flag(CONSUMER_FETCHING)
        except self.consumer_stopped_errors:
            if self.transport.app.should_stop:
                self.log.info("Broker stopped consumer, shutting down...")
                return
            raise
        except asyncio.CancelledError:
            if self.transport.app.should_stop:
                self.log.info("Consumer shutting down for user cancel.")
                return
            raise
        except Exception as exc:
            self.log.exception("Drain messages raised: %r", exc)
            raise
        finally:
            unset_flag(CONSUMER_FETCHING)

    async def _deliver_batch(
        self, first: tuple[TP, Message], rest: AsyncIterator[tuple[TP, Message]]
    ) -> None:
        await self._deliver(*first)
        since_yield = 1
        async for tp, message in rest:
            await self._deliver(tp, message)
            since_yield += 1
            if since_yield > 100:  # as the original: let the streams run
                since_yield = 0
                await asyncio.sleep(0)

    async def getmany(self, timeout: float) -> AsyncIterator[tuple[TP, Message]]:
        """Faust's getmany (transport/consumer.py, 0.15.3) with one change: the records of a
        partition of a chunked topic (`IngestApp.chunked_topics`) come out as RecordChunks of
        at most `IngestApp.chunk_max_records` records instead of one Message per record.
        Other topics get Faust's per-record Messages, as before."""
        records, active_partitions = await self._wait_next_records(timeout)
        generation_id = self.app.consumer_generation_id
        if records is None or self.should_stop:
            return
        app = cast(IngestApp, self.app)
        chunked, size = app.chunked_topics, app.chunk_max_records
        to_message = self._to_message
        if not self.flow_active:
            self.log.dev("getmany called while flow not active. Seek back to committed offsets.")
            try:
                await self.perform_seek()
            except Exception as ex:
                self.log.warning(f"exception performing seek when flow not active {ex}")
            return
        for tp, tp_records in records.items():
            if not self.flow_active or app.consumer_generation_id != generation_id:
                break
            if not (
                active_partitions is None
                or tp in active_partitions
                or tp in self._buffered_partitions
            ):
                continue
            app.monitor.track_tp_end_offset(tp, self.highwater(tp))
            if tp.topic in chunked:
                for start in range(0, len(tp_records), size):
                    yield tp, RecordChunk(tp, tp_records[start : start + size], generation_id)
            else:
                for record in tp_records:
                    if type(record) is UnreadableRange:  # no Message can carry it
                        yield tp, RecordChunk(tp, [record], generation_id)
                    else:
                        yield tp, to_message(tp, record)

    async def wait_empty(self) -> None:
        """Faust's (transport/consumer.py, 0.15.3) with one change: while the app stops, it
        waits at most `IngestApp.stop_wait_s`, then commits what was acked and returns. Faust
        waits until every event in flight is acked, so SIGTERM while a body retried a database
        that was down never finished (until SIGKILL). A rebalance still waits as in Faust.
        Left out: Faust's tracing spans and its info-level dump of the agents' tracebacks.
        (Cancelling Faust's loop from outside does not work: `_wait_for_ack` swallows the
        cancellation.)"""
        app = self.app
        deadline = time.monotonic() + cast(IngestApp, app).stop_wait_s if app.should_stop else None
        wait_count = 0
        while not self.should_stop and self._unacked_messages:
            if deadline is not None and time.monotonic() >= deadline:
                self.log.warning(
                    "Stopping with %d events in flight: they are not committed and will be "
                    "read again",
                    len(self._unacked_messages),
                )
                break
            wait_count += 1
            if not wait_count % 10:
                remaining = [(m.refcount, m) for m in self._unacked_messages]
                self.log.warning("wait_empty: Waiting for tasks %r", remaining)
            gc.collect()
            await self.commit()
            if not self._unacked_messages:
                break
            await self._wait_for_ack(timeout=1)
            self._clean_unacked_messages()
        await self.commit_and_end_transactions()

    async def _deliver(self, tp: TP, message: Message) -> None:
        # Faust's `_deliver` (consumer.py, 0.15.3), plus RecordChunks. Faust delivers a message
        # only if its offset is at or past the read offset (after a seek: the committed offset,
        # the next one to read; after a delivery: the last delivered).
        offset = message.offset
        r_offset = self._read_offset[tp]
        gap: tuple[int, int] | None = None  # inclusive bounds
        if type(message) is RecordChunk:
            if not message.keep_from(r_offset):
                self.log.dev("DROPPED CHUNK ROFF %r: up to offset %r", r_offset, offset)
                return
            gap = message.gap(r_offset)
        elif r_offset is None or offset >= r_offset:
            if r_offset and offset - r_offset > 1:
                gap = (r_offset + 1, offset)
        else:
            self.log.dev("DROPPED MESSAGE ROFF %r: k=%r v=%r", offset, message.key, message.value)
            return
        if gap is not None and self.app.topics.acks_enabled_for(message.topic):
            await self._add_gap(tp, *gap)
        commit_every = self._commit_every
        if commit_every is not None and self._n_acked >= commit_every:
            self._n_acked = 0
            await self.commit()
        await self.callback(message)
        self._read_offset[tp] = offset


if _CStreamIterator is not None:

    class IngestStreamIterator(_CStreamIterator):  # type: ignore[misc,valid-type]
        """Faust's Cython StreamIterator with a `next()` that yields to the event loop every
        STREAM_YIELD_EVERY events instead of before every event (`await sleep(0)`), and takes
        buffered events with `get_nowait()` as `_py_aiter` does. `after()` (the acks) is the
        Cython one, unchanged. A port of faust/_cython/streams.pyx `next`/`_prepare_event`.
        """

        def __init__(self, stream: Any) -> None:
            super().__init__(stream)
            self.since_yield = 0
            self.yield_every = int(getattr(stream.app, "stream_yield_every", STREAM_YIELD_EVERY))

        async def next(self) -> tuple[Any, Any]:
            skipped = self._skipped_value
            value: Any = None
            event: Any = None
            sensor_state: Any = None
            while value is None and event is None:
                self.since_yield += 1
                if self.since_yield >= self.yield_every:
                    self.since_yield = 0
                    await asyncio.sleep(0)
                if self.chan_is_channel:
                    if self.chan_errors:
                        raise self.chan_errors.popleft()
                    if self.chan_queue_empty():
                        channel_value = await self.chan_slow_get()  # waits: yields
                    else:
                        channel_value = self.chan_quick_get()
                else:
                    channel_value = await self.chan_slow_get()
                event, value, sensor_state = self.prepare_event(channel_value)
                if value is skipped:
                    return value, sensor_state
                try:
                    for processor in self.processors:
                        value = await maybe_async(processor(value))
                    value = await self.on_merge(value)
                except Skip:
                    value = skipped
            return value, sensor_state

        def prepare_event(self, channel_value: Any) -> tuple[Any, Any, Any]:
            stream = self.stream
            if not isinstance(channel_value, EventT):
                stream._set_current_event(None)
                return None, channel_value, None
            event = channel_value
            message = event.message
            app = self.app
            if (
                not app.flow_control.is_active()
                or message.generation_id != app.consumer_generation_id
            ):
                return None, self._skipped_value, None
            tp, offset = message.tp, message.offset
            if message.topic in self.acking_topics and not message.tracked:
                message.tracked = True
                self.add_unacked(message)
                self.on_message_in(tp, offset, message)
            sensor_state = self.on_stream_event_in(tp, offset, stream, event)
            stream._set_current_event(event)
            return event, event.value, sensor_state


def record_of(message: Message) -> Record:
    """A Faust Message as the record the pipeline reads (aiokafka's attributes and units)."""
    return Record(
        message.topic, message.partition, message.offset, message.key, message.value,
        tuple(message.headers or ()), round(message.timestamp * 1000),
    )  # fmt: skip


class IngestStream(faust.Stream):
    """faust.Stream iterating with IngestStreamIterator (when Faust's Cython extension is
    built; `_c_aiter` is Faust's, with only the iterator class changed), plus `take_records`."""

    @_tracks_buffer_agen
    async def take_records(self, max_records: int, within: float) -> AsyncIterator[list[Any]]:
        """Faust's `take(max_, within)` (faust/streams.py, 0.15.3), changed in three ways:
        it counts RECORDS (a RecordChunk adds its records, any other message is one record),
        it acks a batch's events only when the loop body returns normally to `async for`, and
        it leaves the stream's own acks off when it ends.

        Faust's take() acks in a `finally`, so an exception leaving the body, or the generator
        being closed (agent cancelled, app crashed, worker stopped), also acked a batch that was
        never stored, and the consumer then committed its offsets. Here that batch stays unacked:
        its offsets are never committed and Kafka delivers it again.

        Yields a list of records once at least `max_records` are buffered (it may exceed that by
        the last chunk) or `within` seconds passed.
        """
        records: list[Any] = []
        events: list[EventT] = []
        buffer_full = asyncio.Event()
        buffer_consumed = asyncio.Event()
        buffer_consuming: asyncio.Future[None] | None = None
        channel_it = aiter(self.channel)

        async def add_to_buffer(value: Any) -> Any:
            nonlocal buffer_consuming
            try:
                if buffer_consuming is not None:
                    try:
                        await buffer_consuming
                    finally:
                        buffer_consuming = None
                event = self.current_event
                if event is None:
                    raise RuntimeError("Take buffer found current_event is None")
                message = event.message
                if type(message) is RecordChunk:
                    records.extend(message.records)
                else:  # a Faust Message: its timestamp is in seconds, a record's in ms
                    records.append(record_of(message))
                events.append(event)
                if len(records) >= max_records:
                    buffer_full.set()
                    buffer_consumed.clear()
                    await self.wait(buffer_consumed)  # type: ignore[arg-type]
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self.log.exception("Error adding to take buffer: %r", exc)
                await self.crash(exc)
            return value

        self.enable_acks = False
        self.add_processor(add_to_buffer)
        self._enable_passive(cast(Any, channel_it))
        try:
            while not self.should_stop:
                await self.wait_for_stopped(buffer_full, timeout=within)  # type: ignore[arg-type]
                if records:
                    buffer_consuming = self.loop.create_future()
                    returned = False
                    try:
                        yield list(records)
                        returned = True
                    finally:
                        records.clear()
                        if returned:  # the body finished this batch: now it may be committed
                            for event in events:
                                await self.ack(event)
                        events.clear()
                        notify(buffer_consuming)
                        buffer_full.clear()
                        buffer_consumed.set()
        finally:
            # The stream's own acks stay off: Faust's take() turns them back on here, and the
            # stream's drainer then acks every event it still takes from the channel, events
            # that no body saw (after an agent crashed, until the worker stopped).
            self._processors.remove(add_to_buffer)

    async def _c_aiter(self) -> AsyncIterator[Any]:  # type: ignore[override]
        skipped_value = self._skipped_value
        self._finalized = True
        started_by_aiter = await self.maybe_start()
        it = IngestStreamIterator(self)
        try:
            while not self.should_stop:
                do_ack = self.enable_acks
                value, sensor_state = await it.next()
                try:
                    if value is not skipped_value:
                        self.events_total += 1
                        yield value
                finally:
                    event, self.current_event = self.current_event, None
                    it.after(event, do_ack or value is skipped_value, sensor_state)
        except StopAsyncIteration:
            return
        finally:
            self._channel_stop_iteration(self.channel)
            if started_by_aiter:
                await self.stop()
                self.service_reset()


class IngestTransport(faust_aiokafka.Transport):
    Consumer = IngestConsumer


class IngestApp(faust.App):
    """faust.App using `IngestTransport` for consuming (`kafka://` URLs)."""

    #: Read by IngestConsumerThread; None keeps Faust's 1500 ms.
    fetch_max_wait_ms: int | None = None
    #: Read by IngestStreamIterator.
    stream_yield_every: int = STREAM_YIELD_EVERY
    #: Topics whose records reach their streams as RecordChunks (IngestConsumer.getmany).
    chunked_topics: frozenset[str] = frozenset()
    #: Records per RecordChunk at most.
    chunk_max_records: int = 5000
    #: Read by `IngestConsumer.wait_empty`.
    stop_wait_s: float = STOP_WAIT_S

    def chunk_topics(self, *names: str) -> None:
        """Deliver these topics' records as RecordChunks (iterate with `take_records`)."""
        self.chunked_topics = self.chunked_topics | frozenset(names)

    def _new_transport(self) -> TransportT:
        return IngestTransport(self.conf.broker_consumer, self)

    def on_init_dependencies(self) -> Iterable[ServiceT]:
        """Faust's, without its Monitor sensor: the pipeline keeps its own figures
        (streams.metrics, `/metrics`), and the Monitor's per-event bookkeeping (weak-key
        lookups on every stream event, message in/out) cost ~4% of the worker's CPU in a
        py-spy profile of a 200k-event drain. Faust's consumer still calls `app.monitor`
        directly for end offsets and commits; that object exists, it is only not a sensor."""
        dependencies = super().on_init_dependencies()
        if self.monitor in self.sensors:
            self.sensors.remove(self.monitor)
        return dependencies

    def on_rebalance_return(self) -> None:
        """Faust's (app/base.py, 0.15.3) without its "Missing sensor state" warning: with no
        sensor installed the sensors' state is empty on every rebalance, which is expected."""
        if self._rebalancing_sensor_state:
            self.sensors.on_rebalance_return(self, self._rebalancing_sensor_state)

    def on_rebalance_end(self) -> None:
        """Faust's (app/base.py, 0.15.3) without its "Missing sensor state" warning (see
        `on_rebalance_return`)."""
        self.rebalancing = False
        if self._rebalancing_span:
            self._rebalancing_span.finish()
        self._rebalancing_span = None
        try:
            if self._rebalancing_sensor_state:
                self.sensors.on_rebalance_end(self, self._rebalancing_sensor_state)
        finally:
            self._rebalancing_sensor_state = None


def faust_datadir(settings: Settings) -> str:
    """Where a Faust app keeps its local state (tables; none yet): under the state directory,
    one folder per app id, never in the working directory (Faust's default). Faust creates
    the app's folder but not its parents, so the parent is made here."""
    parent = settings.dev.state_dir / "faust"
    parent.mkdir(parents=True, exist_ok=True)
    return str(parent / "{conf.name}-data")


def faust_credentials(settings: Settings) -> faust.SASLCredentials | None:
    """SASL/SCRAM over TLS for the worker's consumer, producer and admin client (Faust hands
    `broker_credentials` to each through `credentials_to_aiokafka_auth`), or None in PLAINTEXT."""
    kafka = settings.kafka
    if not kafka.secure:
        return None
    assert kafka.username and kafka.password  # KafkaSettings refuses SASL_SSL without them
    return faust.SASLCredentials(
        username=kafka.username,
        password=kafka.password.get_secret_value(),
        ssl_context=ssl_context(kafka),
        mechanism=kafka.sasl_mechanism,
    )


def create_app(settings: Settings, *, id: str | None = None) -> IngestApp:
    """A Faust app for `settings`; `id` (the consumer group) defaults to settings.stream.app_id.
    Raises FrameworkVersionError on any faust-streaming but FAUST_VERSION."""
    check_framework()
    conf = settings.stream
    brokers = ";".join(f"kafka://{host.strip()}" for host in settings.kafka.bootstrap.split(","))
    app = IngestApp(
        id or conf.app_id,
        broker=brokers,
        broker_client_id=settings.kafka.client_id,
        autodiscover=False,
        value_serializer="raw",
        key_serializer="raw",
        topic_partitions=settings.kafka.partitions,
        topic_replication_factor=settings.kafka.replication_factor,
        consumer_auto_offset_reset="earliest",
        broker_max_poll_records=conf.broker_max_poll_records,
        consumer_max_fetch_size=conf.consumer_max_fetch_size,
        stream_buffer_maxsize=(
            conf.chunk_buffer_maxsize if conf.read_chunks else conf.stream_buffer_maxsize
        ),
        broker_commit_interval=conf.commit_interval_s,
        broker_session_timeout=conf.session_timeout_s,
        broker_heartbeat_interval=min(3.0, conf.session_timeout_s / 3),
        cython_optimizations=conf.cython_optimizations,
        agent_supervisor=CrashingSupervisor,  # an agent that dies takes the worker down
        Stream=IngestStream,
        web_enabled=conf.web_enabled,
        web_port=conf.web_port,
        web_bind=conf.web_host,
        web_host=conf.web_host,
        datadir=faust_datadir(settings),
        broker_credentials=faust_credentials(settings),
    )
    app.fetch_max_wait_ms = conf.fetch_max_wait_ms
    app.stop_wait_s = conf.stop_wait_s
    app.stream_yield_every = conf.stream_yield_every
    app.chunk_max_records = conf.batch_size
    return app


def plain_logging(level: str) -> dict[str, Any]:
    """Faust's and mode's log records as plain key=value lines on stderr. mode's own set-up uses
    colorlog, which writes terminal escape codes even when stderr is a file."""
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {
            "plain": {
                "format": "timestamp=%(asctime)s level=%(levelname)s logger=%(name)s "
                "event=%(message)r",
            }
        },
        "filters": {"once": {"()": "streams.logs.OncePerInterval"}},
        "handlers": {
            "stderr": {
                "class": "logging.StreamHandler",
                "formatter": "plain",
                "filters": ["once"],
                "stream": "ext://sys.stderr",
            }
        },
        "root": {"level": level.upper(), "handlers": ["stderr"]},
    }


def run_worker(app: IngestApp, *, loglevel: str = "warning") -> None:
    """Run `app` as a Faust worker in this process until it is stopped (SIGTERM, SIGINT)."""
    worker = faust.Worker(
        app,
        loglevel=loglevel,
        logging_config=plain_logging(loglevel),
        quiet=True,
        redirect_stdouts=False,
        stdout=sys.stdout,
        stderr=sys.stderr,
    )
    if not sys.stdout.isatty():
        worker.spinner = None  # its cursor codes would land in a log file
    worker.execute_from_commandline()
