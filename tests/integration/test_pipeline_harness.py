"""Pipeline.handle in-process: one batch at a time through the real pipeline and the real sink on a
scratch PostgreSQL database, with a fake DLQ producer and no Kafka (tests/support/harness.py).

Every record of a batch ends up stored, counted as a duplicate, or dead-lettered with its reason
and its own origin offset, and `handle` returns only when that is durable."""

from __future__ import annotations

import asyncio
from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest

from domains.environment import AirQualityObserved
from localdev.runtime import LocalPostgres
from streams.kafka_io import UnreadableRange
from streams.settings import Settings
from tests.support.harness import pipeline_harness

pytestmark = pytest.mark.integration

POINT = {"type": "Point", "coordinates": [108.04, 12.68]}  # Buon Ma Thuot


def aq(entity: str, pm25: object = 12.5, **more: object) -> dict[str, object]:
    return {"entity_id": entity, "location": POINT, "pm25": pm25, **more}


@pytest.fixture(scope="module")
def superuser(settings: Settings, pg_conninfo: str) -> str:
    return LocalPostgres(settings).superuser_conninfo()


def with_header(record_headers: tuple[tuple[str, bytes], ...], name: str, value: bytes) -> list:
    return [(k, value if k == name else v) for k, v in record_headers]


async def test_new_events_are_stored_and_redelivered_ones_counted_as_duplicates(
    settings: Settings, superuser: str
) -> None:
    async with pipeline_harness(settings, superuser) as h:
        t = datetime.now(UTC) - timedelta(minutes=5)
        batch = [h.event(aq(f"st-{i}", pm10=3.0), id=f"ev-{i}", time=t) for i in range(3)]
        repeat = h.event(aq("st-0", pm10=3.0), id="ev-0", time=t)  # the same event, same batch
        await h.handle("environment", [*batch, repeat])
        assert h.stored_ids() == {"ev-0", "ev-1", "ev-2"}
        assert h.measurement_count() == 6  # pm25 and pm10 of each, once
        assert h.counted("environment") == Counter(received=4, stored=3, duplicates=1)

        await h.handle("environment", batch)  # redelivered after a crash
        assert h.measurement_count() == 6
        assert h.counted("environment") == Counter(received=3, duplicates=3)
        assert h.dead.letters == []


async def test_every_rejection_reason_reaches_the_dlq_with_its_own_record(
    settings: Settings, superuser: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    original = AirQualityObserved.measurements

    def measurements(self: AirQualityObserved) -> list[tuple[str, float, str | None]]:
        if self.entity_id == "buggy":
            raise ZeroDivisionError("a bug in one model")
        return original(self)

    monkeypatch.setattr(AirQualityObserved, "measurements", measurements)
    async with pipeline_harness(settings, superuser) as h:
        now = datetime.now(UTC)
        good = h.event(aq("good"), id="good")
        plain = h.event(aq("hdr"), id="hdr")
        cases = {
            "empty": h.record(None, plain.headers),
            "too_large": h.event(aq("x" * 70_000), id="big"),
            "bad_json": h.record(b"{not json", plain.headers),
            "missing_field": h.event({"entity_id": "m", "location": POINT}, id="m"),
            "bad_type": h.event(aq("t", pm25="n/a"), id="t"),
            "out_of_range": h.event(aq("r", pm25=5000), id="r"),
            "unknown_field": h.event(aq("u", colour="red"), id="u"),
            "bad_specversion": h.record(
                plain.value, with_header(plain.headers, "ce_specversion", b"0.3")
            ),
            "unknown_type": h.event(aq("n"), id="n", type="vn.daklak.environment.nope.v1"),
            "bad_time": h.record(plain.value, with_header(plain.headers, "ce_time", b"yesterday")),
            "future_time": h.event(aq("f"), id="f", time=now + timedelta(days=1)),
            "bad_location": h.event(
                {
                    "entity_id": "l",
                    "location": {"type": "Point", "coordinates": [500, 500]},
                    "pm25": 1.0,
                },
                id="l",
            ),
            "too_late": h.event(aq("late"), id="late", time=now - timedelta(hours=2)),
            "unknown_zone": h.event({"entity_id": "z", "zone_id": "atlantis", "pm25": 1.0}, id="z"),
            "processing_error": h.event(aq("buggy"), id="buggy"),
        }
        unreadable = UnreadableRange(
            "city.environment.events", 0, 1000, 1041, "CRC mismatch (test)", "CorruptRecordError"
        )
        records = [good, *cases.values(), unreadable]
        await h.handle("environment", records)

        by_offset = {letter.offset: letter for letter in h.dead.letters}
        for reason, record in cases.items():
            assert by_offset[record.offset].reason == reason, reason
            assert by_offset[record.offset].value == record.value  # the record, as it came
        letter = by_offset[1000]
        assert (letter.reason, letter.last_offset) == ("unreadable_batch", 1041)
        assert "1000..1041" in letter.message
        assert "ZeroDivisionError" in by_offset[cases["processing_error"].offset].message
        late = by_offset[cases["too_late"].offset]  # decoded far enough: it names the event
        assert (late.event_source, late.event_id) == ("/harness", "late")
        assert len(h.dead.letters) == len(cases) + 1
        assert h.stored_ids() == {"good"}
        counted = h.counted("environment")
        assert counted == Counter(received=len(records), stored=1, rejected=len(cases) + 1)

        wrong = h.event(aq("w"), id="w")  # an environment event on the health topic
        await h.handle("health", [wrong])
        assert h.dead.letters[-1].reason == "wrong_topic"
        assert h.dead.letters[-1].offset == wrong.offset


async def test_a_row_the_database_refuses_dead_letters_exactly_its_record(
    settings: Settings, superuser: str
) -> None:
    # A thirty-year late horizon lets a 2001 event through to the database, which has no partition
    # for it: a row error, isolated from the rest of the batch.
    async with pipeline_harness(settings, superuser, late_horizon_s=1e9) as h:
        records = [h.event(aq(f"s-{i}"), id=f"ok-{i}") for i in range(40)]
        old = h.event(aq("clock"), id="broken-clock", time=datetime(2001, 1, 1, tzinfo=UTC))
        records.insert(17, old)
        await h.handle("environment", records)
        assert [(d.reason, d.offset) for d in h.dead.letters] == [
            ("rejected_by_database", old.offset)
        ]
        assert "no partition" in h.dead.letters[0].message
        assert (h.dead.letters[0].event_source, h.dead.letters[0].event_id) == (
            "/harness",
            "broken-clock",
        )
        assert h.stored_ids() == {f"ok-{i}" for i in range(40)}
        assert h.counted("environment") == Counter(received=41, stored=40, rejected=1)


async def test_an_outage_holds_the_batch_until_the_database_is_back(
    settings: Settings, superuser: str
) -> None:
    async with pipeline_harness(settings, superuser) as h:
        await h.handle("environment", [h.event(aq("first"), id="first")])  # started
        batch = [h.event(aq(f"o-{i}"), id=f"outage-{i}") for i in range(25)]
        with h.database_refusing_connections():
            task = asyncio.create_task(h.handle("environment", batch))
            await asyncio.sleep(3.0)
            assert not task.done(), "handle returned while the database was down"
        await asyncio.wait_for(task, timeout=60)
        assert h.stored_ids() == {"first", *(f"outage-{i}" for i in range(25))}
        assert h.dead.letters == []  # an outage is not the records' fault


async def test_a_dlq_that_is_briefly_away_is_retried_and_each_letter_sent_once(
    settings: Settings, superuser: str
) -> None:
    async with pipeline_harness(settings, superuser) as h:
        await h.handle("environment", [h.event(aq("first"), id="first")])
        h.dead.fail_next = 3
        bad = [h.event(aq(f"b-{i}", pm25="n/a"), id=f"b-{i}") for i in range(5)]
        await h.handle("environment", bad)
        assert h.dead.attempts == 4
        assert sorted(d.offset for d in h.dead.letters) == sorted(r.offset for r in bad)
