"""Give stored rows their zone again after the zone file changed (`ioc db rezone`).

The caller (the CLI) loads the zone file and passes its ids, a vectorised lookup and the rows of
the `zones` table; this module knows the SQL only (sinks does not import geo).

Each stored event gets the zone the pipeline would give it today:
  - the producer's own `zone_id` (kept in `data`), when the zone file knows it;
  - else the zone of its coordinates (lon, lat): None when they fall outside every zone;
  - else (no coordinates, and no zone id the file knows) NULL. Such events keep their zone when
    the file still has it; otherwise they are cleared and counted (`cleared`): a zone id the
    file no longer has means nothing on the wall, and nothing else can place them.
Events are read in keyset batches of `batch_size` in (time, source, id) order; each batch's changed
events and their measurements (same time, domain and entity) are updated in one transaction, so an
interrupted run leaves every event consistent with its measurements and can simply be run again.
Then measurements left with an unknown zone (no stored event any more) and latest_values are
cleared or copied from their measurement, the `zones` table is replaced by the file's zones, and
the aggregates are refreshed over the changed time ranges (maintenance's own refresh).
Aggregate buckets older than the raw rows (raw retention) cannot be recomputed: their rows keep
their old zone ids and are counted in `stale_aggregate_rows`.
Incidents, their history and the rules' state are not touched: an incident keeps the zone it was
opened in (it is a record of what was seen); open ones in zones the file no longer has are counted
in `open_incidents_in_old_zones` for the duty officers to resolve.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, NamedTuple

import psycopg
import structlog
from psycopg import sql

from sinks.config import Flavour, StorageSettings
from sinks.maintenance import AGGREGATES, maintain, merge_ranges

log = structlog.get_logger(__name__)

Lookup = Callable[[Sequence[float], Sequence[float]], list[str | None]]


class ZoneRow(NamedTuple):
    id: str
    name: str
    kind: str
    parent: str | None
    geometry: str  # GeoJSON geometry object, as text
    centroid_lon: float
    centroid_lat: float


@dataclass
class RezoneReport:
    events_seen: int = 0
    events_changed: int = 0  # zone_id now differs from before
    events_located: int = 0  # placed from their coordinates
    events_outside: int = 0  # coordinates outside every zone: zone_id NULL
    events_without_coordinates: int = 0
    events_cleared: int = 0  # no coordinates and a zone id the file no longer has: NULL
    measurements_changed: int = 0  # with their event
    measurements_cleared: int = 0  # no stored event and an unknown zone id: NULL
    latest_values_changed: int = 0
    zones_upserted: int = 0
    zones_removed: list[str] = field(default_factory=list)
    refreshed: dict[str, tuple[int, int]] = field(default_factory=dict)
    stale_aggregate_rows: int = 0  # aggregate rows older than the raw rows, unknown zone kept
    open_incidents_in_old_zones: int = 0


SELECT_FIRST = (
    "SELECT time, source, id, domain, entity_id, zone_id, lon, lat, data->>'zone_id'"
    " FROM events ORDER BY time, source, id LIMIT %s"
)
SELECT_NEXT = (
    "SELECT time, source, id, domain, entity_id, zone_id, lon, lat, data->>'zone_id'"
    " FROM events WHERE (time, source, id) > (%s, %s, %s) ORDER BY time, source, id LIMIT %s"
)
UPDATE_EVENTS = """
UPDATE events e SET zone_id = u.zone_id
FROM unnest(%s::timestamptz[], %s::text[], %s::text[], %s::text[]) AS u(time, source, id, zone_id)
WHERE e.time = u.time AND e.source = u.source AND e.id = u.id
"""
UPDATE_MEASUREMENTS = """
UPDATE measurements m SET zone_id = u.zone_id
FROM unnest(%s::timestamptz[], %s::text[], %s::text[], %s::text[])
  AS u(time, domain, entity_id, zone_id)
WHERE m.time >= %s AND m.time <= %s
  AND m.time = u.time AND m.domain = u.domain AND m.entity_id = u.entity_id
  AND m.zone_id IS DISTINCT FROM u.zone_id
"""
CLEAR_MEASUREMENTS = """
WITH cleared AS (
  UPDATE measurements SET zone_id = NULL
  WHERE time >= %s AND time < %s AND zone_id IS NOT NULL AND NOT zone_id = ANY(%s)
  RETURNING time
)
SELECT count(*), min(time), max(time) FROM cleared
"""
SYNC_LATEST = """
UPDATE latest_values l SET zone_id = m.zone_id
FROM measurements m
WHERE l.time >= %(low)s AND l.time <= %(high)s AND m.time >= %(low)s AND m.time <= %(high)s
  AND m.time = l.time AND m.entity_id = l.entity_id AND m.metric = l.metric
  AND l.zone_id IS DISTINCT FROM m.zone_id
"""
CLEAR_LATEST = (
    "UPDATE latest_values SET zone_id = NULL WHERE zone_id IS NOT NULL AND NOT zone_id = ANY(%s)"
)
UPSERT_ZONE = (
    "INSERT INTO zones (id, name, kind, parent, geometry, centroid_lon, centroid_lat)"
    " VALUES (%s, %s, %s, %s, %s, %s, %s) ON CONFLICT (id) DO UPDATE SET"
    " name = excluded.name, kind = excluded.kind, parent = excluded.parent,"
    " geometry = excluded.geometry, centroid_lon = excluded.centroid_lon,"
    " centroid_lat = excluded.centroid_lat, updated_at = now()"
)


def rezone(
    conn: psycopg.Connection[Any],
    flavour: Flavour,
    storage: StorageSettings,
    *,
    known: frozenset[str],
    lookup: Lookup,
    zones: Sequence[ZoneRow],
    batch_size: int = 5000,
    progress: Callable[[int], None] | None = None,
) -> RezoneReport:
    """Recompute zone_id of events and measurements, refresh what depends on zones. Runs as the
    owner role; each batch commits on its own."""
    report = RezoneReport()
    autocommit = conn.autocommit
    conn.autocommit = True
    try:
        ranges = _rezone_events(conn, known, lookup, batch_size, report, progress)
        _clear_orphans(conn, known, report, ranges)
        ranges = merge_ranges(ranges)
        with conn.transaction():
            for low, high in ranges:  # only there did measurements change
                cur = conn.execute(SYNC_LATEST, {"low": low, "high": high})
                report.latest_values_changed += cur.rowcount
            report.latest_values_changed += conn.execute(CLEAR_LATEST, (list(known),)).rowcount
        _replace_zones(conn, zones, report)
        refreshed = maintain(conn, flavour, storage, refresh_ranges=ranges, retention=False)
        report.refreshed = refreshed.refreshed
        for table, _width in AGGREGATES:
            row = conn.execute(
                sql.SQL(
                    "SELECT count(*) FROM {} WHERE zone_id IS NOT NULL AND NOT zone_id = ANY(%s)"
                ).format(sql.Identifier(table)),
                (list(known),),
            ).fetchone()
            report.stale_aggregate_rows += int(row[0]) if row else 0
        if _exists(conn, "incidents"):
            row = conn.execute(
                "SELECT count(*) FROM incidents WHERE state <> 'resolved'"
                " AND zone_id IS NOT NULL AND NOT zone_id = ANY(%s)",
                (list(known),),
            ).fetchone()
            report.open_incidents_in_old_zones = int(row[0]) if row else 0
    finally:
        conn.autocommit = autocommit
    log.info("db.rezoned", **{k: v for k, v in vars(report).items() if k != "refreshed"})
    return report


def _rezone_events(
    conn: psycopg.Connection[Any],
    known: frozenset[str],
    lookup: Lookup,
    batch_size: int,
    report: RezoneReport,
    progress: Callable[[int], None] | None,
) -> list[tuple[datetime, datetime]]:
    """The events pass; returns the time ranges whose rows changed (for the aggregates)."""
    ranges: list[tuple[datetime, datetime]] = []
    rows = conn.execute(SELECT_FIRST, (batch_size,)).fetchall()
    while rows:
        located = [n for n, r in enumerate(rows) if r[8] not in known and r[6] is not None]
        found = lookup([rows[n][6] for n in located], [rows[n][7] for n in located])
        zone_of = dict(zip(located, found, strict=True))
        changed = []
        for n, (time, source, id_, domain, entity, old, lon, _lat, given) in enumerate(rows):
            report.events_without_coordinates += lon is None
            if given in known:
                new = given
            elif lon is not None:
                new = zone_of[n]
                report.events_located += 1
                report.events_outside += new is None
            else:
                new = old if old in known else None
                report.events_cleared += old is not None and new is None
            if new != old:
                changed.append((time, source, id_, domain, entity, new))
        report.events_seen += len(rows)
        if changed:
            times, sources, ids, domains, entities, new_zones = (
                list(c) for c in zip(*changed, strict=True)
            )
            with conn.transaction():
                conn.execute(UPDATE_EVENTS, (times, sources, ids, new_zones))
                cur = conn.execute(
                    UPDATE_MEASUREMENTS,
                    (times, domains, entities, new_zones, times[0], times[-1]),
                )
            report.events_changed += len(changed)
            report.measurements_changed += cur.rowcount
            ranges.append((times[0], times[-1]))
        if progress:
            progress(len(rows))
        last = rows[-1]
        if len(rows) < batch_size:
            break
        rows = conn.execute(SELECT_NEXT, (last[0], last[1], last[2], batch_size)).fetchall()
    return ranges


def _clear_orphans(
    conn: psycopg.Connection[Any],
    known: frozenset[str],
    report: RezoneReport,
    ranges: list[tuple[datetime, datetime]],
) -> None:
    """Measurements whose event is gone and whose zone the file lacks: NULL, a day at a time;
    the time ranges they cover join `ranges`."""
    row = conn.execute("SELECT min(time), max(time) FROM measurements").fetchone()
    if row is None or row[0] is None:
        return
    low, high = row
    day = timedelta(days=1)
    while low <= high:
        cleared = conn.execute(CLEAR_MEASUREMENTS, (low, low + day, list(known))).fetchone()
        if cleared and cleared[0]:
            report.measurements_cleared += cleared[0]
            ranges.append((cleared[1], cleared[2]))
        low += day


def _replace_zones(
    conn: psycopg.Connection[Any], zones: Sequence[ZoneRow], report: RezoneReport
) -> None:
    """The `zones` table becomes the file's zones: upserted, and the others deleted."""
    with conn.transaction():
        conn.cursor().executemany(UPSERT_ZONE, list(zones))
        report.zones_upserted = len(zones)
        removed = conn.execute(
            "DELETE FROM zones WHERE NOT id = ANY(%s) RETURNING id", ([z.id for z in zones],)
        ).fetchall()
        report.zones_removed = sorted(r[0] for r in removed)


def _exists(conn: psycopg.Connection[Any], table: str) -> bool:
    row = conn.execute("SELECT to_regclass(%s) IS NOT NULL", (table,)).fetchone()
    return bool(row and row[0])
