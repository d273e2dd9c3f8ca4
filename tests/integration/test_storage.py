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

from sinks import migrate as migrate_module
from sinks.errors import Backpressure
from sinks.maintenance import ensure_partitions, maintain
from sinks.migrate import Migration, MigrationError, migrate
from sinks.rows import EventRow, MeasurementRow
from sinks.testing import scratch_database
from sinks.timescale import TimescaleSink
from streams.dev.runtime import LocalPostgres
from streams.settings import Settings

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


def sink_for(settings: Settings, dbname: str, **storage: object) -> TimescaleSink:
    return TimescaleSink(
        settings.db.conninfo("ingest", dbname=dbname),
        settings.storage.model_copy(update={"retry_backoff_s": 0.05, **storage}),
        "postgres",
    )


def measurements(
    n: int, start: datetime, *, entity: str = "aq", step: timedelta = timedelta(seconds=1)
) -> list[MeasurementRow]:
    return [
        MeasurementRow(
            start + i * step,
            ("environment", "transport")[i % 2],
            ("pm25", "speed_kmh")[i % 2],
            f"{entity}-{i % 50:03d}",
            f"zone-{i % 5}",
            float(i % 97),
            ("ug/m3", "km/h")[i % 2],
        )
        for i in range(n)
    ]


def events(n: int, start: datetime) -> list[EventRow]:
    return [
        EventRow(
            f"evt-{start:%H%M%S}-{i}",
            start + timedelta(seconds=i),
            "urn:sensor:aq",
            "vn.daklak.environment.air_quality.v1",
            "environment",
            f"aq-{i % 50:03d}",
            "zone-1",
            108.05,
            12.67,
            None,
            {"pm25": i, "station": "Buon Ma Thuot"},
        )
        for i in range(n)
    ]


def minute_start(ts: datetime) -> datetime:
    return ts.replace(second=0, microsecond=0)


# -- migrations --------------------------------------------------------------------------------


def test_migrate_from_empty_then_again_is_a_no_op(settings: Settings, superuser: str) -> None:
    with (
        scratch_database(superuser, settings.db, "ioc_test_migrate") as name,
        owner(settings, name) as conn,
    ):
        ran = migrate(conn, settings.db, settings.storage)
        assert [m.label for m in ran] == ["0001_base (shared)", "0002_timeseries (postgres)"]
        tables = {
            r[0]
            for r in conn.execute(
                "SELECT relname FROM pg_class WHERE relnamespace = 'public'::regnamespace"
                " AND relkind IN ('r', 'p', 'v')"
            )
        }
        assert {
            "events", "measurements", "zones", "pipeline_stats", "measurements_1m",
            "measurements_1h", "measurements_latest", "schema_migrations",
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


# -- the sink ----------------------------------------------------------------------------------


async def test_same_batch_twice_stores_once_and_counts_duplicates(
    settings: Settings, storage_db: str
) -> None:
    start = minute_start(datetime.now(UTC) - timedelta(minutes=30))
    rows = [*events(300, start), *measurements(2000, start, entity="dup")]
    async with sink_for(settings, storage_db) as sink:
        first = await sink.write(rows)
        second = await sink.write(rows)
    assert (first.events_new, first.measurements_new) == (300, 2000)
    assert first.new_measurements == {"environment": 1000, "transport": 1000}
    assert (first.events_duplicate, first.measurements_duplicate) == (0, 0)
    assert (second.events_new, second.measurements_new) == (0, 0)
    assert (second.events_duplicate, second.measurements_duplicate) == (300, 2000)
    assert second.duplicate_measurements == {"environment": 1000, "transport": 1000}
    assert first.time_range == (start, start + timedelta(seconds=1999))
    with owner(settings, storage_db) as conn:
        count = conn.execute(
            "SELECT count(*) FROM measurements WHERE entity_id LIKE 'dup-%%'"
        ).fetchone()
        assert count == (2000,)


async def test_add_and_flush_like_a_batching_sink(settings: Settings, storage_db: str) -> None:
    start = minute_start(datetime.now(UTC) - timedelta(minutes=20))
    async with sink_for(settings, storage_db, batch_size=100) as sink:
        for row in measurements(100, start, entity="flush"):
            sink.add(row)
        assert sink.full and sink.pending == 100
        result = await sink.flush()
        assert sink.pending == 0
    assert result.measurements_new == 100


async def test_duplicates_inside_one_batch_count_once(settings: Settings, storage_db: str) -> None:
    start = minute_start(datetime.now(UTC) - timedelta(minutes=25))
    rows = measurements(10, start, entity="twice")
    async with sink_for(settings, storage_db, write_method="unnest") as sink:
        result = await sink.write(rows + rows)
    assert (result.measurements_new, result.measurements_duplicate) == (10, 10)


@pytest.mark.parametrize("method", ["copy", "unnest"])
async def test_poisoned_row_in_ten_thousand_is_rejected_alone(
    settings: Settings, storage_db: str, method: str
) -> None:
    start = minute_start(datetime.now(UTC) - timedelta(hours=1))
    rows = measurements(10_000, start, entity=f"poison-{method}", step=timedelta(milliseconds=100))
    # A sensor with a broken clock: year 2099, no partition holds it (the schema rejects it).
    bad = rows[6_789]._replace(time=datetime(2099, 1, 1, tzinfo=UTC))
    rows[6_789] = bad
    async with sink_for(settings, storage_db, write_method=method) as sink:
        result = await sink.write(rows)
    assert result.measurements_new == 9_999
    assert len(result.rejected) == 1
    rejected = result.rejected[0]
    assert rejected.row == bad
    assert "no partition" in rejected.error and rejected.sqlstate == "23514"
    with owner(settings, storage_db) as conn:
        count = conn.execute(
            "SELECT count(*) FROM measurements WHERE entity_id LIKE %s", (f"poison-{method}-%",)
        ).fetchone()
    assert count == (9_999,)


async def test_naive_datetime_is_rejected_not_guessed(settings: Settings, storage_db: str) -> None:
    start = minute_start(datetime.now(UTC) - timedelta(minutes=40))
    rows = measurements(3, start, entity="naive")
    rows[1] = rows[1]._replace(time=rows[1].time.replace(tzinfo=None))
    async with sink_for(settings, storage_db) as sink:
        result = await sink.write(rows)
    assert result.measurements_new == 2
    assert [r.error_class for r in result.rejected] == ["NaiveDatetime"]


async def test_connection_killed_mid_flush_is_retried_with_exact_counts(
    settings: Settings, storage_db: str, superuser: str
) -> None:
    start = minute_start(datetime.now(UTC) - timedelta(hours=2))
    rows = measurements(60_000, start, entity="kill", step=timedelta(milliseconds=50))
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
        result = await sink.write(rows)
        await task
    assert killed, "the flush was never caught in flight"
    assert result.attempts >= 2
    assert result.measurements_new + result.measurements_duplicate == 60_000
    assert result.measurements_new == 60_000  # the killed transaction rolled back entirely
    with owner(settings, storage_db) as conn:
        count = conn.execute(
            "SELECT count(*) FROM measurements WHERE entity_id LIKE 'kill-%%'"
        ).fetchone()
    assert count == (60_000,)


async def test_database_down_raises_backpressure(settings: Settings) -> None:
    db = settings.db.model_copy(update={"port": 1, "connect_timeout_s": 1.0})
    sink = TimescaleSink(
        db.conninfo("ingest"),
        settings.storage.model_copy(update={"retry_attempts": 2, "retry_backoff_s": 0.01}),
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
                    await sink.write(rows)

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
