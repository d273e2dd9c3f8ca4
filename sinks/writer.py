"""The event sink: `write(batch)` stores a batch of events and their measurements in one
idempotent transaction, in TimescaleDB (flavour timescale) or plain PostgreSQL (flavour postgres).

The caller (streams.pipeline) builds the whole batch and calls `write` once; the sink keeps no
buffer of its own.

Only events are deduplicated, on their natural key (time, source, id). Measurements are facts derived
from an event: they are written exactly when their event is newly stored, with no key and no
conflict check of their own (a keyed measurements table with ON CONFLICT cost PostgreSQL about
3.5x the CPU of an append to a table with a BRIN index on time). So one write:

1. drops repeats of an event inside the batch (same (time, source, id): the first one stays, the others
   are counted as duplicates, their measurements are not written);
2. events: INSERT ... ON CONFLICT DO NOTHING, returning the staged events that were NOT inserted
   (already stored; normally none, so normally no rows come back);
3. measurements of the newly stored events only: appended (binary COPY, or INSERT ... SELECT
   FROM unnest), no conflict handling.

(latest_values, the wall's newest value per entity, is refreshed by the maintenance task: an
upsert per entity in every batch halved the throughput.)

Two ways to get the rows to the server (`IOC_STORAGE__WRITE_METHOD`), benchmarked in bench/sink.py:

- `copy`: events by binary COPY into a temporary staging table (created once per pooled
  connection, ON COMMIT DELETE ROWS), then INSERT ... SELECT from it; measurements by binary COPY
  straight into `measurements`. The default on flavour postgres.
- `unnest`: INSERT ... SELECT FROM unnest(typed arrays) for both tables, arrays sent binary. The
  only one that works on the WASM TimescaleDB (its COPY FROM STDIN crashes); default on flavour
  timescale.

Errors are sorted by `sinks.errors.classify`: a transient one is raised at once as `Backpressure`
(nothing is stored; the caller keeps the batch, waits and writes it again: streams.retry is the
one retry loop); bad rows are isolated by bisecting the batch's events (each with its
measurements) under savepoints, inside the same transaction, and returned as `rejected` (the
event row, which carries the index of its Kafka record, with the error) so the good events still
commit. An event and its measurements are stored or rejected together.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from operator import attrgetter
from typing import Any, Literal

import orjson
import psycopg
import structlog
from psycopg_pool import AsyncConnectionPool

from sinks.config import DatabaseSettings, Flavour, Role, StorageSettings, WriteMethod
from sinks.errors import Backpressure, ErrorKind, classify
from sinks.rows import Batch, EventRow, MeasurementRow

log = structlog.get_logger(__name__)

# Per-row attribute reads done in C (map), not in a Python loop: these run over every row of
# every batch (~5 rows per event).
_DOMAIN = attrgetter("domain")
_TIME = attrgetter("time")
_KEY = attrgetter("time", "source", "id")  # an event's natural key
_TZINFO = attrgetter("time.tzinfo")

Method = Literal["copy", "unnest"]
#: Called inside the write's transaction with the newly stored events (see EventSink.write).
AfterInsert = Callable[[psycopg.AsyncConnection[Any], Batch], Awaitable[Any]]

STAGING_DDL = (
    "CREATE TEMP TABLE IF NOT EXISTS ioc_stage_events ("
    " time timestamptz, id text, source text, type text, domain text, entity_id text,"
    " zone_id text, lon float8, lat float8, subject text, data text) ON COMMIT DELETE ROWS",
)
EVENT_TYPES = ["timestamptz", "text", "text", "text", "text", "text", "text", "float8", "float8", "text", "text"]  # fmt: skip
MEASUREMENT_TYPES = ["timestamptz", "text", "text", "text", "text", "float8", "text"]

# The statements. Only fixed identifiers; all data travels as parameters or COPY rows.
# Events: insert what is new; return the (time, source, id) of the staged events that were not
# inserted (already stored). The anti-join reads the RETURNING rows of the same statement.
INSERT_EVENTS = """
WITH {stage}ins AS (
  INSERT INTO events (time, id, source, type, domain, entity_id, zone_id, lon, lat, subject, data)
  SELECT time, id, source, type, domain, entity_id, zone_id, lon, lat, subject, data::jsonb
  FROM {source}
  ON CONFLICT DO NOTHING
  RETURNING time, source, id)
SELECT s.time, s.source, s.id FROM {source} s
WHERE NOT EXISTS (
  SELECT FROM ins WHERE ins.time = s.time AND ins.source = s.source AND ins.id = s.id)"""

COPY_MEASUREMENTS = (
    "COPY measurements (time, domain, metric, entity_id, zone_id, value, unit)"
    " FROM STDIN (FORMAT BINARY)"
)
UNNEST_INSERT_MEASUREMENTS = (
    "INSERT INTO measurements (time, domain, metric, entity_id, zone_id, value, unit)"
    " SELECT * FROM unnest(%b::timestamptz[], %b::text[], %b::text[], %b::text[], %b::text[],"
    " %b::float8[], %b::text[])"
)
UNNEST_EVENTS = (
    "staged AS MATERIALIZED (SELECT * FROM unnest(%b::timestamptz[], %b::text[], %b::text[],"
    " %b::text[], %b::text[], %b::text[], %b::text[], %b::float8[], %b::float8[], %b::text[],"
    " %b::text[]) AS u(time, id, source, type, domain, entity_id, zone_id, lon, lat, subject,"
    " data)),\n"
)
COPY_INSERT_EVENTS = INSERT_EVENTS.format(stage="", source="ioc_stage_events")
UNNEST_INSERT_EVENTS = INSERT_EVENTS.format(stage=UNNEST_EVENTS, source="staged")


@dataclass(frozen=True)
class Rejected:
    """An event the database refused (with its measurements), and why.

    `row` is the EventRow; the pipeline dead-letters the record at `row.record` with reason
    `rejected_by_database`."""

    row: EventRow
    error: str
    error_class: str
    sqlstate: str | None


@dataclass
class WriteResult:
    """What one write did, per domain. For events, new + duplicates + rejected = events given.
    Measurements count as their event does: new when their event was newly stored, duplicate
    when their event was a duplicate; those of rejected events are in neither."""

    new_events: Counter[str] = field(default_factory=Counter)
    duplicate_events: Counter[str] = field(default_factory=Counter)
    new_measurements: Counter[str] = field(default_factory=Counter)
    duplicate_measurements: Counter[str] = field(default_factory=Counter)
    rejected: list[Rejected] = field(default_factory=list)
    # Earliest and latest time among the rows stored or found already stored (None: no rows);
    # what the aggregates must refresh, late rows included.
    time_range: tuple[datetime, datetime] | None = None
    seconds: float = 0.0
    #: The newly stored events with their measurements (what `after_insert` was given).
    stored: Batch = field(default_factory=lambda: Batch())
    #: What `after_insert` returned, or None when it failed (then the events still committed).
    after: Any = None
    after_failed: bool = False

    @property
    def events_new(self) -> int:
        return sum(self.new_events.values())

    @property
    def events_duplicate(self) -> int:
        return sum(self.duplicate_events.values())

    @property
    def measurements_new(self) -> int:
        return sum(self.new_measurements.values())

    @property
    def measurements_duplicate(self) -> int:
        return sum(self.duplicate_measurements.values())

    def count_duplicates(self, batch: Batch) -> None:
        self.duplicate_events.update(map(_DOMAIN, batch.events))
        self.duplicate_measurements.update(map(_DOMAIN, batch.measurements))


def resolve_method(method: WriteMethod, flavour: Flavour) -> Method:
    if method == "auto":
        return "copy" if flavour == "postgres" else "unnest"
    if method == "copy" and flavour == "timescale":
        log.warning(
            "sink.copy_on_timescale",
            note="COPY FROM STDIN crashes the WASM TimescaleDB used in tests; fine on a real server",
        )
    return method


class EventSink:
    """Idempotent writer of events and their measurements. Use one per worker process.

        async with EventSink.from_settings(settings.db, settings.storage) as sink:
            result = await sink.write(batch)   # raises Backpressure if the database is down

    `write` never loses rows: it returns (all stored, duplicates counted, bad events rejected)
    or raises (`Backpressure`: nothing stored, try again later; anything else: a bug or a
    missing table/privilege).
    """

    def __init__(
        self,
        conninfo: str,
        storage: StorageSettings,
        flavour: Flavour,
        *,
        pool_min_size: int = 1,
        pool_max_size: int = 2,
        connect_timeout_s: float = 5.0,
        prepare: bool = True,
    ) -> None:
        """`prepare=False` turns psycopg's server-side prepared statements off: needed where
        connections share one session (the WASM TimescaleDB), where their names collide."""
        self.storage = storage
        self.flavour = flavour
        self.method: Method = resolve_method(storage.write_method, flavour)
        self._pool = AsyncConnectionPool(
            conninfo,
            min_size=pool_min_size,
            max_size=max(pool_min_size, pool_max_size),
            timeout=connect_timeout_s,
            open=False,
            configure=self._configure if self.method == "copy" else None,
            check=AsyncConnectionPool.check_connection,
            kwargs={} if prepare else {"prepare_threshold": None},
            name="ioc-sink",
        )

    @classmethod
    def from_settings(
        cls, db: DatabaseSettings, storage: StorageSettings, *, role: Role = "ingest"
    ) -> EventSink:
        return cls(
            db.conninfo(role),
            storage,
            db.flavour,
            pool_min_size=min(db.pool_min_size, db.pool_max_size),
            pool_max_size=db.pool_max_size,
            connect_timeout_s=db.connect_timeout_s,
        )

    # -- lifecycle -----------------------------------------------------------------------------
    async def open(self, *, wait: bool = True) -> None:
        """Open the pool; with `wait`, fail (Backpressure) if the database does not answer."""
        try:
            await self._pool.open(wait=wait)
        except Exception as exc:
            if classify(exc) is ErrorKind.TRANSIENT:
                raise Backpressure(f"cannot connect to the database: {exc}") from exc
            raise

    async def close(self) -> None:
        await self._pool.close()

    async def __aenter__(self) -> EventSink:
        await self.open()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    @staticmethod
    async def _configure(conn: psycopg.AsyncConnection[Any]) -> None:
        for statement in STAGING_DDL:
            await conn.execute(statement)
        await conn.commit()

    # -- writing -------------------------------------------------------------------------------
    async def write(
        self,
        batch: Batch | Iterable[tuple[EventRow, Sequence[MeasurementRow]] | EventRow],
        *,
        after_insert: AfterInsert | None = None,
    ) -> WriteResult:
        """Write `batch` in one transaction; see the module doc.

        `after_insert(conn, stored)` runs in the same transaction once the new events are known
        (`stored`: only the newly stored ones, duplicates excluded), before the commit: what it
        writes commits with the events or not at all. A transient error in it is the write's
        (Backpressure: nothing commits); any other rolls back only its own work (a savepoint),
        is logged, and sets `after_failed`: the events still commit, so that no bug in what
        follows the write can stop a partition."""
        if not isinstance(batch, Batch):
            batch = Batch.of(batch)
        started = time.perf_counter()
        result = WriteResult()
        good = _unique_events(_precheck(batch, result.rejected), result)
        if len(good):
            try:
                await self._write_once(good, result, after_insert)
            except Exception as exc:
                if classify(exc) is not ErrorKind.TRANSIENT:
                    raise
                raise Backpressure(f"database unavailable: {_describe(exc)}") from exc
            result.time_range = _time_range(good, result.rejected)
        if result.rejected:
            log.warning(
                "sink.rejected", events=len(result.rejected), first_error=result.rejected[0].error
            )
        result.seconds = time.perf_counter() - started
        return result

    # -- internals -----------------------------------------------------------------------------
    async def _write_once(
        self, batch: Batch, result: WriteResult, after_insert: AfterInsert | None
    ) -> None:
        async with self._pool.connection() as conn, conn.transaction():
            state = {"staged": False}
            await self._write_part(conn, batch, result, state, top=True)
            if after_insert is None or not result.stored.events:
                return
            try:
                async with conn.transaction():
                    result.after = await after_insert(conn, result.stored)
            except Exception as exc:
                if classify(exc) is ErrorKind.TRANSIENT:
                    raise
                log.exception("sink.after_insert_failed", events=len(result.stored))
                result.after_failed = True

    async def _write_part(
        self,
        conn: psycopg.AsyncConnection[Any],
        batch: Batch,
        result: WriteResult,
        state: dict[str, bool],
        *,
        top: bool = False,
    ) -> None:
        """Write `batch` under a savepoint; on a bad-row error, bisect its events (each with its
        measurements) in the same transaction."""
        try:
            async with conn.transaction():
                stored = await self._insert(conn, batch, state)
        except psycopg.Error as exc:
            if classify(exc) is not ErrorKind.ROW:
                raise
            if top:
                log.info("sink.bisect", events=len(batch), error=_describe(exc))
            n = len(batch)
            if n == 1:
                result.rejected.append(
                    Rejected(batch.events[0], str(exc).strip(), type(exc).__name__, exc.sqlstate)
                )
                return
            middle = n // 2
            for half in (batch.slice(0, middle), batch.slice(middle, n)):
                await self._write_part(conn, half, result, state)
            return
        result.new_events.update(map(_DOMAIN, stored.events))
        result.new_measurements.update(map(_DOMAIN, stored.measurements))
        if result.stored.events:
            result.stored.extend(stored)
        else:
            result.stored = stored  # the common case, one part: no copy
        if stored is batch:
            return
        # The rest were stored before (an earlier batch, or another worker): duplicates.
        result.count_duplicates(batch)
        result.duplicate_events.subtract(map(_DOMAIN, stored.events))
        result.duplicate_measurements.subtract(map(_DOMAIN, stored.measurements))
        result.duplicate_events += Counter()  # drop zero counts
        result.duplicate_measurements += Counter()

    async def _insert(
        self, conn: psycopg.AsyncConnection[Any], batch: Batch, state: dict[str, bool]
    ) -> Batch:
        """Insert the new events of `batch` and their measurements; returns what was stored
        (`batch` itself when every event was new)."""
        async with conn.cursor(binary=True) as cur:
            if self.method == "copy":
                if state["staged"]:  # an earlier part of this transaction left its rows there
                    await cur.execute("TRUNCATE ioc_stage_events")
                state["staged"] = True
                async with cur.copy("COPY ioc_stage_events FROM STDIN (FORMAT BINARY)") as copy:
                    copy.set_types(EVENT_TYPES)
                    for row in batch.events:
                        await copy.write_row(_event_values(row))
                await cur.execute(COPY_INSERT_EVENTS)
            else:
                columns = zip(*map(_event_values, batch.events), strict=True)
                await cur.execute(UNNEST_INSERT_EVENTS, [list(c) for c in columns])
            stored = _without(batch, await cur.fetchall())
            if not stored.measurements:
                return stored
            if self.method == "copy":
                async with cur.copy(COPY_MEASUREMENTS) as copy:
                    copy.set_types(MEASUREMENT_TYPES)
                    for measurement in stored.measurements:
                        await copy.write_row(measurement)
            else:
                columns = zip(*stored.measurements, strict=True)
                await cur.execute(UNNEST_INSERT_MEASUREMENTS, [list(c) for c in columns])
        return stored


def _precheck(batch: Batch, rejected: list[Rejected]) -> Batch:
    """Reject what must never reach the database: naive datetimes (no silent time zone). An
    event is rejected with its measurements if any of them is naive."""
    if None not in set(map(_TZINFO, batch.events)) and None not in set(
        map(_TZINFO, batch.measurements)
    ):
        return batch
    keep = []
    for i, (event, measurements) in enumerate(batch.spans()):
        if all(_aware(row.time) for row in (event, *measurements)):
            keep.append(i)
        else:
            which = "its time" if not _aware(event.time) else "a measurement's time"
            message = f"{which} has no time zone (naive datetime)"
            rejected.append(Rejected(event, message, "NaiveDatetime", None))
    return batch.select(keep)


def _aware(value: datetime) -> bool:
    return value.tzinfo is not None and value.utcoffset() is not None


def _unique_events(batch: Batch, result: WriteResult) -> Batch:
    """Keep the first of events that share (time, source, id); count the others (and their
    measurements) as duplicates."""
    keys = list(map(_KEY, batch.events))
    if len(set(keys)) == len(keys):
        return batch
    seen: set[tuple[datetime, str, str]] = set()
    keep = []
    for i, key in enumerate(keys):
        if key in seen:
            result.duplicate_events[batch.events[i].domain] += 1
            result.duplicate_measurements.update(map(_DOMAIN, batch.measurements_of(i)))
        else:
            seen.add(key)
            keep.append(i)
    return batch.select(keep)


def _without(batch: Batch, stored_before: Sequence[tuple[datetime, str, str]]) -> Batch:
    """`batch` without the events the database already held (`batch` itself if none)."""
    if not stored_before:
        return batch
    old = set(map(tuple, stored_before))
    return batch.select(i for i, event in enumerate(batch.events) if _KEY(event) not in old)


def _event_values(row: EventRow) -> tuple[Any, ...]:
    data = row.data
    text = data if isinstance(data, str) else orjson.dumps(_plain(data)).decode()
    return (
        row.time, row.id, row.source, row.type, row.domain, row.entity_id, row.zone_id,
        row.lon, row.lat, row.subject, text,
    )  # fmt: skip


def _plain(data: Mapping[str, Any]) -> Any:
    return data if isinstance(data, dict) else dict(data)


def _time_range(batch: Batch, rejected: list[Rejected]) -> tuple[datetime, datetime] | None:
    if rejected:
        bad = {id(r.row) for r in rejected}
        batch = batch.select(i for i, e in enumerate(batch.events) if id(e) not in bad)
    if not batch.events:
        return None
    lo, hi = min(map(_TIME, batch.events)), max(map(_TIME, batch.events))
    if batch.measurements:
        lo = min(lo, min(map(_TIME, batch.measurements)))
        hi = max(hi, max(map(_TIME, batch.measurements)))
    return lo, hi


def _describe(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"{type(exc).__name__}: {text}"
