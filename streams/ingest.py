"""The ingest step for one batch of one domain topic: decode, validate, place, split.

Pure: no Kafka, no database. `split_batch` takes the raw records of a batch and returns what to
store (event rows, each with its measurement rows, for the sink) and what to dead-letter (with
reasons), so the agent stays a few lines and this is unit-tested without a broker.

Rules applied here, in order, to every record:
1. decode and validate the CloudEvent (domains.envelope): failures keep their reason code;
2. an event of another domain than its topic's -> `wrong_topic`;
3. event time older than `now - late_horizon` -> `too_late` (newer late events are stored in
   their own time bucket and the aggregates are refreshed for that range by maintenance);
4. the zone: the event's `zone_id` if it names a known zone, else the zone that holds its
   coordinates (geo), else NULL and counted as `outside` (stored, not dropped). A `zone_id`
   the zone file does not know is treated as no zone (counted as `outside` when there are no
   coordinates either).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from domains import Decoder, Rejection
from geo import ZoneIndex
from sinks.rows import Batch, EventRow, MeasurementRow
from streams.dlq import DeadLetter, replay_count
from streams.kafka_io import Record

_new_tuple = tuple.__new__


@dataclass
class SplitBatch:
    events: list[EventRow] = field(default_factory=list)
    measurements: list[MeasurementRow] = field(default_factory=list)
    # ends[i]: end of event i's measurements in `measurements` (sinks.rows.Batch's layout)
    ends: list[int] = field(default_factory=list)
    dead: list[DeadLetter] = field(default_factory=list)
    event_times: list[datetime] = field(default_factory=list)
    zone_outcomes: Counter[str] = field(default_factory=Counter)

    def batch(self) -> Batch:
        return Batch(self.events, self.measurements, self.ends)

    @property
    def rejected_reasons(self) -> list[str]:
        return [letter.reason for letter in self.dead]


def split_batch(
    records: Sequence[Record],
    *,
    domain: str,
    decoder: Decoder,
    zones: ZoneIndex,
    now: datetime,
    late_horizon: timedelta,
) -> SplitBatch:
    out = SplitBatch()
    oldest_allowed = now - late_horizon
    accepted = []
    for record in records:
        decoded = decoder.decode(record.value, record.headers, now=now)
        if isinstance(decoded, Rejection):
            out.dead.append(
                dead_letter(record, decoded.reason, decoded.message, decoded.error_class, now)
            )
        elif decoded.domain != domain:
            message = f"a {decoded.domain} event ({decoded.type}) on the {domain} topic"
            out.dead.append(dead_letter(record, "wrong_topic", message, "WrongTopic", now))
        elif decoded.time < oldest_allowed:
            message = f"event time {decoded.time.isoformat()} is older than the late horizon ({late_horizon})"
            out.dead.append(dead_letter(record, "too_late", message, "TooLate", now))
        else:
            accepted.append(decoded)

    measurements, ends = out.measurements, out.ends
    known = frozenset(zone.id for zone in zones.zones)
    located = [d for d in accepted if d.zone_id not in known and d.lon is not None]
    found = zones.lookup([d.lon for d in located], [d.lat for d in located]) if located else []
    zone_of = {id(d): zone for d, zone in zip(located, found, strict=True)}

    for d in accepted:
        if d.zone_id in known:
            zone_id, outcome = d.zone_id, "given"
        else:
            zone_id = zone_of.get(id(d))
            outcome = "located" if zone_id else "outside"
        out.zone_outcomes[outcome] += 1
        payload, time = d.payload, d.time
        entity_id, location = payload.entity_id, payload.location
        lon, lat = (None, None) if location is None else location.coordinates[:2]
        out.events.append(
            EventRow(
                d.id, time, d.source, d.type, domain, entity_id, zone_id, lon, lat, d.subject,
                # The validated data as the producer sent it (the message value in binary
                # mode): no re-serialisation per event.
                d.data_json,
            )
        )  # fmt: skip
        # ~4 per event: tuple.__new__ skips the NamedTuple's Python-level __new__ (same object).
        measurements += [
            _new_tuple(MeasurementRow, (time, domain, metric, entity_id, zone_id, value, unit))
            for metric, value, unit in payload.measurements()
        ]
        ends.append(len(measurements))  # this event's measurements end here
        out.event_times.append(d.time)
    return out


def dead_letter(
    record: Record, reason: str, message: str, error_class: str, now: datetime
) -> DeadLetter:
    return DeadLetter(
        reason=reason, message=message, error_class=error_class,
        topic=record.topic, partition=record.partition, offset=record.offset,
        key=record.key, value=record.value, headers=record.headers,
        replay_count=replay_count(record.headers), rejected_at=now,
    )  # fmt: skip
