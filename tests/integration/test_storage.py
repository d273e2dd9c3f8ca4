"""The storage layer on the real local PostgreSQL 15 (flavour postgres).

Each test session works in its own throwaway database (created by the superuser socket, owned by
ioc_owner, dropped afterwards), so `migrate from empty` is real and nothing disturbs others.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from localdev.runtime import LocalPostgres
from sinks import migrate as migrate_module
from sinks.errors import Backpressure
from sinks.maintenance import ensure_partitions, maintain
from sinks.migrate import Migration, MigrationError, migrate
from sinks.rows import Batch, EventRow, MeasurementRow
from sinks.writer import EventSink
from streams.settings import Settings
from tests.support.database import one_event_each, scratch_database

pytestmark = pytest.mark.integration


@pytest.fixture(scope="session")
def superuser(settings: Settings, pg_conninfo: str) -> str:
    return LocalPostgres(settings).superuser_conninfo()


@pytest.fixture(scope="session")
def storage_db(settings: Settings, superuser: str) -> Iterator[str]:
    """A migrated database for this session's storage tests."""
    with scratch_database(superuser, settings.db, "ioc_test_storage") as name:
        with psycopg.connect(settings.db.conninfo("owner", dbname=name)) as conn:
            migrate(conn, settings.db, settings.storage)
        yield name


def owner(settings: Settings, dbname: str) -> psycopg.Connection[tuple[object, ...]]:
    return psycopg.connect(settings.db.conninfo("owner", dbname=dbname), autocommit=True)


def sink_for(settings: Settings, dbname: str, **storage: object) -> EventSink:
    return EventSink(
        settings.db.conninfo("ingest", dbname=dbname),
        settings.storage.model_copy(update=storage),
        "postgres",
    )


def readings(
    n: int,
    start: datetime,
    *,
    entity: str = "aq",
    step: timedelta = timedelta(seconds=1),
    per_event: int = 4,
) -> Batch:
    """`n` events, each with `per_event` measurements at its time (what the pipeline writes)."""
    batch = Batch()
    for i in range(n):
        t, domain = start + i * step, ("environment", "transport")[i % 2]
        entity_id, zone = f"{entity}-{i % 50:03d}", f"zone-{i % 5}"
        event = EventRow(
            f"{entity}-evt-{i}", t, f"urn:sensor:{entity}", f"vn.daklak.{domain}.reading.v1",
            domain, entity_id, zone, 108.05, 12.67, None, {"i": i, "station": "Buon Ma Thuot"},
        )  # fmt: skip
        batch.add_event(
            event,
            [
                MeasurementRow(t, domain, f"metric_{k}", entity_id, zone, float(i % 97), "u")
                for k in range(per_event)
            ],
        )
    return batch


def count(settings: Settings, dbname: str, table: str, entity: str) -> int:
    with owner(settings, dbname) as conn:
        row = conn.execute(
            sql.SQL("SELECT count(*) FROM {} WHERE entity_id LIKE %s").format(
                sql.Identifier(table)
            ),
            (f"{entity}-%",),
        ).fetchone()
    assert row is not None
    return int(row[0])


def minute_start(ts: datetime) -> datetime:
    return ts.replace(second=0, microsecond=0)


# -- migrations --------------------------------------------------------------------------------


def test_migrate_from_empty_then_again_is_a_no_op(settings: Settings, superuser: str) -> None:
    with (
        scratch_database(superuser, settings.db, "ioc_test_migrate") as name,
        owner(settings, name) as conn,
    ):
        ran = migrate(conn, settings.db, settings.storage)
        assert [m.label for m in ran] == [
            "0001_base (shared)",
            "0002_timeseries (postgres)",
            "0003_measurements_append_only (postgres)",
            "0004_event_identity_source (shared)",
            "0005_incidents (shared)",
            "0006_paging (shared)",
            "0007_api (shared)",
            "0008_grafana_reads (shared)",
            "0009_service_roles (shared)",
        ]
        tables = {
            r[0]
            for r in conn.execute(
                "SELECT relname FROM pg_class WHERE relnamespace = 'public'::regnamespace"
                " AND relkind IN ('r', 'p', 'v')"
            )
        }
        assert {
            "events", "measurements", "zones", "pipeline_stats", "measurements_1m",
            "measurements_1h", "measurements_latest", "schema_migrations", "pipeline_stats_1m",
        } <= tables  # fmt: skip
        # partitions ready around now, so the pipeline can write at once
        now = datetime.now(UTC)
        conn.execute(
            "INSERT INTO measurements VALUES (%s, 'environment', 'pm25', 'x', NULL, 1, NULL)",
            (now,),
        )
        recorded = conn.execute("SELECT version, checksum FROM schema_migrations").fetchall()

        assert migrate(conn, settings.db, settings.storage) == []
        assert (
            conn.execute("SELECT version, checksum FROM schema_migrations").fetchall() == recorded
        )


def test_edited_applied_migration_is_an_error(
    settings: Settings, storage_db: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = migrate_module.load_migrations

    def edited(flavour: str) -> list[Migration]:
        found = real(flavour)  # type: ignore[arg-type]
        first = found[0]
        return [
            Migration(first.version, first.name, first.folder, first.sql + "\n-- edit"),
            *found[1:],
        ]

    monkeypatch.setattr(migrate_module, "load_migrations", edited)
    with owner(settings, storage_db) as conn, pytest.raises(MigrationError, match="edited after"):
        migrate(conn, settings.db, settings.storage)


def test_database_of_the_other_flavour_is_an_error(settings: Settings, storage_db: str) -> None:
    with owner(settings, storage_db) as conn, pytest.raises(MigrationError, match="other flavour"):
        migrate(conn, settings.db, settings.storage, flavour="timescale")


def test_every_migration_file_is_named_and_numbered() -> None:
    root = Path(migrate_module.__file__).parent / "migrations"
    assert sorted(p.name for p in root.glob("*/*.sql"))  # packaged with the code
    for flavour in ("postgres", "timescale"):
        versions = [m.version for m in migrate_module.load_migrations(flavour)]  # type: ignore[arg-type]
        assert versions == sorted(set(versions))


def test_0003_keeps_the_rows_of_a_database_at_0002(
    settings: Settings, superuser: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Upgrade in place: measurements lose their key and get a BRIN index on time, on every
    partition (those made later too); rows, the invalidation trigger and the refresh still work."""
    real = migrate_module.load_migrations
    with (
        scratch_database(superuser, settings.db, "ioc_test_0003") as name,
        owner(settings, name) as conn,
    ):
        with monkeypatch.context() as patch:
            patch.setattr(migrate_module, "load_migrations", lambda f: real(f)[:2])
            assert [m.version for m in migrate(conn, settings.db, settings.storage)] == [1, 2]
        now = minute_start(datetime.now(UTC)) - timedelta(minutes=10)
        conn.execute(
            "INSERT INTO measurements SELECT %s + g * interval '1 second', 'environment', 'pm25',"
            " 'aq-' || g %% 7, 'zone-1', g, 'ug/m3' FROM generate_series(0, 299) g",
            (now,),
        )
        conn.execute(
            "INSERT INTO events (time, id, source, type, domain, entity_id) VALUES"
            " (%s, 'e1', 's', 't', 'environment', 'aq-1')",
            (now,),
        )
        before = conn.execute("SELECT * FROM measurements ORDER BY time").fetchall()

        with monkeypatch.context() as patch:
            patch.setattr(migrate_module, "load_migrations", lambda f: real(f)[:3])
            ran = migrate(conn, settings.db, settings.storage)
        assert [m.label for m in ran] == ["0003_measurements_append_only (postgres)"]
        assert conn.execute("SELECT * FROM measurements ORDER BY time").fetchall() == before
        assert conn.execute("SELECT count(*) FROM events").fetchone() == (1,)
        assert conn.execute(
            "SELECT count(*) FROM pg_constraint WHERE conrelid = 'measurements'::regclass"
            " AND contype = 'p'"
        ).fetchone() == (0,)
        ensure_partitions(conn, now + timedelta(days=30), now + timedelta(days=31))
        indexes = conn.execute(
            "SELECT c.relname, count(i.indexrelid), bool_and(a.amname = 'brin'),"
            "       bool_and(coalesce(ic.reloptions, '{}') @> '{autosummarize=on}')"
            " FROM pg_class c LEFT JOIN pg_index i ON i.indrelid = c.oid"
            " LEFT JOIN pg_class ic ON ic.oid = i.indexrelid LEFT JOIN pg_am a ON a.oid = ic.relam"
            " WHERE c.oid = 'measurements'::regclass"
            "    OR c.oid IN (SELECT inhrelid FROM pg_inherits WHERE inhparent = 'measurements'::regclass)"
            " GROUP BY c.relname"
        ).fetchall()
        assert len(indexes) > 2
        assert all(n == 1 and brin and auto for _name, n, brin, auto in indexes), indexes
        # the invalidation trigger still logs inserts, and the refresh reads them
        report = maintain(conn, "postgres", settings.storage, retention=False)
        assert report.refreshed["measurements_1m"] == (5, 5)  # 5 minutes, one series
        assert conn.execute("SELECT sum(count) FROM measurements_1m").fetchone() == (300,)
        conn.execute("SET enable_seqscan = off")  # a tiny table: show the index can serve
        plan = conn.execute(
            "EXPLAIN SELECT count(*) FROM measurements WHERE time >= %s AND time < %s",
            (now, now + timedelta(minutes=1)),
        ).fetchall()
        assert any("measurements_p" in line and "time_idx" in line for (line,) in plan), plan


def test_0004_keys_events_by_source_too_on_a_database_with_rows(
    settings: Settings, superuser: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Upgrade in place from 0003: the rows stay, and the key becomes (time, source, id) on
    every partition."""
    real = migrate_module.load_migrations
    with (
        scratch_database(superuser, settings.db, "ioc_test_0004") as name,
        owner(settings, name) as conn,
    ):
        with monkeypatch.context() as patch:
            patch.setattr(migrate_module, "load_migrations", lambda f: real(f)[:3])
            assert [m.version for m in migrate(conn, settings.db, settings.storage)] == [1, 2, 3]
        now = minute_start(datetime.now(UTC)) - timedelta(minutes=10)
        insert = (
            "INSERT INTO events (time, id, source, type, domain, entity_id) VALUES"
            " (%s, %s, %s, 't', 'environment', 'aq-1') ON CONFLICT DO NOTHING RETURNING id"
        )
        conn.execute(insert, (now, "1", "urn:station:a"))
        conn.execute(insert, (now - timedelta(days=1), "2", "urn:station:a"))
        before = conn.execute("SELECT * FROM events ORDER BY time").fetchall()
        # before: the same id and time from another source is taken for a duplicate
        assert conn.execute(insert, (now, "1", "urn:station:b")).fetchall() == []

        with monkeypatch.context() as patch:
            patch.setattr(migrate_module, "load_migrations", lambda f: real(f)[:4])
            ran = migrate(conn, settings.db, settings.storage)
        assert [m.label for m in ran] == ["0004_event_identity_source (shared)"]
        assert conn.execute("SELECT * FROM events ORDER BY time").fetchall() == before
        assert conn.execute(insert, (now, "1", "urn:station:b")).fetchall() == [("1",)]
        assert conn.execute(insert, (now, "1", "urn:station:a")).fetchall() == []  # still a dup
        keys = conn.execute(
            "SELECT DISTINCT pg_get_constraintdef(oid) FROM pg_constraint WHERE contype = 'p'"
            " AND (conrelid = 'events'::regclass OR conrelid IN"
            "      (SELECT inhrelid FROM pg_inherits WHERE inhparent = 'events'::regclass))"
        ).fetchall()
        assert keys == [('PRIMARY KEY ("time", source, id)',)]


# -- the sink ----------------------------------------------------------------------------------


async def test_same_batch_twice_stores_once_and_counts_duplicates(
    settings: Settings, storage_db: str
) -> None:
    start = minute_start(datetime.now(UTC) - timedelta(minutes=30))
    batch = readings(500, start, entity="dup")
    async with sink_for(settings, storage_db) as sink:
        first = await sink.write(batch)
        second = await sink.write(batch)
    assert (first.events_new, first.measurements_new) == (500, 2000)
    assert first.new_events == {"environment": 250, "transport": 250}
    assert first.new_measurements == {"environment": 1000, "transport": 1000}
    assert (first.events_duplicate, first.measurements_duplicate) == (0, 0)
    assert (second.events_new, second.measurements_new) == (0, 0)
    assert (second.events_duplicate, second.measurements_duplicate) == (500, 2000)
    assert second.duplicate_measurements == {"environment": 1000, "transport": 1000}
    assert first.time_range == second.time_range == (start, start + timedelta(seconds=499))
    assert count(settings, storage_db, "events", "dup") == 500
    assert count(settings, storage_db, "measurements", "dup") == 2000


@pytest.mark.parametrize("method", ["copy", "unnest"])
async def test_event_seen_in_an_earlier_batch_is_counted_not_stored_again(
    settings: Settings, storage_db: str, method: str
) -> None:
    """Overlapping batches (a redelivery after a crash): the events already stored and their
    measurements are counted as duplicates, only the rest is written."""
    start = minute_start(datetime.now(UTC) - timedelta(minutes=35))
    entity = f"later-{method}"
    everything = readings(300, start, entity=entity)
    async with sink_for(settings, storage_db, write_method=method) as sink:
        first = await sink.write(everything.slice(0, 200))
        again = await sink.write(everything.slice(100, 300))  # 100 seen, 100 new
    assert (first.events_new, first.measurements_new) == (200, 800)
    assert (again.events_new, again.measurements_new) == (100, 400)
    assert (again.events_duplicate, again.measurements_duplicate) == (100, 400)
    assert again.duplicate_events == {"environment": 50, "transport": 50}
    assert count(settings, storage_db, "events", entity) == 300
    assert count(settings, storage_db, "measurements", entity) == 1200


@pytest.mark.parametrize("method", ["copy", "unnest"])
async def test_two_sources_may_share_an_id_and_a_time(
    settings: Settings, storage_db: str, method: str
) -> None:
    """CloudEvents identifies an event by source + id: two stations that both send id "1" at the
    same second are two events; the same station sending it twice is one."""
    start = minute_start(datetime.now(UTC) - timedelta(minutes=27))
    entity = f"shared-id-{method}"
    batch = readings(4, start, entity=entity)
    other = Batch()
    for event, measurements in batch.spans():
        other.add_event(event._replace(source="urn:station:other"), measurements)
    async with sink_for(settings, storage_db, write_method=method) as sink:
        first = await sink.write(batch)
        both = Batch.of([*batch.spans(), *other.spans()])  # the same ids again, and the other's
        second = await sink.write(both)
    assert (first.events_new, second.events_new, second.events_duplicate) == (4, 4, 4)
    assert count(settings, storage_db, "events", entity) == 8
    assert count(settings, storage_db, "measurements", entity) == 32


@pytest.mark.parametrize("method", ["copy", "unnest"])
async def test_duplicate_inside_one_batch_is_counted_not_stored_twice(
    settings: Settings, storage_db: str, method: str
) -> None:
    start = minute_start(datetime.now(UTC) - timedelta(minutes=25))
    entity = f"twice-{method}"
    batch = readings(10, start, entity=entity)
    repeated = batch.select([*range(10), 3, 7, 3])  # event 3 three times, 7 twice
    # a repeat with other measurements is still the same event (same time and id): first wins
    changed = batch.measurements_of(7)[0]._replace(value=-1.0)
    repeated.measurements[repeated.ends[10] : repeated.ends[11]] = [changed] * 4
    async with sink_for(settings, storage_db, write_method=method) as sink:
        result = await sink.write(repeated)
        again = await sink.write(repeated)
    assert (result.events_new, result.events_duplicate) == (10, 3)
    assert (result.measurements_new, result.measurements_duplicate) == (40, 12)
    assert (again.events_new, again.events_duplicate) == (0, 13)
    assert (again.measurements_new, again.measurements_duplicate) == (0, 52)
    assert count(settings, storage_db, "events", entity) == 10
    assert count(settings, storage_db, "measurements", entity) == 40
    with owner(settings, storage_db) as conn:
        negative = conn.execute(
            "SELECT count(*) FROM measurements WHERE entity_id LIKE %s AND value < 0",
            (f"{entity}-%",),
        ).fetchone()
    assert negative == (0,)


@pytest.mark.parametrize("method", ["copy", "unnest"])
@pytest.mark.parametrize("bad", ["measurement", "event"])
async def test_bad_row_rejects_its_whole_event_and_the_rest_commits(
    settings: Settings, storage_db: str, method: str, bad: str
) -> None:
    start = minute_start(datetime.now(UTC) - timedelta(hours=1))
    entity = f"poison-{method}-{bad}"
    batch = readings(2_500, start, entity=entity, step=timedelta(milliseconds=400))  # 10,000 rows
    # A sensor with a broken clock: year 2099, no partition holds it (the schema rejects it).
    broken = datetime(2099, 1, 1, tzinfo=UTC)
    poisoned = 1_789
    event = batch.events[poisoned]
    if bad == "event":
        event = batch.events[poisoned] = event._replace(time=broken)
    else:
        k = batch.ends[poisoned] - 2  # the third of its four measurements
        batch.measurements[k] = batch.measurements[k]._replace(time=broken)
    async with sink_for(settings, storage_db, write_method=method) as sink:
        result = await sink.write(batch)
    assert (result.events_new, result.measurements_new) == (2_499, 9_996)
    assert (result.events_duplicate, result.measurements_duplicate) == (0, 0)
    assert len(result.rejected) == 1
    rejected = result.rejected[0]
    assert rejected.row == event  # the EventRow: the worker dead-letters its record
    assert "no partition" in rejected.error and rejected.sqlstate == "23514"
    assert result.time_range is not None and result.time_range[1] < broken
    assert count(settings, storage_db, "events", entity) == 2_499
    assert count(settings, storage_db, "measurements", entity) == 9_996
    with owner(settings, storage_db) as conn:
        stored = conn.execute("SELECT 1 FROM events WHERE id = %s", (event.id,)).fetchall()
    assert stored == []  # neither the event nor any of its measurements


async def test_naive_datetime_is_rejected_not_guessed(settings: Settings, storage_db: str) -> None:
    start = minute_start(datetime.now(UTC) - timedelta(minutes=40))
    batch = readings(3, start, entity="naive")
    k = batch.ends[0] + 1  # a measurement of event 1
    batch.measurements[k] = batch.measurements[k]._replace(time=start.replace(tzinfo=None))
    async with sink_for(settings, storage_db) as sink:
        result = await sink.write(batch)
    assert (result.events_new, result.measurements_new) == (2, 8)
    assert [(r.row, r.error_class) for r in result.rejected] == [(batch.events[1], "NaiveDatetime")]


async def test_connection_killed_mid_write_stores_nothing_and_a_retry_stores_all_once(
    settings: Settings, storage_db: str, superuser: str
) -> None:
    start = minute_start(datetime.now(UTC) - timedelta(hours=2))
    batch = readings(15_000, start, entity="kill", step=timedelta(milliseconds=200))
    killed: list[int] = []

    async def killer() -> None:
        async with await psycopg.AsyncConnection.connect(
            superuser.replace("dbname=postgres", f"dbname={storage_db}"), autocommit=True
        ) as conn:
            for _ in range(2000):
                row = await (
                    await conn.execute(
                        "SELECT pid FROM pg_stat_activity WHERE datname = current_database()"
                        " AND usename = %s AND state = 'active' AND query ILIKE %s",
                        (settings.db.ingest_user, "%measurements%"),
                    )
                ).fetchone()
                if row:
                    await conn.execute("SELECT pg_terminate_backend(%s)", (row[0],))
                    killed.append(row[0])
                    return
                await asyncio.sleep(0.002)

    async with sink_for(settings, storage_db) as sink:
        task = asyncio.create_task(killer())
        await asyncio.sleep(0.05)
        with pytest.raises(Backpressure):  # the sink does not retry: the pipeline's loop does
            await sink.write(batch)
        await task
        assert killed, "the write was never caught in flight"
        assert count(settings, storage_db, "events", "kill") == 0  # rolled back entirely
        assert count(settings, storage_db, "measurements", "kill") == 0
        result = await sink.write(batch)  # the same batch again, as retry_until_done does
    # the killed transaction rolled back entirely: events and measurements alike
    assert (result.events_new, result.events_duplicate) == (15_000, 0)
    assert (result.measurements_new, result.measurements_duplicate) == (60_000, 0)
    assert count(settings, storage_db, "events", "kill") == 15_000
    assert count(settings, storage_db, "measurements", "kill") == 60_000


async def test_database_down_raises_backpressure(settings: Settings) -> None:
    db = settings.db.model_copy(update={"port": 1, "connect_timeout_s": 1.0})
    sink = EventSink(
        db.conninfo("ingest"),
        settings.storage,
        "postgres",
        connect_timeout_s=1.0,
    )
    with pytest.raises(Backpressure):
        await sink.open()
    await sink.close()


# -- aggregates, retention, roles --------------------------------------------------------------


def test_late_rows_refresh_exactly_their_buckets(settings: Settings, superuser: str) -> None:
    """Own database: the refresh report must count only this test's buckets."""
    with (
        scratch_database(superuser, settings.db, "ioc_test_late") as name,
        owner(settings, name) as conn,
    ):
        migrate(conn, settings.db, settings.storage)
        base = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(hours=3)

        def write(rows: list[MeasurementRow]) -> None:
            async def go() -> None:
                async with sink_for(settings, name) as sink:
                    await sink.write(one_event_each(rows))

            asyncio.run(go())

        on_time = [
            MeasurementRow(base + timedelta(hours=1, minutes=m, seconds=s), "environment", "pm25",
                           f"aq-{s}", "zone-1", 10.0, "ug/m3")
            for m in range(3) for s in (0, 30)
        ]  # fmt: skip
        write(on_time)
        first = maintain(conn, "postgres", settings.storage)
        assert first.refreshed["measurements_1m"][0] == 3
        assert first.refreshed["measurements_1h"][0] == 1

        # late: 40 and 41 minutes into the first hour, two hours after they happened
        late = [
            MeasurementRow(base + timedelta(minutes=40, seconds=s), "environment", "pm25",
                           f"aq-{s}", "zone-1", v, "ug/m3")
            for s, v in ((0, 1.0), (30, 5.0), (70, 3.0))
        ]  # fmt: skip
        write(late)
        second = maintain(conn, "postgres", settings.storage)
        assert second.refreshed["measurements_1m"] == (2, 2)  # minutes 40 and 41, nothing else
        assert second.refreshed["measurements_1h"] == (1, 1)  # the first hour only

        m1 = conn.execute(
            "SELECT bucket, count, min, max, avg, last FROM measurements_1m"
            " WHERE bucket < %s ORDER BY bucket",
            (base + timedelta(hours=1),),
        ).fetchall()
        assert m1 == [
            (base + timedelta(minutes=40), 2, 1.0, 5.0, 3.0, 5.0),
            (base + timedelta(minutes=41), 1, 3.0, 3.0, 3.0, 3.0),
        ]
        h1 = conn.execute(
            "SELECT bucket, count, min, max, last FROM measurements_1h ORDER BY bucket"
        ).fetchall()
        assert h1 == [(base, 3, 1.0, 5.0, 3.0), (base + timedelta(hours=1), 6, 10.0, 10.0, 10.0)]
        third = maintain(conn, "postgres", settings.storage)
        assert third.refreshed == {}  # nothing new, nothing recomputed
        # a duplicate re-delivery is not an invalidation
        write(late)
        assert maintain(conn, "postgres", settings.storage).refreshed == {}
        latest = conn.execute(
            "SELECT entity_id, value FROM measurements_latest WHERE entity_id = 'aq-30'"
        ).fetchone()
        assert latest == ("aq-30", 10.0)  # the late 5.0 is older than the on-time 10.0


def test_retention_drops_only_old_data(settings: Settings, superuser: str) -> None:
    with (
        scratch_database(superuser, settings.db, "ioc_test_retention") as name,
        owner(settings, name) as conn,
    ):
        migrate(conn, settings.db, settings.storage)
        now = datetime.now(UTC)
        keep_raw = settings.storage.raw_retention
        keep_agg = settings.storage.aggregate_retention
        old, young = now - keep_raw - timedelta(days=3), now - keep_raw + timedelta(days=2)
        ensure_partitions(conn, old - timedelta(days=1), young + timedelta(days=1))
        for ts in (old, young):
            conn.execute(
                "INSERT INTO measurements VALUES (%s, 'environment', 'pm25', 'aq-1', 'z', 1, NULL)",
                (ts,),
            )
            conn.execute(
                "INSERT INTO events (time, id, source, type, domain, entity_id) VALUES"
                " (%s, 'e1', 's', 't', 'environment', 'aq-1')",
                (ts,),
            )
        for ts in (now - keep_agg - timedelta(days=1), now - keep_agg + timedelta(days=1)):
            conn.execute(
                "INSERT INTO measurements_1h VALUES (%s, 'environment', 'pm25', 'z', 1, 1, 1, 1, 1)",
                (ts,),
            )
        report = maintain(conn, "postgres", settings.storage, now=now)
        assert report.partitions_dropped["measurements"] >= 1
        assert conn.execute("SELECT time FROM measurements").fetchall() == [(young,)]
        assert conn.execute("SELECT time FROM events").fetchall() == [(young,)]
        assert conn.execute(
            "SELECT count(*) FROM measurements_1h WHERE bucket < %s", (now - keep_agg,)
        ).fetchone() == (0,)
        assert conn.execute(
            "SELECT bucket FROM measurements_1h WHERE bucket < %s", (now - timedelta(days=365),)
        ).fetchall() == [(now - keep_agg + timedelta(days=1),)]  # inside retention: stays
        # the aggregates computed from the dropped raw rows stay (as with TimescaleDB)
        assert conn.execute(
            "SELECT count(*) FROM measurements_1m WHERE bucket < %s", (young - timedelta(days=1),)
        ).fetchone() == (1,)


def test_grafana_cannot_write_and_ingest_cannot_drop(settings: Settings, storage_db: str) -> None:
    grafana = psycopg.connect(settings.db.conninfo("grafana", dbname=storage_db), autocommit=True)
    ingest = psycopg.connect(settings.db.conninfo("ingest", dbname=storage_db), autocommit=True)
    with grafana, ingest:
        for table in ("measurements_1m", "measurements_1h", "measurements_latest", "zones"):
            grafana.execute(f"SELECT * FROM {table} LIMIT 1")
        forbidden_for_grafana = (
            "INSERT INTO measurements VALUES (now(), 'd', 'm', 'e', NULL, 1, NULL)",
            "DELETE FROM events",
            "UPDATE zones SET name = 'x'",
            "SELECT * FROM latest_values",  # panels read the view, not the table
            "SELECT * FROM schema_migrations",
            "SELECT * FROM measurement_invalidations",
            "CREATE TABLE grafana_was_here (x int)",
        )
        for statement in forbidden_for_grafana:
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                grafana.execute(statement)
        forbidden_for_ingest = (
            "DROP TABLE measurements",
            "TRUNCATE events",
            "DELETE FROM measurements",
            "ALTER TABLE events ADD COLUMN x int",
            "SELECT ioc_refresh_aggregates()",
            "DELETE FROM schema_migrations",
        )
        for statement in forbidden_for_ingest:
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                ingest.execute(statement)
