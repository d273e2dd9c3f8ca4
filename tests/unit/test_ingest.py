"""split_batch: what the worker hands the sink, without Kafka or a database."""

from __future__ import annotations

import functools
from datetime import UTC, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from domains import Decoder, binary_message
from geo import ZoneIndex
from streams.ingest import split_batch
from streams.kafka_io import Record

NOW = datetime(2026, 7, 15, 3, 0, tzinfo=UTC)


@functools.cache
def zones() -> ZoneIndex:
    return ZoneIndex.from_file()


AQ = "vn.daklak.environment.air_quality.v1"


def record(offset: int, data: dict[str, object]) -> Record:
    value, headers = binary_message(
        id=f"aq-{offset}", source="/test", type=AQ, time=NOW - timedelta(seconds=offset), data=data
    )
    return Record("city.environment.events", 0, offset, b"aq", value, tuple(headers), 0)


def test_each_event_arrives_with_its_own_measurements() -> None:
    point = {"type": "Point", "coordinates": [108.04, 12.68]}
    records = [
        record(0, {"entity_id": "aq-1", "location": point, "pm25": 12.5, "pm10": 20.0}),
        record(1, {"entity_id": "aq-2", "location": point}),  # no pm25: dead letter
        record(2, {"entity_id": "aq-3", "location": point, "pm25": 7.0}),
        record(3, {"entity_id": "aq-4", "location": point, "pm25": 1.0, "no2": 3.0, "co": 0.5}),
    ]
    split = split_batch(
        records, domain="environment", decoder=Decoder(), zones=zones(), now=NOW,
        late_horizon=timedelta(hours=1),
    )  # fmt: skip
    batch = split.batch()
    assert [d.offset for d in split.dead] == [1] and len(batch) == 3
    spans = [(e.id, [(m.metric, m.value) for m in ms]) for e, ms in batch.spans()]
    assert spans == [
        ("aq-0", [("pm25", 12.5), ("pm10", 20.0)]),
        ("aq-2", [("pm25", 7.0)]),
        ("aq-3", [("pm25", 1.0), ("no2", 3.0), ("co", 0.5)]),
    ]
    for event, measurements in batch.spans():
        assert {(m.time, m.entity_id, m.zone_id, m.domain) for m in measurements} <= {
            (event.time, event.entity_id, event.zone_id, event.domain)
        }


def _at(offset: int, event_time: datetime, arrived: datetime | None) -> Record:
    value, headers = binary_message(
        id=f"late-{offset}", source="/test", type=AQ, time=event_time,
        data={"entity_id": "aq-late", "location": {"type": "Point", "coordinates": [108.04, 12.68]},
              "pm25": 3.0},
    )  # fmt: skip
    stamp = -1 if arrived is None else round(arrived.timestamp() * 1000)
    return Record("city.environment.events", 0, offset, b"aq", value, tuple(headers), stamp)


def test_lateness_is_judged_when_the_record_reached_kafka_not_when_it_is_read() -> None:
    hour = timedelta(hours=1)
    read_at = NOW + 3 * hour  # read three hours later: a backlog, or a redelivery after a crash
    records = [
        _at(0, NOW - 5 * timedelta(minutes=1), NOW),  # punctual, read late: stored
        _at(1, NOW - 2 * hour, NOW),  # two hours late when produced: too_late
        _at(2, read_at - 2 * hour, None),  # no timestamp: judged by the time of reading
        _at(3, read_at - 10 * timedelta(minutes=1), read_at + hour),  # stamp ahead: by `now`
    ]
    split = split_batch(
        records, domain="environment", decoder=Decoder(), zones=zones(),
        now=read_at, late_horizon=hour,
    )  # fmt: skip
    assert [e.id for e in split.events] == ["late-0", "late-3"]
    assert [(d.offset, d.reason) for d in split.dead] == [(1, "too_late"), (2, "too_late")]


@settings(max_examples=200, deadline=None)
@given(values=st.lists(st.one_of(st.none(), st.binary(max_size=300)), min_size=1, max_size=20))
def test_every_record_is_either_an_event_row_or_a_dead_letter(values: list[bytes | None]) -> None:
    """Whatever the bytes: no exception, and each record is accounted for exactly once."""
    good, headers = binary_message(
        id="ok", source="/test", type=AQ, time=NOW,
        data={"entity_id": "a", "zone_id": zones().zones[0].id, "pm25": 1.0},
    )  # fmt: skip
    records = [
        Record("city.environment.events", 0, i, None, v, tuple(headers), -1)
        for i, v in enumerate([*values, good])
    ]
    split = split_batch(
        records, domain="environment", decoder=Decoder(), zones=zones(), now=NOW,
        late_horizon=timedelta(hours=1),
    )  # fmt: skip
    rows = sorted([e.record for e in split.events] + [d.offset for d in split.dead])
    assert rows == list(range(len(records)))
    assert split.events[-1].id == "ok"


def test_a_zone_id_the_city_does_not_know_is_dead_lettered_not_stored_without_a_zone() -> None:
    known = zones().zones[0].id
    records = [
        record(0, {"entity_id": "z-1", "zone_id": known, "pm25": 1.0}),
        record(1, {"entity_id": "z-2", "zone_id": "atlantis", "pm25": 1.0}),
        record(2, {"entity_id": "z-3", "pm25": 1.0,
                   "location": {"type": "Point", "coordinates": [108.04, 12.68]}}),
    ]  # fmt: skip
    split = split_batch(
        records, domain="environment", decoder=Decoder(), zones=zones(), now=NOW,
        late_horizon=timedelta(hours=1),
    )  # fmt: skip
    assert [(d.offset, d.reason) for d in split.dead] == [(1, "unknown_zone")]
    assert "atlantis" in split.dead[0].message
    assert [(e.record, e.zone_id is not None) for e in split.events] == [(0, True), (2, True)]
    assert split.events[0].zone_id == known
