"""The batching TimescaleDB sink: `add` rows, `flush` them in one idempotent transaction.

In the style of quixstreams' BatchingSink: `add(row)` buffers, `flush()` writes the buffer with
`write(batch)` and clears it only once the transaction has committed. One write is one
transaction holding the batch's events and measurements:

    events        INSERT ... ON CONFLICT DO NOTHING on (time, id)
    measurements  INSERT ... ON CONFLICT DO NOTHING on (time, entity_id, metric)

(latest_values, the wall's newest value per entity, is refreshed by the maintenance task: an
upsert per entity in every batch halved the throughput.)

Two ways to get the rows to the server (`IOC_STORAGE__WRITE_METHOD`), benchmarked in bench/sink.py:

- `copy`: binary COPY into a temporary staging table (created once per pooled connection,
  ON COMMIT DELETE ROWS), then INSERT ... SELECT from it. The default on flavour postgres.
- `unnest`: one INSERT ... SELECT FROM unnest(typed arrays) per table, arrays sent binary. The
  only one that works on the WASM TimescaleDB (its COPY FROM STDIN crashes); default on flavour
  timescale.

Errors are sorted by `sinks.errors.classify`: transient ones are retried with capped exponential
backoff on a fresh pooled connection, then raised as `Backpressure` (nothing is stored, the caller
keeps the batch); bad rows are isolated by bisecting the batch under savepoints, inside the same
transaction, and returned as `rejected` with their error, so the good rows still commit.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
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
from sinks.rows import Batch, EventRow, Row

log = structlog.get_logger(__name__)

# Per-row attribute reads done in C (map), not in a Python loop: these run over every row of
# every batch (~5 rows per event).
_DOMAIN = attrgetter("domain")
_TIME = attrgetter("time")
_TZINFO = attrgetter("time.tzinfo")

Method = Literal["copy", "unnest"]

EVENT_COLUMNS = (
    "time", "id", "source", "type", "domain", "entity_id", "zone_id", "lon", "lat", "subject", "data",
)  # fmt: skip
MEASUREMENT_COLUMNS = ("time", "domain", "metric", "entity_id", "zone_id", "value", "unit")

STAGING_DDL = (
    "CREATE TEMP TABLE IF NOT EXISTS ioc_stage_events ("
    " time timestamptz, id text, source text, type text, domain text, entity_id text,"
    " zone_id text, lon float8, lat float8, subject text, data text) ON COMMIT DELETE ROWS",
    "CREATE TEMP TABLE IF NOT EXISTS ioc_stage_measurements ("
    " time timestamptz, domain text, metric text, entity_id text, zone_id text,"
    " value float8, unit text) ON COMMIT DELETE ROWS",
)
EVENT_TYPES = ["timestamptz", "text", "text", "text", "text", "text", "text", "float8", "float8", "text", "text"]  # fmt: skip
MEASUREMENT_TYPES = ["timestamptz", "text", "text", "text", "text", "float8", "text"]

# The statements. Only fixed identifiers; all data travels as parameters or COPY rows.
INSERT_EVENTS = """
WITH ins AS (
  INSERT INTO events (time, id, source, type, domain, entity_id, zone_id, lon, lat, subject, data)
  SELECT time, id, source, type, domain, entity_id, zone_id, lon, lat, subject, data::jsonb
  FROM {source}
  ON CONFLICT DO NOTHING
  RETURNING domain)
SELECT domain, count(*) FROM ins GROUP BY domain"""

INSERT_MEASUREMENTS = """
WITH ins AS (
  INSERT INTO measurements (time, domain, metric, entity_id, zone_id, value, unit)
  SELECT time, domain, metric, entity_id, zone_id, value, unit FROM {source}
  ON CONFLICT DO NOTHING
  RETURNING domain)
SELECT domain, count(*) FROM ins GROUP BY domain"""

UNNEST_EVENTS = (
    "unnest(%b::timestamptz[], %b::text[], %b::text[], %b::text[], %b::text[], %b::text[],"
    " %b::text[], %b::float8[], %b::float8[], %b::text[], %b::text[])"
    " AS s(time, id, source, type, domain, entity_id, zone_id, lon, lat, subject, data)"
)
UNNEST_MEASUREMENTS = (
    "unnest(%b::timestamptz[], %b::text[], %b::text[], %b::text[], %b::text[], %b::float8[],"
    " %b::text[]) AS s(time, domain, metric, entity_id, zone_id, value, unit)"
)
SQL_BY_METHOD = {
    "copy": (
        INSERT_EVENTS.format(source="ioc_stage_events"),
        INSERT_MEASUREMENTS.format(source="ioc_stage_measurements"),
    ),
    "unnest": (
        INSERT_EVENTS.format(source=UNNEST_EVENTS),
        INSERT_MEASUREMENTS.format(source=UNNEST_MEASUREMENTS),
    ),
}


@dataclass(frozen=True)
class Rejected:
    """A row the database refused, with why (goes to the DLQ with reason `rejected_by_database`)."""

    row: Row
    error: str
    error_class: str
    sqlstate: str | None


@dataclass
class WriteResult:
    """What one write did. Per-domain counters; new + duplicates + rejected = rows given."""

    new_events: Counter[str] = field(default_factory=Counter)
    duplicate_events: Counter[str] = field(default_factory=Counter)
    new_measurements: Counter[str] = field(default_factory=Counter)
    duplicate_measurements: Counter[str] = field(default_factory=Counter)
    rejected: list[Rejected] = field(default_factory=list)
    # Earliest and latest time among the rows stored or found already stored (None: no rows);
    # what the aggregates must refresh, late rows included.
    time_range: tuple[datetime, datetime] | None = None
    attempts: int = 1
    seconds: float = 0.0

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


def resolve_method(method: WriteMethod, flavour: Flavour) -> Method:
    if method == "auto":
        return "copy" if flavour == "postgres" else "unnest"
    if method == "copy" and flavour == "timescale":
        log.warning(
            "sink.copy_on_timescale",
            note="COPY FROM STDIN crashes the WASM TimescaleDB used in tests; fine on a real server",
        )
    return method


class TimescaleSink:
    """Batching, idempotent writer of events and measurements. Use one per worker process.

        async with TimescaleSink.from_settings(settings.db, settings.storage) as sink:
            for row in rows:
                sink.add(row)
            result = await sink.flush()        # raises Backpressure if the database is down

    `flush`/`write` never lose rows: they return (all stored, duplicates counted, bad rows
    rejected) or raise (`Backpressure`: nothing stored, try again later; anything else: a bug or a
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
        rng: random.Random | None = None,
    ) -> None:
        """`prepare=False` turns psycopg's server-side prepared statements off: needed where
        connections share one session (the WASM TimescaleDB), where their names collide."""
        self.storage = storage
        self.flavour = flavour
        self.method: Method = resolve_method(storage.write_method, flavour)
        self.batch_size = storage.batch_size
        self._buffer = Batch()
        self._rng = rng or random.Random()
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
    ) -> TimescaleSink:
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

    async def __aenter__(self) -> TimescaleSink:
        await self.open()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    @staticmethod
    async def _configure(conn: psycopg.AsyncConnection[Any]) -> None:
        for statement in STAGING_DDL:
            await conn.execute(statement)
        await conn.commit()

    # -- BatchingSink API ----------------------------------------------------------------------
    def add(self, row: Row) -> None:
        """Buffer one row; `full` says when it is time to flush."""
        self._buffer.add(row)

    def add_all(self, rows: Iterable[Row]) -> None:
        for row in rows:
            self._buffer.add(row)

    @property
    def pending(self) -> int:
        return len(self._buffer)

    @property
    def full(self) -> bool:
        return len(self._buffer) >= self.batch_size

    async def flush(self) -> WriteResult:
        """Write the buffered rows; the buffer is cleared only if the write returned."""
        batch = self._buffer
        result = await self.write(batch)
        if self._buffer is batch:
            self._buffer = Batch()
        return result

    async def write(self, batch: Batch | Sequence[Row]) -> WriteResult:
        """Write `batch` in one transaction, retrying transient errors; see the module doc."""
        if not isinstance(batch, Batch):
            batch = Batch.of(list(batch))
        started = time.perf_counter()
        result = WriteResult()
        good = self._precheck(batch, result.rejected)
        if not len(good):
            result.seconds = time.perf_counter() - started
            return result
        delay = self.storage.retry_backoff_s
        for attempt in range(1, self.storage.retry_attempts + 1):
            attempt_result = WriteResult(rejected=list(result.rejected), attempts=attempt)
            try:
                await self._write_once(good, attempt_result)
            except Exception as exc:
                if classify(exc) is not ErrorKind.TRANSIENT:
                    raise
                if attempt == self.storage.retry_attempts:
                    # The caller logs the outage once (streams.backpressure); here it is detail.
                    log.debug("sink.retries_exhausted", attempts=attempt, error=_describe(exc))
                    raise Backpressure(
                        f"database unavailable after {attempt} attempts: {_describe(exc)}"
                    ) from exc
                sleep = min(self.storage.retry_backoff_cap_s, delay)
                sleep = sleep / 2 + self._rng.uniform(0, sleep / 2)
                log.debug(
                    "sink.retry", attempt=attempt, sleep_s=round(sleep, 3), error=_describe(exc)
                )
                await asyncio.sleep(sleep)
                delay *= 2
                continue
            attempt_result.time_range = _time_range(good, attempt_result.rejected)
            attempt_result.seconds = time.perf_counter() - started
            if attempt_result.rejected:
                log.warning(
                    "sink.rejected",
                    rows=len(attempt_result.rejected),
                    first_error=attempt_result.rejected[0].error,
                )
            return attempt_result
        raise AssertionError("unreachable")

    # -- internals -----------------------------------------------------------------------------
    @staticmethod
    def _precheck(batch: Batch, rejected: list[Rejected]) -> Batch:
        """Reject what must never reach the database: naive datetimes (no silent time zone)."""
        if None not in set(map(_TZINFO, batch.events)) and None not in set(
            map(_TZINFO, batch.measurements)
        ):
            return batch
        good = Batch()
        for row in batch.rows():
            if row.time.tzinfo is None or row.time.utcoffset() is None:
                rejected.append(
                    Rejected(row, "time has no time zone (naive datetime)", "NaiveDatetime", None)
                )
            else:
                good.add(row)
        return good

    async def _write_once(self, batch: Batch, result: WriteResult) -> None:
        async with self._pool.connection() as conn, conn.transaction():
            state = {"staged": False}
            await self._write_part(conn, batch, result, state, top=True)

    async def _write_part(
        self,
        conn: psycopg.AsyncConnection[Any],
        batch: Batch,
        result: WriteResult,
        state: dict[str, bool],
        *,
        top: bool = False,
    ) -> None:
        """Write `batch` under a savepoint; on a bad-row error, bisect it (same transaction)."""
        try:
            async with conn.transaction():
                counts = await self._insert(conn, batch, state)
        except psycopg.Error as exc:
            if classify(exc) is not ErrorKind.ROW:
                raise
            if top:
                log.info("sink.bisect", rows=len(batch), error=_describe(exc))
            rows = batch.rows()
            if len(rows) == 1:
                result.rejected.append(
                    Rejected(rows[0], str(exc).strip(), type(exc).__name__, exc.sqlstate)
                )
                return
            middle = len(rows) // 2
            for half in (rows[:middle], rows[middle:]):
                await self._write_part(conn, Batch.of(half), result, state)
            return
        new_events, new_measurements = counts
        result.new_events.update(new_events)
        result.new_measurements.update(new_measurements)
        result.duplicate_events.update(map(_DOMAIN, batch.events))  # rows given, per domain
        result.duplicate_measurements.update(map(_DOMAIN, batch.measurements))
        result.duplicate_events.subtract(new_events)
        result.duplicate_measurements.subtract(new_measurements)
        result.duplicate_events += Counter()  # drop zero counts
        result.duplicate_measurements += Counter()

    async def _insert(
        self, conn: psycopg.AsyncConnection[Any], batch: Batch, state: dict[str, bool]
    ) -> tuple[Counter[str], Counter[str]]:
        events_sql, measurements_sql = SQL_BY_METHOD[self.method]
        new_events: Counter[str] = Counter()
        new_measurements: Counter[str] = Counter()
        async with conn.cursor(binary=True) as cur:
            if self.method == "copy":
                if state["staged"]:  # an earlier part of this transaction left its rows there
                    await cur.execute("TRUNCATE ioc_stage_events, ioc_stage_measurements")
                state["staged"] = True
                if batch.events:
                    async with cur.copy("COPY ioc_stage_events FROM STDIN (FORMAT BINARY)") as copy:
                        copy.set_types(EVENT_TYPES)
                        for row in batch.events:
                            await copy.write_row(_event_values(row))
                if batch.measurements:
                    async with cur.copy(
                        "COPY ioc_stage_measurements FROM STDIN (FORMAT BINARY)"
                    ) as copy:
                        copy.set_types(MEASUREMENT_TYPES)
                        for row in batch.measurements:
                            await copy.write_row(row)
                if batch.events:
                    await cur.execute(events_sql)
                    new_events.update(dict(await cur.fetchall()))
                if batch.measurements:
                    await cur.execute(measurements_sql)
                    new_measurements.update(dict(await cur.fetchall()))
            else:
                if batch.events:
                    columns = list(zip(*(_event_values(r) for r in batch.events), strict=True))
                    await cur.execute(events_sql, [list(c) for c in columns])
                    new_events.update(dict(await cur.fetchall()))
                if batch.measurements:
                    columns = list(zip(*batch.measurements, strict=True))
                    await cur.execute(measurements_sql, [list(c) for c in columns])
                    new_measurements.update(dict(await cur.fetchall()))
        return new_events, new_measurements


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
        times = [r.time for r in batch.events if id(r) not in bad]
        times += [r.time for r in batch.measurements if id(r) not in bad]
    else:
        times = [*map(_TIME, batch.events), *map(_TIME, batch.measurements)]
    return (min(times), max(times)) if times else None


def _describe(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"{type(exc).__name__}: {text}"
