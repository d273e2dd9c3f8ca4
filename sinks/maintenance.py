"""The storage's housekeeping, run by the worker every few seconds (and by `ioc db maintain`).

Flavour postgres (what TimescaleDB's background jobs would do):
  1. partitions: create those from `past_partitions` behind now to `premake_partitions` ahead;
  2. aggregates: `ioc_refresh_aggregates()` recomputes exactly the 1-minute and 1-hour buckets
     named in the invalidation log (filled by a trigger from the rows actually inserted, late rows
     included), and latest_values from the earliest of them;
  3. retention: drop raw partitions older than `raw_retention`, delete aggregate rows older than
     `aggregate_retention` and pipeline_stats older than `raw_retention` (its per-minute rollup
     pipeline_stats_1m, kept by a trigger, after `aggregate_retention`).
Flavour timescale: the policies do 2 and 3 on a real server. `refresh_ranges` (the sink's
`WriteResult.time_range`s) are refreshed at once with refresh_continuous_aggregate (late data older
than the policies' window included); with `run_jobs` (the WASM build, whose scheduler never runs)
every policy job is run by hand with `CALL run_job(id)`.

Runs as the owner role (it creates and drops partitions). Synchronous: from asyncio code call it
with `await asyncio.to_thread(maintain, ...)`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import psycopg
import structlog
from psycopg import sql

from sinks.config import Flavour, StorageSettings

log = structlog.get_logger(__name__)

PARTITIONED = ("events", "measurements")
AGGREGATES = (("measurements_1m", timedelta(minutes=1)), ("measurements_1h", timedelta(hours=1)))
JOB_ORDER = {  # refresh before compression before retention, as the scheduler would over time
    "policy_refresh_continuous_aggregate": 0,
    "policy_compression": 1,
    "policy_retention": 2,
}


@dataclass
class MaintenanceReport:
    partitions_created: dict[str, int] = field(default_factory=dict)
    partitions_dropped: dict[str, int] = field(default_factory=dict)
    refreshed: dict[str, tuple[int, int]] = field(default_factory=dict)  # name -> (buckets, rows)
    rows_deleted: dict[str, int] = field(default_factory=dict)
    jobs_run: list[str] = field(default_factory=list)


def maintain(
    conn: psycopg.Connection[Any],
    flavour: Flavour,
    storage: StorageSettings,
    *,
    now: datetime | None = None,
    refresh_ranges: Sequence[tuple[datetime, datetime]] = (),
    run_jobs: bool = False,
    retention: bool = True,
) -> MaintenanceReport:
    """One pass of housekeeping; each step commits on its own. Returns what it did."""
    autocommit = conn.autocommit
    conn.autocommit = True
    try:
        if now is None:
            row = conn.execute("SELECT now()").fetchone()
            assert row is not None
            now = row[0]
        assert now is not None and now.tzinfo is not None, "now must be timezone-aware"
        report = MaintenanceReport()
        if flavour == "postgres":
            _maintain_postgres(conn, storage, now, report, retention=retention)
        else:
            _maintain_timescale(conn, storage, now, report, refresh_ranges, run_jobs=run_jobs)
        log.info(
            "db.maintained",
            flavour=flavour,
            created=report.partitions_created,
            dropped=report.partitions_dropped,
            refreshed=report.refreshed,
            deleted=report.rows_deleted,
            jobs=len(report.jobs_run),
        )
        return report
    finally:
        conn.autocommit = autocommit


def ensure_partitions(
    conn: psycopg.Connection[Any], start: datetime, end: datetime
) -> dict[str, int]:
    """Flavour postgres: create the partitions of events and measurements covering [start, end)."""
    created = {}
    for table in PARTITIONED:
        row = conn.execute(
            "SELECT ioc_create_partitions(%s::regclass, %s, %s)", (table, start, end)
        ).fetchone()
        created[table] = int(row[0]) if row else 0
    return created


def _maintain_postgres(
    conn: psycopg.Connection[Any],
    storage: StorageSettings,
    now: datetime,
    report: MaintenanceReport,
    *,
    retention: bool,
) -> None:
    width = storage.chunk_interval
    with conn.transaction():
        report.partitions_created = ensure_partitions(
            conn, now - storage.past_partitions * width, now + storage.premake_partitions * width
        )
    with conn.transaction():
        for name, buckets, rows in conn.execute("SELECT * FROM ioc_refresh_aggregates()"):
            report.refreshed[name] = (buckets, rows)
    if not retention:
        return
    with conn.transaction():
        for table in PARTITIONED:
            row = conn.execute(
                "SELECT ioc_drop_partitions(%s::regclass, %s)",
                (table, now - storage.raw_retention),
            ).fetchone()
            report.partitions_dropped[table] = int(row[0]) if row else 0
        for table, _width in AGGREGATES:
            cur = conn.execute(
                sql.SQL("DELETE FROM {} WHERE bucket < %s").format(sql.Identifier(table)),
                (now - storage.aggregate_retention,),
            )
            report.rows_deleted[table] = cur.rowcount
        cur = conn.execute(
            "DELETE FROM pipeline_stats WHERE time < %s", (now - storage.raw_retention,)
        )
        report.rows_deleted["pipeline_stats"] = cur.rowcount
        deleted = _expire_pipeline_rollup(conn, now - storage.aggregate_retention)
        if deleted is not None:
            report.rows_deleted["pipeline_stats_1m"] = deleted


def _maintain_timescale(
    conn: psycopg.Connection[Any],
    storage: StorageSettings,
    now: datetime,
    report: MaintenanceReport,
    refresh_ranges: Sequence[tuple[datetime, datetime]],
    *,
    run_jobs: bool,
) -> None:
    for low, high in merge_ranges(refresh_ranges):
        for name, width in AGGREGATES:
            # refresh_continuous_aggregate only refreshes buckets wholly inside the window.
            start = _floor(low, width)
            end = _floor(high, width) + width
            conn.execute("CALL refresh_continuous_aggregate(%s, %s, %s)", (name, start, end))
            previous = report.refreshed.get(name, (0, 0))
            report.refreshed[name] = (previous[0] + int((end - start) / width), previous[1])
    since = min((low for low, _ in refresh_ranges), default=now - storage.refresh_window)
    row = conn.execute("SELECT ioc_refresh_latest(%s)", (since,)).fetchone()
    report.refreshed["latest_values"] = (0, int(row[0]) if row else 0)
    if run_jobs:
        jobs = conn.execute(
            "SELECT job_id, proc_name, coalesce(hypertable_name, '') FROM timescaledb_information.jobs"
            " WHERE proc_name = ANY(%s)",
            (list(JOB_ORDER),),
        ).fetchall()
        for job_id, proc, table in sorted(jobs, key=lambda j: (JOB_ORDER[j[1]], j[0])):
            conn.execute("CALL run_job(%s)", (job_id,))
            report.jobs_run.append(f"{proc}({table})")
    conn.execute("DELETE FROM pipeline_stats WHERE time < %s", (now - storage.raw_retention,))
    _expire_pipeline_rollup(conn, now - storage.aggregate_retention)


def _expire_pipeline_rollup(conn: psycopg.Connection[Any], before: datetime) -> int | None:
    """Delete pipeline_stats_1m rows older than `before`; None when the table is not there: a
    database migrated only up to a version before 0008 (the migration tests maintain those)."""
    row = conn.execute("SELECT to_regclass('pipeline_stats_1m') IS NOT NULL").fetchone()
    if not row or not row[0]:
        log.info("db.maintain.no_pipeline_rollup", reason="migration 0008 not applied")
        return None
    return conn.execute("DELETE FROM pipeline_stats_1m WHERE bucket < %s", (before,)).rowcount


def _floor(value: datetime, width: timedelta) -> datetime:
    """time_bucket(width, value) for widths that divide a day (origin 2000-01-03 UTC)."""
    origin = datetime.fromisoformat("2000-01-03T00:00:00+00:00")
    return origin + ((value - origin) // width) * width


def merge_ranges(ranges: Sequence[tuple[datetime, datetime]]) -> list[tuple[datetime, datetime]]:
    """Ranges less than an hour apart merged (fewer refresh calls; TimescaleDB re-materializes
    only the invalidated buckets inside a window, so a wider window costs little)."""
    merged: list[tuple[datetime, datetime]] = []
    for low, high in sorted(ranges):
        if merged and low <= merged[-1][1] + timedelta(hours=1):
            merged[-1] = (merged[-1][0], max(merged[-1][1], high))
        else:
            merged.append((low, high))
    return merged
