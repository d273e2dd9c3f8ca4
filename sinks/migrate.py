"""Numbered SQL migrations, shared or per flavour, applied one transaction each and recorded.

    sinks/migrations/shared/0001_base.sql          both flavours
    sinks/migrations/postgres/0002_timeseries.sql  flavour postgres only
    sinks/migrations/timescale/0002_timeseries.sql flavour timescale only

A version number lives either in `shared/` or in every flavour's folder, never both. Each file runs
in its own transaction together with its row in `schema_migrations` (version, name, folder,
sha256 of the file). A file that changed after it was applied is an error, and so is a database
migrated under the other flavour: nothing is re-applied or skipped silently.

Settings reach the SQL as transaction-local settings (`current_setting('ioc.chunk_interval')`),
so the files stay plain SQL and nothing is formatted into them. Checksums cover the files, not the
settings: the layout settings apply when the objects are created.
"""

from __future__ import annotations

import hashlib
import re
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from importlib import resources
from typing import Any

import psycopg
import structlog
from psycopg import sql

from sinks.config import DatabaseSettings, Flavour, StorageSettings

log = structlog.get_logger(__name__)

FLAVOURS: tuple[Flavour, ...] = ("postgres", "timescale")
FILE_NAME = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")
LOCK_KEY = 0x10C_5001  # pg_advisory_lock key held while migrating

SCHEMA_MIGRATIONS = """
CREATE TABLE IF NOT EXISTS schema_migrations (
  version integer PRIMARY KEY,
  name text NOT NULL,
  folder text NOT NULL,
  checksum text NOT NULL,
  applied_at timestamptz NOT NULL DEFAULT now(),
  duration_ms double precision NOT NULL
)"""


class MigrationError(Exception):
    """The migrations on disk and in the database disagree, or one failed; says which and why."""


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    folder: str  # "shared" or a flavour
    sql: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode()).hexdigest()

    @property
    def label(self) -> str:
        return f"{self.version:04d}_{self.name} ({self.folder})"


@dataclass(frozen=True)
class Applied:
    version: int
    name: str
    folder: str
    checksum: str
    applied_at: datetime
    duration_ms: float


def load_migrations(flavour: Flavour) -> list[Migration]:
    """The migrations for `flavour`, in order; checks the folder layout rules."""
    if flavour not in FLAVOURS:
        raise MigrationError(f"unknown flavour {flavour!r}; expected one of {FLAVOURS}")
    root = resources.files("sinks") / "migrations"
    found: dict[str, dict[int, Migration]] = {}
    for folder in ("shared", *FLAVOURS):
        found[folder] = {}
        directory = root / folder
        if not directory.is_dir():
            continue
        for entry in directory.iterdir():
            if not entry.name.endswith(".sql"):
                continue
            match = FILE_NAME.match(entry.name)
            if not match:
                raise MigrationError(
                    f"migration file name {folder}/{entry.name} is not NNNN_name.sql"
                )
            version = int(match.group(1))
            if version in found[folder]:
                raise MigrationError(f"two migrations numbered {version:04d} in {folder}/")
            found[folder][version] = Migration(version, match.group(2), folder, entry.read_text())
    for version in found["shared"]:
        for other in FLAVOURS:
            if version in found[other]:
                raise MigrationError(f"migration {version:04d} is in both shared/ and {other}/")
    per_flavour = [set(found[f]) for f in FLAVOURS]
    if per_flavour[0] != per_flavour[1]:
        missing = sorted(per_flavour[0] ^ per_flavour[1])
        raise MigrationError(f"flavour migrations {missing} exist for only one flavour")
    chosen = {**found["shared"], **found[flavour]}
    return [chosen[v] for v in sorted(chosen)]


def migration_parameters(db: DatabaseSettings, storage: StorageSettings) -> dict[str, str]:
    """The `ioc.*` settings the SQL files read with current_setting()."""

    def seconds(value: timedelta) -> str:
        return f"{value.total_seconds():.0f} seconds"

    return {
        "ioc.owner_role": db.owner_user,
        "ioc.ingest_role": db.ingest_user,
        "ioc.grafana_role": db.grafana_user,
        "ioc.notifier_role": db.notifier_user,
        "ioc.api_role": db.api_user,
        "ioc.chunk_interval": seconds(storage.chunk_interval),
        "ioc.raw_retention": seconds(storage.raw_retention),
        "ioc.aggregate_retention": seconds(storage.aggregate_retention),
        "ioc.compress_after": seconds(storage.compress_after),
        "ioc.refresh_window": seconds(storage.refresh_window),
        "ioc.premake_partitions": str(storage.premake_partitions),
        "ioc.past_partitions": str(storage.past_partitions),
    }


def applied_migrations(conn: psycopg.Connection[Any]) -> list[Applied]:
    exists = conn.execute("SELECT to_regclass('schema_migrations') IS NOT NULL").fetchone()
    if not exists or not exists[0]:
        return []
    rows = conn.execute(
        "SELECT version, name, folder, checksum, applied_at, duration_ms"
        " FROM schema_migrations ORDER BY version"
    ).fetchall()
    return [Applied(*row) for row in rows]


def check_applied(applied: list[Applied], migrations: list[Migration], flavour: Flavour) -> None:
    """Raise MigrationError if what was applied differs from the files for this flavour."""
    by_version = {m.version: m for m in migrations}
    problems = []
    for row in applied:
        if row.folder not in ("shared", flavour):
            problems.append(
                f"migration {row.version:04d}_{row.name} was applied for flavour {row.folder!r}, "
                f"but IOC_DB__FLAVOUR is {flavour!r}; this database holds the other flavour"
            )
            continue
        known = by_version.get(row.version)
        if known is None:
            problems.append(
                f"migration {row.version:04d}_{row.name} is applied but its file is missing"
            )
        elif known.checksum != row.checksum:
            problems.append(
                f"migration {known.label} was edited after it was applied (checksum "
                f"{row.checksum[:12]} in the database, {known.checksum[:12]} on disk); "
                "add a new migration instead"
            )
    if problems:
        raise MigrationError("; ".join(problems))


def missing_roles(conn: psycopg.Connection[Any], db: DatabaseSettings) -> list[str]:
    names = db.users()
    rows = conn.execute(
        "SELECT r FROM unnest(%s::text[]) AS r WHERE r NOT IN (SELECT rolname FROM pg_roles)",
        (names,),
    ).fetchall()
    return [row[0] for row in rows]


def migrate(
    conn: psycopg.Connection[Any],
    db: DatabaseSettings,
    storage: StorageSettings,
    *,
    flavour: Flavour | None = None,
) -> list[Migration]:
    """Apply the pending migrations for the flavour; returns those applied (empty: up to date).

    `conn` must not be in a transaction; it is left in its original autocommit mode.
    """
    flavour = flavour or db.flavour
    migrations = load_migrations(flavour)
    params = migration_parameters(db, storage)
    autocommit = conn.autocommit
    conn.autocommit = True
    try:
        if missing := missing_roles(conn, db):
            raise MigrationError(
                f"roles {missing} do not exist; `ioc dev up` creates them (or the compose initdb)"
            )
        conn.execute("SELECT pg_advisory_lock(%s)", (LOCK_KEY,))
        try:
            conn.execute(SCHEMA_MIGRATIONS)
            applied = applied_migrations(conn)
            check_applied(applied, migrations, flavour)
            done = {row.version for row in applied}
            ran = []
            for migration in migrations:
                if migration.version in done:
                    continue
                _apply(conn, migration, params)
                ran.append(migration)
            return ran
        finally:
            conn.execute("SELECT pg_advisory_unlock(%s)", (LOCK_KEY,))
    finally:
        conn.autocommit = autocommit


def _apply(conn: psycopg.Connection[Any], migration: Migration, params: dict[str, str]) -> None:
    started = time.perf_counter()
    try:
        with conn.transaction():
            for name, value in params.items():
                conn.execute("SELECT set_config(%s, %s, true)", (name, value))
            conn.execute(migration.sql.encode())  # type: ignore[call-overload]  # several statements
            conn.execute(
                "INSERT INTO schema_migrations (version, name, folder, checksum, duration_ms)"
                " VALUES (%s, %s, %s, %s, %s)",
                (
                    migration.version,
                    migration.name,
                    migration.folder,
                    migration.checksum,
                    (time.perf_counter() - started) * 1000,
                ),
            )
    except psycopg.Error as exc:
        raise MigrationError(f"migration {migration.label} failed: {exc}") from exc
    log.info(
        "db.migrated",
        migration=migration.label,
        ms=round((time.perf_counter() - started) * 1000, 1),
    )


# ---------------------------------------------------------------------------------------------
# ioc db info


@dataclass(frozen=True)
class TableInfo:
    name: str
    kind: str  # "table", "partitioned table (n partitions)", "hypertable (n chunks)", ...
    rows: int | None  # estimate for big tables (pg_class.reltuples), exact below 100k
    bytes: int
    oldest: datetime | None
    newest: datetime | None


@dataclass(frozen=True)
class DatabaseInfo:
    flavour: Flavour
    server_version: str
    timescaledb_version: str | None
    applied: list[Applied]
    pending: list[Migration]
    tables: list[TableInfo]


INFO_TABLES = (
    ("events", "time"),
    ("measurements", "time"),
    ("measurements_1m", "bucket"),
    ("measurements_1h", "bucket"),
    ("latest_values", "time"),
    ("pipeline_stats", "time"),
    ("zones", None),
)


def database_info(conn: psycopg.Connection[Any], flavour: Flavour) -> DatabaseInfo:
    server = conn.execute("SELECT version()").fetchone()
    ts = conn.execute(
        "SELECT extversion FROM pg_extension WHERE extname = 'timescaledb'"
    ).fetchone()
    applied = applied_migrations(conn)
    done = {row.version for row in applied}
    pending = [m for m in load_migrations(flavour) if m.version not in done]
    tables = [
        info
        for name, time_column in INFO_TABLES
        if (info := _table_info(conn, name, time_column, has_ts=ts is not None))
    ]
    return DatabaseInfo(
        flavour=flavour,
        server_version=server[0] if server else "?",
        timescaledb_version=ts[0] if ts else None,
        applied=applied,
        pending=pending,
        tables=tables,
    )


def _table_info(
    conn: psycopg.Connection[Any], name: str, time_column: str | None, *, has_ts: bool
) -> TableInfo | None:
    row = conn.execute(
        "SELECT c.relkind FROM pg_class c WHERE c.oid = to_regclass(%s)", (name,)
    ).fetchone()
    if row is None:
        return None
    relkind = row[0]
    ident = sql.Identifier(name)
    kind, size = "table", None
    if has_ts:
        hyper = conn.execute(
            "SELECT hypertable_name, num_chunks FROM timescaledb_information.hypertables"
            " WHERE hypertable_name = %s",
            (name,),
        ).fetchone()
        cagg = conn.execute(
            "SELECT materialization_hypertable_name FROM timescaledb_information.continuous_aggregates"
            " WHERE view_name = %s",
            (name,),
        ).fetchone()
        if hyper:
            kind = f"hypertable ({hyper[1]} chunks)"
            size = conn.execute("SELECT hypertable_size(%s::regclass)", (name,)).fetchone()
        elif cagg:
            kind = "continuous aggregate"
            size = conn.execute(
                "SELECT hypertable_size(format('_timescaledb_internal.%%I', %s::text)::regclass)",
                (cagg[0],),
            ).fetchone()
    if relkind == "p":
        parts = conn.execute(
            "SELECT count(*), coalesce(sum(pg_total_relation_size(inhrelid)), 0)"
            " FROM pg_inherits WHERE inhparent = %s::regclass",
            (name,),
        ).fetchone()
        assert parts is not None
        kind, size = f"partitioned ({parts[0]} partitions)", (parts[1],)
    elif relkind == "v" and kind == "table":
        kind = "view"
    if size is None:
        size = conn.execute("SELECT pg_total_relation_size(%s::regclass)", (name,)).fetchone()
    count = conn.execute(
        sql.SQL("SELECT count(*) FROM (SELECT 1 FROM {} LIMIT 100001) s").format(ident)
    ).fetchone()
    rows: int | None = count[0] if count else None
    if rows is not None and rows > 100_000:
        estimate = conn.execute(
            "SELECT sum(greatest(c.reltuples, 0))::bigint FROM pg_class c"
            " WHERE c.oid = %s::regclass OR c.oid IN (SELECT inhrelid FROM pg_inherits WHERE inhparent = %s::regclass)",
            (name, name),
        ).fetchone()
        rows = max(rows, int(estimate[0] or 0)) if estimate else rows
    oldest = newest = None
    if time_column:
        span = conn.execute(
            sql.SQL("SELECT min({c}), max({c}) FROM {t}").format(
                c=sql.Identifier(time_column), t=ident
            )
        ).fetchone()
        if span:
            oldest, newest = span
    return TableInfo(name, kind, rows, int(size[0] or 0) if size else 0, oldest, newest)
