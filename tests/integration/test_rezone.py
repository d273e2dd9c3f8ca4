"""`ioc db rezone` on the real local PostgreSQL: rows stored under the old synthetic zone ids get
the real units' official codes from their coordinates, their measurements, latest values,
aggregates and the zones table follow, and rows without coordinates are kept or cleared."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
import pytest

from geo import ZoneIndex
from localdev.runtime import LocalPostgres, state_dir
from sinks.config import Flavour
from sinks.maintenance import maintain
from sinks.migrate import migrate
from sinks.rezone import RezoneReport, ZoneRow, rezone
from sinks.rows import Batch, EventRow, MeasurementRow
from sinks.writer import EventSink
from streams.settings import Settings
from tests.support.database import migrated_timescale, scratch_database

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
NGA_SAU = (108.0381, 12.6667)  # the centre of Buôn Ma Thuột: ward 24133
TUY_HOA_BEACH = (109.3180, 13.0960)  # ward 22015
SAIGON = (106.70, 10.78)  # outside the province
# id, old zone, (lon, lat) or None, the producer's own zone_id (in data), expected zone
CASES = [
    ("bmt", "bmt-thang-loi", NGA_SAU, None, "24133"),
    ("coast", None, TUY_HOA_BEACH, None, "22015"),  # outside the old file, inside the new
    ("far", "dl-ea-kar", SAIGON, None, None),  # outside every zone now
    ("given", "24121", NGA_SAU, "24121", "24121"),  # the producer's zone, known: kept
    ("old-given", "bmt-tan-lap", NGA_SAU, "bmt-tan-lap", "24133"),  # unknown: coordinates
    ("nocoord-old", "bmt-ea-tam", None, "bmt-ea-tam", None),  # cleared
    ("nocoord-new", "24163", None, "24163", "24163"),  # kept
]


def zone_rows(index: ZoneIndex) -> list[ZoneRow]:
    return [
        ZoneRow(z.id, z.name, z.kind, z.parent, '{"type": "Polygon", "coordinates": []}',
                z.geometry.centroid.x, z.geometry.centroid.y)
        for z in index.zones
    ]  # fmt: skip


def stored_batch(start: datetime) -> Batch:
    batch = Batch()
    for n, (name, old, point, given, _expected) in enumerate(CASES):
        time = start + timedelta(minutes=n)
        lon, lat = point if point else (None, None)
        data = {"entity_id": f"e-{name}"} | ({"zone_id": given} if given else {})
        event = EventRow(
            f"id-{name}", time, "urn:test:rezone", "vn.daklak.environment.weather.v1",
            "environment", f"e-{name}", old, lon, lat, None, data,
        )  # fmt: skip
        batch.add_event(
            event,
            [
                MeasurementRow(time, "environment", metric, f"e-{name}", old, 1.0, "u")
                for metric in ("temperature", "precipitation")
            ],
        )
    return batch


OLD_ZONES_SQL = (
    "INSERT INTO zones (id, name, kind, parent, geometry, centroid_lon, centroid_lat)"
    " VALUES ('bmt-thang-loi', 'Thắng Lợi', 'ward', 'buon-ma-thuot', '{}', 108.04, 12.68),"
    " ('24133', 'stale name', 'ward', NULL, '{}', 0, 0)"
)
INCIDENT_SQL = (
    "INSERT INTO incidents (id, rule_id, key, zone_id, state, severity, category, subcategory,"
    " title, description_vi, description_en, opened_at, last_seen)"
    " VALUES (%s, 'river-level', %s, %s, %s, 'high', 'weather', 'flood', 'Lũ', 'Lũ', 'Flood',"
    " now(), now())"
)
ORPHAN_SQL = (
    "INSERT INTO measurements (time, domain, metric, entity_id, zone_id, value)"
    " VALUES (%s, 'environment', 'temperature', 'e-orphan', 'bmt-tan-loi', 2.0)"
)


def store_old_rows(
    conn: psycopg.Connection[tuple[object, ...]],
    conninfo: str,
    settings: Settings,
    flavour: Flavour,
    start: datetime,
) -> None:
    """Rows as the old zone file left them, with aggregates and latest values computed."""
    conn.execute(OLD_ZONES_SQL)
    for key, state in (("bmt-ea-tam", "open"), ("bmt-tan-loi", "resolved"), ("24133", "open")):
        conn.execute(INCIDENT_SQL, (uuid.uuid4(), key, key, state))

    async def write() -> None:
        storage = settings.storage.model_copy(update={"write_method": "auto"})
        sink = EventSink(
            conninfo, storage, flavour, pool_min_size=1, pool_max_size=1,
            prepare=flavour == "postgres",
        )  # fmt: skip
        async with sink:
            await sink.write(stored_batch(start))

    asyncio.run(write())  # the sink's pool is closed before other SQL (PGlite: one session)
    # a measurement whose event is gone (retention, a manual delete): cleared if unknown
    conn.execute(ORPHAN_SQL, (start + timedelta(minutes=30),))
    span = [(start, start + timedelta(hours=1))]
    maintain(conn, flavour, settings.storage, refresh_ranges=span, retention=False)
    old_ids = {r[0] for r in conn.execute("SELECT DISTINCT zone_id FROM measurements_1m")}
    assert "bmt-thang-loi" in old_ids


def check_rezoned(
    conn: psycopg.Connection[tuple[object, ...]], report: RezoneReport, index: ZoneIndex
) -> None:
    events = dict(conn.execute("SELECT id, zone_id FROM events").fetchall())
    assert events == {f"id-{name}": expected for name, *_, expected in CASES}
    measured = conn.execute(
        "SELECT entity_id, array_agg(DISTINCT zone_id) FROM measurements GROUP BY entity_id"
    ).fetchall()
    by_entity = {f"e-{name}": [expected] for name, *_, expected in CASES} | {"e-orphan": [None]}
    assert dict(measured) == by_entity
    latest = conn.execute("SELECT DISTINCT entity_id, zone_id FROM latest_values").fetchall()
    assert dict(latest) == {e: z[0] for e, z in by_entity.items()}
    aggregated = {r[0] for r in conn.execute("SELECT DISTINCT zone_id FROM measurements_1m")} | {
        r[0] for r in conn.execute("SELECT DISTINCT zone_id FROM measurements_1h")
    }
    assert aggregated == {"24133", "22015", "24121", "24163", None}
    zones = dict(conn.execute("SELECT id, name FROM zones").fetchall())
    assert set(zones) == index.ids and len(zones) == 102
    assert zones["24133"] == "Buôn Ma Thuột"

    assert report.events_seen == 7
    assert report.events_changed == 5  # all but "given" and "nocoord-new"
    assert report.events_located == 4  # bmt, coast, far, old-given
    assert report.events_outside == 1
    assert (report.events_without_coordinates, report.events_cleared) == (2, 1)
    assert report.measurements_changed == 10  # two per changed event
    assert report.measurements_cleared == 1  # the orphan
    assert report.zones_removed == ["bmt-thang-loi"]
    assert report.stale_aggregate_rows == 0
    assert report.open_incidents_in_old_zones == 1  # bmt-ea-tam's; the resolved one is history
    incidents = conn.execute("SELECT zone_id FROM incidents ORDER BY 1").fetchall()
    assert incidents == [("24133",), ("bmt-ea-tam",), ("bmt-tan-loi",)]  # not rewritten


def test_rezone_places_stored_rows_in_the_new_zones(settings: Settings, pg_conninfo: str) -> None:
    superuser = LocalPostgres(settings).superuser_conninfo()
    index = ZoneIndex.from_file()
    start = datetime.now(UTC).replace(second=0, microsecond=0) - timedelta(hours=2)
    with (
        scratch_database(superuser, settings.db, "ioc_test_rezone") as name,
        psycopg.connect(settings.db.conninfo("owner", dbname=name), autocommit=True) as conn,
    ):
        migrate(conn, settings.db, settings.storage)
        ingest = settings.db.conninfo("ingest", dbname=name)
        store_old_rows(conn, ingest, settings, "postgres", start)
        report = rezone(
            conn, "postgres", settings.storage, known=index.ids, lookup=index.lookup,
            zones=zone_rows(index), batch_size=2,  # keyset batches across the 7 events
        )  # fmt: skip
        check_rezoned(conn, report, index)

        # Again through the command: nothing left to change, and it says so.
        env = os.environ | {"IOC_DB__NAME": name}
        done = subprocess.run(
            [sys.executable, "-m", "ioc", "db", "rezone", "--batch-size", "100"],
            cwd=ROOT, env=env, capture_output=True, text=True, timeout=120, check=False,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        assert "events read: 7" in done.stdout
        assert "events changed: 0" in done.stdout
        assert "events without coordinates cleared (zone no longer in the file): 0" in done.stdout
        assert conn.execute("SELECT count(*) FROM zones").fetchone() == (102,)


def test_rezone_on_timescaledb_refreshes_the_continuous_aggregates(settings: Settings) -> None:
    """The same rows on a real TimescaleDB (WASM; one session: one connection at a time)."""
    index = ZoneIndex.from_file()
    start = datetime.now(UTC).replace(second=0, microsecond=0) - timedelta(hours=2)
    log_file = state_dir(settings) / "pglite-rezone-test.log"
    with (
        migrated_timescale(settings.db, settings.storage, log_file) as server,
        server.connect() as conn,
    ):
        store_old_rows(conn, server.conninfo(), settings, "timescale", start)
        report = rezone(
            conn, "timescale", settings.storage, known=index.ids, lookup=index.lookup,
            zones=zone_rows(index), batch_size=3,
        )  # fmt: skip
        check_rezoned(conn, report, index)
