"""Sink throughput, PostgreSQL's CPU per event, and aggregate query speed on the local
PostgreSQL 15 (flavour postgres).

    .venv/bin/python bench/sink.py [--events 250000] [--per-event 4] [--batch 5000]
                                   [--query-rows 10000000] [--wal-compression on|off|lz4|...]

Runs in a throwaway database (created through the superuser socket of `ioc dev up`, dropped at the
end) and prints events/s, rows/s and ratios from one run; not a test. What is written is what the
pipeline writes: events (a ~150-byte JSON document each) with `--per-event` measurements on
average (3 to 5), `--batch` events per transaction, into the migrated `events` (key (time, source, id))
and `measurements` (no key, BRIN on time, the invalidation trigger on). For each way:

- our sink, COPY and unnest methods: events deduplicated (ON CONFLICT), their measurements
  appended (sinks/writer.py);
- the old way, for comparison: events and measurements both staged by COPY and inserted with
  ON CONFLICT DO NOTHING RETURNING domain, the measurements into `measurements_keyed` (the table
  as before migration 0003: primary key (time, entity_id, metric), partitioned, same trigger);
- executemany INSERT (one transaction per batch; bounded to `--bounded` events, rate
  extrapolated);
- one autocommitted INSERT per row (bounded to a tenth of that, extrapolated);
- bare binary COPY into the same tables, no conflict handling (the ceiling with these indexes),
  and into unindexed copies of them (the ceiling of COPY itself).

`server us/event` is the CPU time (user + system, from /proc) of the database's client backends
during the run, per event: PostgreSQL's share of the pipeline, without the background writers.
`WAL B/event` is the WAL written meanwhile, and how many full-page images it held (server-wide:
other work on the server adds to both).
`--wal-compression` sets wal_compression for the scratch database only (ALTER DATABASE, no
restart; the server's own setting otherwise) and a CHECKPOINT runs before each way, so full-page
images are written as after any checkpoint.

Then `--query-rows` rows over 24 h generated server-side, the aggregates refreshed, and a 24 h
query for one metric and zone from measurements_1m vs from raw measurements (median of 5).

Measured here (2 CPUs, defaults, 250k events = 1.25M rows): sink copy 37,000 events/s (186k
rows/s) at 23 us of server CPU per event; the old way 21,600 events/s at 44 us; bare COPY 70,000
events/s at 13 us; unnest 22,000 events/s at 25 us; executemany 11,000; one INSERT per row 500.
Server CPU varies about +-20% between runs here. wal_compression on/off/lz4/zstd: no difference
beyond that noise; this path writes ~0.2 full-page images per 1000 events (appends fill new pages),
and compression only applies to those.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import psycopg
from procstat import cpu_use
from psycopg import sql

PROJECT_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(PROJECT_ROOT))  # tests.support is not installed; bench runs from a checkout

from localdev.runtime import LocalPostgres  # noqa: E402
from sinks.migrate import migrate  # noqa: E402
from sinks.rows import Batch, EventRow, MeasurementRow  # noqa: E402
from sinks.writer import EVENT_TYPES, MEASUREMENT_TYPES, EventSink, _event_values  # noqa: E402
from streams.settings import Settings, load_settings  # noqa: E402
from tests.support.database import scratch_database  # noqa: E402

EVENT_COLUMNS = "time, id, source, type, domain, entity_id, zone_id, lon, lat, subject, data"
MEASUREMENT_COLUMNS = "time, domain, metric, entity_id, zone_id, value, unit"
SENSORS = (
    ("environment", "air_quality", (("pm25", "ug/m3"), ("pm10", "ug/m3"), ("no2", "ug/m3"),
                                    ("o3", "ug/m3"), ("aqi", "index"))),
    ("transport", "traffic_flow", (("speed_kmh", "km/h"), ("vehicles", "count"),
                                   ("occupancy", "%"), ("queue_m", "m"), ("heavy", "%"))),
    ("agriculture", "soil", (("soil_moisture", "%"), ("soil_temp", "C"), ("ec", "dS/m"),
                             ("ph", "pH"), ("rain_mm", "mm"))),
)  # fmt: skip
CONN = psycopg.Connection[tuple[Any, ...]]

# The old way (before migration 0003), kept here only to compare with.
OLD_STAGING = (
    "CREATE TEMP TABLE IF NOT EXISTS old_stage_events ("
    " time timestamptz, id text, source text, type text, domain text, entity_id text,"
    " zone_id text, lon float8, lat float8, subject text, data text) ON COMMIT DELETE ROWS",
    "CREATE TEMP TABLE IF NOT EXISTS old_stage_measurements ("
    " time timestamptz, domain text, metric text, entity_id text, zone_id text,"
    " value float8, unit text) ON COMMIT DELETE ROWS",
)
OLD_INSERT_EVENTS = f"""
WITH ins AS (
  INSERT INTO events ({EVENT_COLUMNS})
  SELECT time, id, source, type, domain, entity_id, zone_id, lon, lat, subject, data::jsonb
  FROM old_stage_events ON CONFLICT DO NOTHING RETURNING domain)
SELECT domain, count(*) FROM ins GROUP BY domain"""
OLD_INSERT_MEASUREMENTS = f"""
WITH ins AS (
  INSERT INTO measurements_keyed ({MEASUREMENT_COLUMNS})
  SELECT {MEASUREMENT_COLUMNS} FROM old_stage_measurements ON CONFLICT DO NOTHING
  RETURNING domain)
SELECT domain, count(*) FROM ins GROUP BY domain"""
KEYED_TABLE = (
    "CREATE TABLE measurements_keyed (LIKE measurements, PRIMARY KEY (time, entity_id, metric))"
    " PARTITION BY RANGE (time)",
    "INSERT INTO storage_layout SELECT 'measurements_keyed', partition_interval"
    " FROM storage_layout WHERE table_name = 'measurements'",
    "CREATE TRIGGER measurements_keyed_invalidate AFTER INSERT ON measurements_keyed"
    " REFERENCING NEW TABLE AS changed_rows FOR EACH STATEMENT"
    " EXECUTE FUNCTION ioc_log_measurement_invalidations()",
    "CREATE TABLE events_unindexed (LIKE events INCLUDING DEFAULTS)",
    "CREATE TABLE measurements_unindexed (LIKE measurements)",
)


def make_batch(n: int, start: datetime, per_event: int, entities: int = 2000) -> Batch:
    """`entities` sensors reporting in turn, time increasing (what the pipeline delivers); each
    event has per_event - 1 .. per_event + 1 measurements (per_event on average)."""
    step = timedelta(seconds=86_400 / max(1, n))
    batch = Batch()
    for i in range(n):
        e = i % entities
        domain, kind, metrics = SENSORS[e % len(SENSORS)]
        t, entity, zone = start + i * step, f"{kind}-{e:05d}", f"zone-{e % 20:02d}"
        count = max(1, per_event - 1 + i % 3)
        values = {metric: float((i * 7 + k) % 1000) / 10 for k, (metric, _) in enumerate(metrics)}
        data = {"entity_id": entity, "location": {"type": "Point",
                "coordinates": [108.03 + e / 1e5, 12.66 + e / 1e5]}, **values}  # fmt: skip
        event = EventRow(
            f"{entity}-{i:09d}", t, f"urn:ioc:{kind}:{entity}", f"vn.daklak.{domain}.{kind}.v1",
            domain, entity, zone, 108.03 + e / 1e5, 12.66 + e / 1e5, None,
            orjson.dumps(data).decode(),
        )  # fmt: skip
        batch.add_event(
            event,
            [
                MeasurementRow(t, domain, metric, entity, zone, values[metric], unit)
                for metric, unit in metrics[:count]
            ],
        )
    return batch


def batches(batch: Batch, size: int) -> list[Batch]:
    return [batch.slice(k, min(k + size, len(batch))) for k in range(0, len(batch), size)]


class ServerProbe:
    """CPU time of the scratch database's client backends (/proc), and WAL position."""

    def __init__(self, superuser: str, dbname: str) -> None:
        self.conn = psycopg.connect(superuser, autocommit=True)
        self.dbname = dbname

    def snapshot(self) -> tuple[dict[int, float], int, int]:
        pids = [
            r[0]
            for r in self.conn.execute(
                "SELECT pid FROM pg_stat_activity WHERE datname = %s"
                " AND backend_type = 'client backend'",
                (self.dbname,),
            )
        ]
        cpu = {pid: use.own_s for pid in pids if (use := cpu_use(pid)) is not None}
        row = self.conn.execute(
            "SELECT pg_current_wal_lsn() - '0/0'::pg_lsn, wal_fpi FROM pg_stat_wal"
        ).fetchone()
        assert row is not None
        return cpu, int(row[0]), int(row[1])

    def checkpoint(self) -> None:
        self.conn.execute("CHECKPOINT")

    @staticmethod
    def delta(
        before: tuple[dict[int, float], int, int], after: tuple[dict[int, float], int, int]
    ) -> tuple[float, int, int]:
        cpu = sum(s - before[0].get(pid, 0.0) for pid, s in after[0].items())
        return cpu, after[1] - before[1], after[2] - before[2]


@dataclass
class Figure:
    events: int
    rows: int
    seconds: float
    server_cpu_s: float
    wal_bytes: int
    full_page_images: int

    @property
    def events_per_s(self) -> float:
        return self.events / self.seconds

    @property
    def rows_per_s(self) -> float:
        return self.rows / self.seconds

    @property
    def server_us_per_event(self) -> float:
        return self.server_cpu_s / self.events * 1e6


class Run:
    """Times one way of writing `parts`; `mark()` starts the clock after the warm-up (`warm`:
    other events, an hour earlier, not counted)."""

    def __init__(self, probe: ServerProbe, parts: list[Batch], warm: Batch) -> None:
        self.probe, self.parts, self.warm = probe, parts, warm
        self.events = sum(map(len, parts))
        self.rows = sum(p.rows for p in parts)
        self.started = 0.0
        self.before: tuple[dict[int, float], int, int] = ({}, 0, 0)
        self.figure: Figure | None = None

    def mark(self) -> None:
        self.before = self.probe.snapshot()
        self.started = time.perf_counter()

    def stop(self) -> None:
        seconds = time.perf_counter() - self.started
        cpu, wal, fpi = ServerProbe.delta(self.before, self.probe.snapshot())
        self.figure = Figure(self.events, self.rows, seconds, cpu, wal, fpi)


async def bench_sink(settings: Settings, db: str, run: Run, method: str) -> None:
    storage = settings.storage.model_copy(update={"write_method": method})
    async with EventSink(
        settings.db.conninfo("ingest", dbname=db), storage, "postgres", pool_max_size=1
    ) as sink:
        await sink.write(run.warm)  # the pool and caches
        run.mark()
        new = duplicates = 0
        for part in run.parts:
            result = await sink.write(part)
            new += result.events_new + result.measurements_new
            duplicates += result.events_duplicate + result.measurements_duplicate
        run.stop()
    assert (new, duplicates) == (run.rows, 0), (new, duplicates)


def bench_old_way(conn: CONN, run: Run) -> None:
    """Before 0003: both tables staged by COPY, both INSERT .. ON CONFLICT .. RETURNING domain."""
    for statement in OLD_STAGING:
        conn.execute(statement)
    conn.commit()
    new = 0

    def write(part: Batch) -> int:
        stored = 0
        with conn.transaction(), conn.cursor(binary=True) as cur:
            with cur.copy("COPY old_stage_events FROM STDIN (FORMAT BINARY)") as copy:
                copy.set_types(EVENT_TYPES)
                for event in part.events:
                    copy.write_row(_event_values(event))
            with cur.copy("COPY old_stage_measurements FROM STDIN (FORMAT BINARY)") as copy:
                copy.set_types(MEASUREMENT_TYPES)
                for row in part.measurements:
                    copy.write_row(row)
            for statement in (OLD_INSERT_EVENTS, OLD_INSERT_MEASUREMENTS):
                cur.execute(statement)
                stored += sum(n for _domain, n in cur.fetchall())
        return stored

    write(run.warm)
    run.mark()
    for part in run.parts:
        new += write(part)
    run.stop()
    assert new == run.rows, (new, run.rows)


def bench_executemany(conn: CONN, run: Run) -> None:
    run.mark()
    with conn.cursor() as cur:
        for part in run.parts:
            with conn.transaction():
                cur.executemany(
                    f"INSERT INTO events ({EVENT_COLUMNS}) VALUES"
                    " (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s) ON CONFLICT DO NOTHING",
                    [_event_values(e) for e in part.events],
                )
                cur.executemany(
                    f"INSERT INTO measurements ({MEASUREMENT_COLUMNS})"
                    " VALUES (%s, %s, %s, %s, %s, %s, %s)",
                    part.measurements,
                )
    run.stop()


def bench_row_by_row(conn: CONN, run: Run) -> None:
    conn.autocommit = True
    run.mark()
    for part in run.parts:
        for event, measurements in part.spans():
            conn.execute(
                f"INSERT INTO events ({EVENT_COLUMNS}) VALUES"
                " (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s) ON CONFLICT DO NOTHING",
                _event_values(event),
            )
            for row in measurements:
                conn.execute(
                    f"INSERT INTO measurements ({MEASUREMENT_COLUMNS})"
                    " VALUES (%s, %s, %s, %s, %s, %s, %s)",
                    row,
                )
    run.stop()
    conn.autocommit = False


def bench_copy(conn: CONN, run: Run, events: str, measurements: str) -> None:
    """Binary COPY of the events and their measurements. Binary COPY fields carry no type: the
    JSON text goes as the bytes of binary jsonb (version 1, then the text), which the server
    parses as `data::jsonb` would."""
    run.mark()
    with conn.cursor(binary=True) as cur:
        for part in run.parts:
            with conn.transaction():
                with cur.copy(
                    sql.SQL("COPY {} ({}) FROM STDIN (FORMAT BINARY)").format(
                        sql.Identifier(events), sql.SQL(EVENT_COLUMNS)
                    )
                ) as copy:
                    copy.set_types([*EVENT_TYPES[:-1], "bytea"])
                    for event in part.events:
                        values = _event_values(event)
                        copy.write_row((*values[:-1], b"\x01" + values[-1].encode()))
                with cur.copy(
                    sql.SQL("COPY {} ({}) FROM STDIN (FORMAT BINARY)").format(
                        sql.Identifier(measurements), sql.SQL(MEASUREMENT_COLUMNS)
                    )
                ) as copy:
                    copy.set_types(MEASUREMENT_TYPES)
                    for row in part.measurements:
                        copy.write_row(row)
    run.stop()


def bench_query(owner: CONN, n: int) -> dict[str, float]:
    end = datetime.now(UTC).replace(second=0, microsecond=0) - timedelta(hours=1)
    start = end - timedelta(hours=24)
    entities = 2000
    steps = max(1, n // entities)
    started = time.perf_counter()
    owner.execute(
        "INSERT INTO measurements (time, domain, metric, entity_id, zone_id, value, unit)"
        " SELECT %(start)s + s * %(step)s + e * interval '1 millisecond',"
        "        (%(domains)s::text[])[e %% 3 + 1], (%(metrics)s::text[])[e %% 3 + 1],"
        "        'sensor-' || lpad(e::text, 5, '0'), 'zone-' || lpad((e %% 20)::text, 2, '0'),"
        "        (s * 7 + e) %% 1000 / 10.0, 'u'"
        " FROM generate_series(0, %(steps)s - 1) s CROSS JOIN generate_series(0, %(entities)s - 1) e",
        {
            "start": start, "step": (end - start) / steps, "steps": steps, "entities": entities,
            "domains": [s[0] for s in SENSORS], "metrics": [s[2][0][0] for s in SENSORS],
        },
    )  # fmt: skip
    loaded = time.perf_counter() - started
    started = time.perf_counter()
    owner.execute("SELECT * FROM ioc_refresh_aggregates()").fetchall()
    refreshed = time.perf_counter() - started
    owner.execute("VACUUM ANALYZE measurements")
    owner.execute("VACUUM ANALYZE measurements_1m")
    params = {"d": "environment", "m": "pm25", "z": "zone-00", "lo": start, "hi": end}
    queries = {
        "measurements_1m": "SELECT bucket, avg FROM measurements_1m WHERE domain = %(d)s AND metric = %(m)s"
        " AND zone_id = %(z)s AND bucket >= %(lo)s AND bucket < %(hi)s ORDER BY bucket",
        "raw": "SELECT time_bucket('1 minute', time) AS bucket, avg(value) FROM measurements"
        " WHERE domain = %(d)s AND metric = %(m)s AND zone_id = %(z)s AND time >= %(lo)s"
        " AND time < %(hi)s GROUP BY 1 ORDER BY 1",
    }
    timings: dict[str, float] = {"load_s": loaded, "refresh_s": refreshed}
    results = {}
    for name, query in queries.items():
        samples = []
        for _ in range(5):
            t = time.perf_counter()
            results[name] = owner.execute(query, params).fetchall()
            samples.append(time.perf_counter() - t)
        timings[name] = statistics.median(samples)
    assert len(results["raw"]) == len(results["measurements_1m"]) > 0
    return timings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=250_000)
    parser.add_argument("--per-event", type=int, default=4, help="measurements per event (mean)")
    parser.add_argument("--batch", type=int, default=5000, help="events per transaction")
    parser.add_argument("--bounded", type=int, default=40_000, help="events for executemany")
    parser.add_argument("--query-rows", type=int, default=10_000_000)
    parser.add_argument("--wal-compression", default=None, help="on, off, lz4, zstd, pglz")
    parser.add_argument("--only", default=None, help="comma-separated names of ways to run")
    args = parser.parse_args()
    settings = load_settings()
    superuser = LocalPostgres(settings).superuser_conninfo()
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=30)
    print(f"generating {args.events:,} events ...", flush=True)
    everything = make_batch(args.events, start, args.per_event)
    parts = batches(everything, args.batch)
    warm = make_batch(min(args.batch, 1000), start - timedelta(hours=1), args.per_event)
    bounded = batches(everything.slice(0, min(args.bounded, args.events)), args.batch)
    one_by_one = batches(everything.slice(0, min(args.bounded // 10, args.events)), args.batch)
    print(
        f"{everything.rows:,} rows ({len(everything.measurements) / len(everything):.2f}"
        f" measurements per event), {len(parts)} batches of {args.batch:,} events",
        flush=True,
    )
    figures: dict[str, Figure] = {}
    with scratch_database(superuser, settings.db, "ioc_bench_sink") as db:
        with psycopg.connect(superuser, autocommit=True) as su:
            if args.wal_compression:
                su.execute(
                    sql.SQL("ALTER DATABASE {} SET wal_compression = {}").format(
                        sql.Identifier(db), sql.Literal(args.wal_compression)
                    )
                )
        owner = psycopg.connect(settings.db.conninfo("owner", dbname=db), autocommit=True)
        migrate(owner, settings.db, settings.storage)
        for statement in KEYED_TABLE:
            owner.execute(statement)
        for table in ("events", "measurements", "measurements_keyed"):
            owner.execute(
                "SELECT ioc_create_partitions(%s::regclass, %s, %s)",
                (table, start - timedelta(days=1), start + timedelta(days=3)),
            )
        owner.execute(
            sql.SQL(
                "GRANT SELECT, INSERT ON measurements_keyed, events_unindexed,"
                " measurements_unindexed TO {}"
            ).format(sql.Identifier(settings.db.ingest_user))
        )
        ingest = psycopg.connect(settings.db.conninfo("ingest", dbname=db))
        shown = ingest.execute("SHOW wal_compression").fetchone()
        ingest.rollback()
        print(f"wal_compression = {shown[0] if shown else '?'}", flush=True)
        probe = ServerProbe(superuser, db)

        def run(name: str, which: list[Batch], fn: Callable[[Run], None]) -> None:
            if args.only and name not in args.only.split(","):
                return
            owner.execute(
                "TRUNCATE events, measurements, measurements_keyed, events_unindexed,"
                " measurements_unindexed, measurement_invalidations, latest_values"
            )
            probe.checkpoint()
            timing = Run(probe, which, warm)
            fn(timing)
            assert timing.figure is not None
            figures[name] = f = timing.figure
            print(
                f"{name:<26} {f.events_per_s:>10,.0f} events/s {f.rows_per_s:>11,.0f} rows/s"
                f"   server {f.server_us_per_event:6.1f} us/event"
                f"   WAL {f.wal_bytes / f.events:6.0f} B/event"
                f" ({f.full_page_images / f.events * 1000:.1f} full pages per 1000 events)",
                flush=True,
            )

        run("sink copy", parts, lambda r: asyncio.run(bench_sink(settings, db, r, "copy")))
        run("sink unnest", parts, lambda r: asyncio.run(bench_sink(settings, db, r, "unnest")))
        run("old way (keyed, copy)", parts, lambda r: bench_old_way(ingest, r))
        run("executemany", bounded, lambda r: bench_executemany(ingest, r))
        run("INSERT per row", one_by_one, lambda r: bench_row_by_row(ingest, r))
        run("bare COPY", parts, lambda r: bench_copy(owner, r, "events", "measurements"))
        run(
            "bare COPY, unindexed",
            parts,
            lambda r: bench_copy(owner, r, "events_unindexed", "measurements_unindexed"),
        )
        probe.conn.close()
        query = None
        if args.query_rows:
            owner.execute("TRUNCATE measurements, measurement_invalidations, latest_values")
            print(f"loading {args.query_rows:,} rows over 24 h server-side ...", flush=True)
            query = bench_query(owner, args.query_rows)
        ingest.close()
        owner.close()
    print()
    ways = [n for n in ("sink copy", "sink unnest") if n in figures]
    if ways:
        best = max(ways, key=lambda n: figures[n].events_per_s)
        sink = figures[best]
        print(
            f"{best}: {sink.events_per_s:,.0f} events/s, {sink.rows_per_s:,.0f} rows/s,"
            f" PostgreSQL {sink.server_us_per_event:.1f} us CPU per event (target < 30)"
        )
        for name, note in (
            ("old way (keyed, copy)", ""),
            ("bare COPY", "  (the ceiling with these indexes)"),
            ("bare COPY, unindexed", ""),
            ("executemany", ""),
            ("INSERT per row", "  (target >= 20x)"),
        ):
            if name in figures:
                other = figures[name]
                print(
                    f"  / {name:<22} {sink.events_per_s / other.events_per_s:5.2f}x events/s,"
                    f" server CPU per event {sink.server_us_per_event / other.server_us_per_event:5.2f}x{note}"
                )
        if len(ways) == 2:
            copy, unnest = figures["sink copy"], figures["sink unnest"]
            print(f"  copy / unnest          {copy.events_per_s / unnest.events_per_s:5.2f}x")
    if query:
        print(
            f"24 h, one metric + zone, {args.query_rows:,} raw rows (load {query['load_s']:.0f} s,"
            f" refresh {query['refresh_s']:.1f} s): measurements_1m {query['measurements_1m'] * 1000:.1f} ms,"
            f" raw {query['raw'] * 1000:.1f} ms -> {query['raw'] / query['measurements_1m']:.0f}x faster"
        )


if __name__ == "__main__":
    main()
