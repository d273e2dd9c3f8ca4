"""Sink throughput and aggregate query speed on the local PostgreSQL 15 (flavour postgres).

    .venv/bin/python bench/sink.py [--rows 1000000] [--query-rows 10000000]

Runs in a throwaway database (created through the superuser socket of `ioc dev up`, dropped at the
end) and prints rows/s and ratios from one run; not a test. Into `measurements` (natural key
(time, entity_id, metric), the invalidation trigger on):

- our sink, COPY method and unnest method (idempotent, ON CONFLICT DO NOTHING), `--batch` rows
  per transaction;
- executemany INSERT (one transaction per batch; bounded to 200k rows, rate extrapolated);
- one autocommitted INSERT per row (bounded to 20k rows, rate extrapolated);
- bare binary COPY into the same table, no conflict handling (the ceiling for a keyed table), and
  into an unindexed copy of it (the ceiling of COPY itself).
Then `--query-rows` rows over 24 h generated server-side, the aggregates refreshed, and a 24 h query
for one metric and zone from measurements_1m vs from raw measurements (median of 5).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from datetime import UTC, datetime, timedelta

import psycopg

from sinks.migrate import migrate
from sinks.rows import MeasurementRow
from sinks.testing import scratch_database
from sinks.timescale import TimescaleSink
from streams.dev.runtime import LocalPostgres
from streams.settings import Settings, load_settings

COLUMNS = "time, domain, metric, entity_id, zone_id, value, unit"
TYPES = ["timestamptz", "text", "text", "text", "text", "float8", "text"]
METRICS = (("environment", "pm25", "ug/m3"), ("environment", "no2", "ug/m3"),
           ("transport", "speed_kmh", "km/h"), ("transport", "occupancy", "%"),
           ("agriculture", "soil_moisture", "%"))  # fmt: skip


def make_rows(n: int, start: datetime, entities: int = 2000) -> list[MeasurementRow]:
    """`entities` sensors reporting in turn, time increasing (what the pipeline delivers)."""
    step = timedelta(seconds=86_400 / max(1, n))
    rows = []
    for i in range(n):
        e = i % entities
        domain, metric, unit = METRICS[e % len(METRICS)]
        rows.append(
            MeasurementRow(
                start + i * step,
                domain,
                metric,
                f"sensor-{e:05d}",
                f"zone-{e % 20:02d}",
                float(i % 1000) / 10,
                unit,
            )
        )
    return rows


def truncate(conn: psycopg.Connection) -> None:  # type: ignore[type-arg]
    conn.execute("TRUNCATE measurements, measurement_invalidations, latest_values")


async def bench_sink(
    settings: Settings, db: str, rows: list[MeasurementRow], method: str, batch: int
) -> float:
    storage = settings.storage.model_copy(update={"write_method": method, "batch_size": batch})
    async with TimescaleSink(
        settings.db.conninfo("ingest", dbname=db), storage, "postgres"
    ) as sink:
        await sink.write(
            rows[:batch]
        )  # warm the pool and caches; these rows count as duplicates later
        started = time.perf_counter()
        new = 0
        for k in range(0, len(rows), batch):
            result = await sink.write(rows[k : k + batch])
            new += result.measurements_new
        elapsed = time.perf_counter() - started
    assert new == len(rows) - batch, (new, len(rows))
    return len(rows) / elapsed


def bench_executemany(conn: psycopg.Connection, rows: list[MeasurementRow], batch: int) -> float:  # type: ignore[type-arg]
    started = time.perf_counter()
    with conn.cursor() as cur:
        for k in range(0, len(rows), batch):
            with conn.transaction():
                cur.executemany(
                    f"INSERT INTO measurements ({COLUMNS}) VALUES (%s, %s, %s, %s, %s, %s, %s)",
                    rows[k : k + batch],
                )
    return len(rows) / (time.perf_counter() - started)


def bench_row_by_row(conn: psycopg.Connection, rows: list[MeasurementRow]) -> float:  # type: ignore[type-arg]
    conn.autocommit = True
    started = time.perf_counter()
    for row in rows:
        conn.execute(
            f"INSERT INTO measurements ({COLUMNS}) VALUES (%s, %s, %s, %s, %s, %s, %s)", row
        )
    return len(rows) / (time.perf_counter() - started)


def bench_copy(
    conn: psycopg.Connection, table: str, rows: list[MeasurementRow], batch: int
) -> float:  # type: ignore[type-arg]
    started = time.perf_counter()
    with conn.cursor() as cur:
        for k in range(0, len(rows), batch):
            with (
                conn.transaction(),
                cur.copy(f"COPY {table} ({COLUMNS}) FROM STDIN (FORMAT BINARY)") as copy,
            ):
                copy.set_types(TYPES)
                for row in rows[k : k + batch]:
                    copy.write_row(row)
    return len(rows) / (time.perf_counter() - started)


def bench_query(owner: psycopg.Connection, n: int) -> dict[str, float]:  # type: ignore[type-arg]
    end = datetime.now(UTC).replace(second=0, microsecond=0) - timedelta(hours=1)
    start = end - timedelta(hours=24)
    entities = 2000
    steps = max(1, n // entities)
    started = time.perf_counter()
    owner.execute(
        "INSERT INTO measurements (time, domain, metric, entity_id, zone_id, value, unit)"
        " SELECT %(start)s + s * %(step)s + e * interval '1 millisecond',"
        "        (%(domains)s::text[])[e %% 5 + 1], (%(metrics)s::text[])[e %% 5 + 1],"
        "        'sensor-' || lpad(e::text, 5, '0'), 'zone-' || lpad((e %% 20)::text, 2, '0'),"
        "        (s * 7 + e) %% 1000 / 10.0, 'u'"
        " FROM generate_series(0, %(steps)s - 1) s CROSS JOIN generate_series(0, %(entities)s - 1) e",
        {
            "start": start, "step": (end - start) / steps, "steps": steps, "entities": entities,
            "domains": [m[0] for m in METRICS], "metrics": [m[1] for m in METRICS],
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
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--batch", type=int, default=5000)
    parser.add_argument("--query-rows", type=int, default=10_000_000)
    args = parser.parse_args()
    settings = load_settings()
    superuser = LocalPostgres(settings).superuser_conninfo()
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=30)
    print(f"generating {args.rows:,} rows ...", flush=True)
    rows = make_rows(args.rows, start)
    figures: dict[str, float] = {}
    with scratch_database(superuser, settings.db, "ioc_bench_sink") as db:
        owner = psycopg.connect(settings.db.conninfo("owner", dbname=db), autocommit=True)
        migrate(owner, settings.db, settings.storage)
        owner.execute("CREATE TABLE measurements_unindexed (LIKE measurements)")
        ingest = psycopg.connect(settings.db.conninfo("ingest", dbname=db))

        def run(name: str, fn) -> None:  # type: ignore[no-untyped-def]
            truncate(owner)
            figures[name] = fn()
            print(f"{name:<28} {figures[name]:>12,.0f} rows/s", flush=True)

        run("sink copy", lambda: asyncio.run(bench_sink(settings, db, rows, "copy", args.batch)))
        run(
            "sink unnest", lambda: asyncio.run(bench_sink(settings, db, rows, "unnest", args.batch))
        )
        run("executemany (200k)", lambda: bench_executemany(ingest, rows[:200_000], args.batch))
        run("INSERT per row (20k)", lambda: bench_row_by_row(ingest, rows[:20_000]))
        ingest.autocommit = False
        run("bare COPY, keyed", lambda: bench_copy(owner, "measurements", rows, args.batch))
        run(
            "bare COPY, unindexed",
            lambda: bench_copy(owner, "measurements_unindexed", rows, args.batch),
        )
        truncate(owner)
        print(f"loading {args.query_rows:,} rows over 24 h server-side ...", flush=True)
        query = bench_query(owner, args.query_rows)
        ingest.close()
        owner.close()
    sink = max(figures["sink copy"], figures["sink unnest"])
    best = "copy" if figures["sink copy"] >= figures["sink unnest"] else "unnest"
    print()
    print(f"sink ({best}) {sink:,.0f} rows/s (target >= 100,000)")
    print(f"  / bare COPY keyed     {sink / figures['bare COPY, keyed']:.2f}  (target >= 0.5)")
    print(f"  / bare COPY unindexed {sink / figures['bare COPY, unindexed']:.2f}")
    print(f"  / executemany         {sink / figures['executemany (200k)']:.1f}x")
    print(f"  / INSERT per row      {sink / figures['INSERT per row (20k)']:.1f}x  (target >= 20x)")
    print(f"  copy / unnest         {figures['sink copy'] / figures['sink unnest']:.2f}")
    print(
        f"24 h, one metric + zone, {args.query_rows:,} raw rows (load {query['load_s']:.0f} s,"
        f" refresh {query['refresh_s']:.1f} s): measurements_1m {query['measurements_1m'] * 1000:.1f} ms,"
        f" raw {query['raw'] * 1000:.1f} ms -> {query['raw'] / query['measurements_1m']:.0f}x faster"
    )


if __name__ == "__main__":
    main()
