"""split_batch: what the worker hands the sink, without Kafka or a database."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from domains import Decoder, binary_message
from geo import ZoneIndex
from streams.ingest import split_batch
from streams.kafka_io import Record

NOW = datetime(2026, 7, 15, 3, 0, tzinfo=UTC)
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
        records, domain="environment", decoder=Decoder(), zones=ZoneIndex.from_file(), now=NOW,
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
