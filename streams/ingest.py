"""The ingest step for one batch of one domain topic: decode, validate, place, split.

Pure: no Kafka, no database. `split_batch` takes the records of a batch and returns what to
store (event rows, each with its measurement rows, for the sink) and what to dead-letter (with
reasons), so the agent stays a few lines and this is unit-tested without a broker.

Every event row carries `record`, the index of the Kafka record it came from in the batch, so a
row the database refuses maps back to its record by that index alone.

Rules applied here, in order, to every record:
1. a range the consumer could not read (streams.kafka_io.UnreadableRange) -> `unreadable_batch`;
2. decode and validate the CloudEvent (domains.envelope): failures keep their reason code;
3. an event of another domain than its topic's -> `wrong_topic`;
4. event time older than the late horizon before the record reached Kafka -> `too_late` (newer
   late events are stored in their own time bucket and the aggregates are refreshed for that
   range by maintenance). Lateness is measured from the record's Kafka timestamp (or `now` when
   it has none or it lies ahead of `now`), not from when the pipeline reads it: a verdict must
   not change when a record is read again after a crash or after a backlog, or an event already
   stored would also be dead-lettered, and an outage of the pipeline would turn a backlog of
   punctual events into dead letters;
5. a `zone_id` the zone file does not know -> `unknown_zone` (the exported schemas list the
   zone ids, so the contract and its enforcement agree); otherwise the zone is the event's
   `zone_id`, else the zone that holds its coordinates (geo), else NULL (stored: a point outside
   every zone is still a valid event).
An exception while handling one record (a bug, not bad input: the decoder never raises) sends
that record to the DLQ as `processing_error` with the exception's class, and the batch goes on.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import structlog

from domains import Decoder, Event, Rejection
from geo import ZoneIndex
from sinks.rows import Batch, EventRow, MeasurementRow
from streams.dlq import DeadLetter, replay_count
from streams.kafka_io import KafkaRecord, UnreadableRange

log = structlog.get_logger(__name__)

_new_tuple = tuple.__new__


@dataclass
class SplitBatch:
    events: list[EventRow] = field(default_factory=list)
    measurements: list[MeasurementRow] = field(default_factory=list)
    # ends[i]: end of event i's measurements in `measurements` (sinks.rows.Batch's layout)
    ends: list[int] = field(default_factory=list)
    dead: list[DeadLetter] = field(default_factory=list)
    event_times: list[datetime] = field(default_factory=list)

    def batch(self) -> Batch:
        return Batch(self.events, self.measurements, self.ends)

    @property
    def rejected_reasons(self) -> list[str]:
        return [letter.reason for letter in self.dead]


def split_batch(
    records: Sequence[KafkaRecord],
    *,
    domain: str,
    decoder: Decoder,
    zones: ZoneIndex,
    now: datetime,
    late_horizon: timedelta,
) -> SplitBatch:
    out = SplitBatch()
    now_ms = now.timestamp() * 1000
    horizon_ms = late_horizon.total_seconds() * 1000
    accepted: list[tuple[int, Event]] = []
    for index, record in enumerate(records):
        try:
            letter = _check(record, domain, decoder, now, now_ms, horizon_ms, late_horizon)
        except Exception as exc:
            letter = _processing_error(record, exc, now)
        if type(letter) is Event:
            accepted.append((index, letter))
        else:
            out.dead.append(letter)  # type: ignore[arg-type]

    measurements, ends = out.measurements, out.ends
    known = zones.ids
    if any(d.zone_id is not None and d.zone_id not in known for _, d in accepted):
        accepted = _known_zones(accepted, records, known, out.dead, now)
    located = [d for _, d in accepted if d.zone_id is None and d.lon is not None]
    found = zones.lookup([d.lon for d in located], [d.lat for d in located]) if located else []
    zone_of = {id(d): zone for d, zone in zip(located, found, strict=True)}

    for index, d in accepted:
        zone_id = d.zone_id if d.zone_id is not None else zone_of.get(id(d))
        try:
            payload, time = d.payload, d.time
            entity_id, location = payload.entity_id, payload.location
            lon, lat = (None, None) if location is None else location.coordinates[:2]
            # ~4 per event: tuple.__new__ skips the NamedTuple's Python-level __new__.
            rows = [
                _new_tuple(MeasurementRow, (time, domain, metric, entity_id, zone_id, value, unit))
                for metric, value, unit in payload.measurements()
            ]
        except Exception as exc:
            out.dead.append(_processing_error(records[index], exc, now))
            continue
        out.events.append(
            EventRow(
                d.id, time, d.source, d.type, domain, entity_id, zone_id, lon, lat, d.subject,
                # The validated data as the producer sent it: no re-serialisation per event.
                d.data_json, index,
            )
        )  # fmt: skip
        measurements += rows
        ends.append(len(measurements))  # this event's measurements end here
        out.event_times.append(time)
    return out


def _check(
    record: KafkaRecord,
    domain: str,
    decoder: Decoder,
    now: datetime,
    now_ms: float,
    horizon_ms: float,
    late_horizon: timedelta,
) -> Event | DeadLetter:
    """The record's event, or its dead letter."""
    if type(record) is UnreadableRange:
        message = (
            f"offsets {record.offset}..{record.last_offset} of {record.topic}"
            f"[{record.partition}] could not be read: {record.error}"
        )
        log.error(
            "ingest.unreadable_batch", topic=record.topic, partition=record.partition,
            first_offset=record.offset, last_offset=record.last_offset, error=record.error,
        )  # fmt: skip
        letter = dead_letter(record, "unreadable_batch", message, record.error_class, now)
        return _with_last_offset(letter, record.last_offset)
    decoded = decoder.decode(record.value, record.headers, now=now)
    if isinstance(decoded, Rejection):
        return dead_letter(
            record, decoded.reason, decoded.message, decoded.error_class, now,
            event=(None, decoded.event_id),
        )  # fmt: skip
    if decoded.domain != domain:
        message = f"a {decoded.domain} event ({decoded.type}) on the {domain} topic"
        return dead_letter(
            record, "wrong_topic", message, "WrongTopic", now, event=(decoded.source, decoded.id)
        )
    arrived_ms = record.timestamp
    if not 0 < arrived_ms <= now_ms:
        arrived_ms = now_ms
    if decoded.time.timestamp() * 1000 < arrived_ms - horizon_ms:
        message = (
            f"event time {decoded.time.isoformat()} is older than the late horizon "
            f"({late_horizon}) when the record reached Kafka"
        )
        return dead_letter(
            record, "too_late", message, "TooLate", now, event=(decoded.source, decoded.id)
        )
    return decoded


def _known_zones(
    accepted: list[tuple[int, Event]],
    records: Sequence[KafkaRecord],
    known: frozenset[str],
    dead: list[DeadLetter],
    now: datetime,
) -> list[tuple[int, Event]]:
    """The events whose zone_id is absent or known; the others dead-lettered as unknown_zone."""
    keep = []
    for index, d in accepted:
        if d.zone_id is None or d.zone_id in known:
            keep.append((index, d))
        else:
            message = f"zone_id {d.zone_id!r} is not a zone of this city's zone file"
            letter = dead_letter(
                records[index], "unknown_zone", message, "UnknownZone", now,
                event=(d.source, d.id),
            )  # fmt: skip
            dead.append(letter)
    return keep


def _processing_error(record: KafkaRecord, exc: Exception, now: datetime) -> DeadLetter:
    log.exception(
        "ingest.processing_error", topic=record.topic, partition=record.partition,
        offset=record.offset,
    )  # fmt: skip
    message = f"the pipeline failed on this record: {type(exc).__name__}: {exc}"
    return dead_letter(record, "processing_error", message, type(exc).__name__, now)


def _with_last_offset(letter: DeadLetter, last_offset: int) -> DeadLetter:
    return DeadLetter(
        reason=letter.reason, message=letter.message, error_class=letter.error_class,
        topic=letter.topic, partition=letter.partition, offset=letter.offset, key=None,
        value=b"", replay_count=0, rejected_at=letter.rejected_at, last_offset=last_offset,
    )  # fmt: skip


def dead_letter(
    record: KafkaRecord,
    reason: str,
    message: str,
    error_class: str,
    now: datetime,
    *,
    event: tuple[str | None, str | None] = (None, None),
) -> DeadLetter:
    """The dead letter of `record`; `event` is the event's (source, id) when known."""
    return DeadLetter(
        reason=reason, message=message, error_class=error_class,
        topic=record.topic, partition=record.partition, offset=record.offset,
        key=record.key, value=record.value, headers=tuple(record.headers),
        replay_count=replay_count(record.headers), rejected_at=now,
        event_source=event[0], event_id=event[1],
    )  # fmt: skip
