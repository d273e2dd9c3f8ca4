"""`ioc db migrate | info | maintain | rezone | check`: the storage layer (sinks/) from the command line."""

from __future__ import annotations

from typing import Annotated, Any

import orjson
import psycopg
import typer
from rich.progress import Progress, SpinnerColumn, TextColumn
from rich.table import Table

from geo.zones import ZoneFileError, ZoneIndex
from ioc.console import connect, console, fail, settings_from
from sinks.config import ROLES
from sinks.connect import connect_problem, password_expiry
from sinks.maintenance import maintain
from sinks.migrate import MigrationError, database_info, migrate
from sinks.rezone import ZoneRow, rezone

db_app = typer.Typer(help="Database schema, status and housekeeping.", no_args_is_help=True)


def _connect(ctx: typer.Context) -> psycopg.Connection[Any]:
    return connect(settings_from(ctx), "owner", hint=" (local runtime: `ioc dev up`)",
                   autocommit=True)  # fmt: skip


@db_app.command("check")
def check_command(ctx: typer.Context) -> None:
    """Connect as every role: whether it logs in, over TLS or not, and when its password expires.

    Exits 1 if a role cannot connect, saying why (an expired password by name)."""
    settings = settings_from(ctx)
    table = Table("role", "user", "connects", "tls", "password valid until")
    failed = []
    for role in ROLES:
        user = settings.db.user(role)
        try:
            with psycopg.connect(settings.db.conninfo(role), autocommit=True) as conn:
                row = conn.execute(
                    "SELECT ssl, version FROM pg_stat_ssl WHERE pid = pg_backend_pid()"
                ).fetchone()
            tls = f"{row[1]}" if row and row[0] else "no"
            expiry = password_expiry(settings.db, role)
            table.add_row(role, user, "yes", tls, expiry.isoformat() if expiry else "-")
        except psycopg.OperationalError as exc:
            failed.append(connect_problem(exc, settings.db, role))
            table.add_row(role, user, "NO", "-", "-")
    console.print(table)
    if failed:
        raise fail("; ".join(failed))


@db_app.command("migrate")
def migrate_command(ctx: typer.Context) -> None:
    """Apply pending migrations for IOC_DB__FLAVOUR, one transaction each."""
    settings = settings_from(ctx)
    with _connect(ctx) as conn:
        try:
            ran = migrate(conn, settings.db, settings.storage)
        except MigrationError as exc:
            raise fail(str(exc)) from None
    if not ran:
        console.print(f"flavour {settings.db.flavour}: up to date", highlight=False)
    for migration in ran:
        console.print(f"applied {migration.label}", highlight=False)


@db_app.command("info")
def info_command(ctx: typer.Context) -> None:
    """Flavour, server and TimescaleDB versions, migrations, table sizes and time ranges."""
    settings = settings_from(ctx)
    with _connect(ctx) as conn:
        info = database_info(conn, settings.db.flavour)
    console.print(f"flavour: {info.flavour}", highlight=False)
    console.print(f"server: {info.server_version}", highlight=False)
    console.print(f"timescaledb: {info.timescaledb_version or 'not installed'}", highlight=False)
    for row in info.applied:
        console.print(
            f"migration {row.version:04d}_{row.name} ({row.folder}) applied "
            f"{row.applied_at:%Y-%m-%d %H:%M:%S%z} sha256 {row.checksum[:12]}",
            highlight=False,
        )
    for migration in info.pending:
        console.print(f"migration {migration.label} PENDING (run `ioc db migrate`)")
    table = Table("table", "kind", "rows", "size", "oldest", "newest")
    for t in info.tables:
        table.add_row(
            t.name,
            t.kind,
            "?" if t.rows is None else f"{t.rows:,}",
            f"{t.bytes / 1024**2:,.1f} MB",
            f"{t.oldest:%Y-%m-%d %H:%M:%S%z}" if t.oldest else "-",
            f"{t.newest:%Y-%m-%d %H:%M:%S%z}" if t.newest else "-",
        )
    console.print(table)


@db_app.command("maintain")
def maintain_command(
    ctx: typer.Context,
    run_jobs: Annotated[
        bool,
        typer.Option(help="Flavour timescale: run the policy jobs now (CALL run_job)."),
    ] = False,
) -> None:
    """One housekeeping pass: partitions, aggregate refresh, retention."""
    settings = settings_from(ctx)
    with _connect(ctx) as conn:
        report = maintain(conn, settings.db.flavour, settings.storage, run_jobs=run_jobs)
    console.print(f"partitions created: {report.partitions_created}", highlight=False)
    console.print(f"partitions dropped: {report.partitions_dropped}", highlight=False)
    console.print(f"refreshed (buckets, rows): {report.refreshed}", highlight=False)
    console.print(f"rows deleted: {report.rows_deleted}", highlight=False)
    if report.jobs_run:
        console.print(f"jobs run: {', '.join(report.jobs_run)}", highlight=False)


REZONE_HELP = (
    "Place stored rows in the zones of the current zone file (IOC_GEO__ZONE_FILE).\n\n"
    "Each event gets the zone the pipeline would give it now: the producer's zone_id if the file"
    " has it, else the zone of its coordinates (NULL outside every zone); its measurements"
    " follow.\n\n"
    "Rows WITHOUT coordinates keep their zone if the file still has it, and are set to NULL"
    " (counted as cleared) if it does not.\n\n"
    "The zones table becomes the file's zones (zones no longer in the file are deleted) and the"
    " aggregates are refreshed; aggregate rows older than the raw rows keep their old zone ids"
    " (counted as stale). Incidents keep the zone they were opened in; open ones in zones the file"
    " no longer has are counted. Batches commit on their own: safe to interrupt and run again."
)


@db_app.command("rezone", help=REZONE_HELP)
def rezone_command(
    ctx: typer.Context,
    batch_size: Annotated[int, typer.Option(min=100, help="Events per transaction.")] = 5000,
) -> None:
    settings = settings_from(ctx)
    try:
        index = ZoneIndex.from_file(settings.geo.zone_file)
    except ZoneFileError as exc:
        raise fail(str(exc)) from None
    zones = [
        ZoneRow(z.id, z.name, z.kind, z.parent, orjson.dumps(z.geometry.__geo_interface__).decode(),
                z.geometry.centroid.x, z.geometry.centroid.y)
        for z in index.zones
    ]  # fmt: skip
    with (
        _connect(ctx) as conn,
        Progress(SpinnerColumn(), TextColumn("{task.description}"), console=console) as bar,
    ):
        task = bar.add_task("events read: 0")
        seen = 0

        def advance(n: int) -> None:
            nonlocal seen
            seen += n
            bar.update(task, description=f"events read: {seen:,}")

        report = rezone(
            conn, settings.db.flavour, settings.storage, known=index.ids, lookup=index.lookup,
            zones=zones, batch_size=batch_size, progress=advance,
        )  # fmt: skip
    lines = {
        "events read": report.events_seen,
        "events changed": report.events_changed,
        "events placed by coordinates": report.events_located,
        "events outside every zone (NULL)": report.events_outside,
        "events without coordinates": report.events_without_coordinates,
        "events without coordinates cleared (zone no longer in the file)": report.events_cleared,
        "measurements changed with their event": report.measurements_changed,
        "measurements without an event cleared": report.measurements_cleared,
        "latest values changed": report.latest_values_changed,
        "zones upserted": report.zones_upserted,
        "zones removed": len(report.zones_removed),
        "aggregate rows older than the raw rows, old zone kept": report.stale_aggregate_rows,
        "open incidents in zones no longer in the file": report.open_incidents_in_old_zones,
    }
    for label, value in lines.items():
        console.print(f"{label}: {value:,}", highlight=False)
    console.print(f"refreshed (buckets, rows): {report.refreshed}", highlight=False)
