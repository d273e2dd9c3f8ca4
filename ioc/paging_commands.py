"""`ioc notifier`, `ioc paging check | show`, `ioc silences add | list | expire`, `ioc oncall show`,
`ioc pages list`."""

from __future__ import annotations

import asyncio
import signal
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated

import typer
from psycopg.rows import dict_row
from rich.table import Table

from ioc.console import connect, console, fail, settings_from
from notifier.service import Notifier, build_context
from notifier.silences import SilenceError, add_silence, expire_silence, list_silences
from paging.load import PagingError, check_file, load_paging
from paging.model import RouteMatch
from paging.oncall import on_call
from rules import RuleError
from rules.model import parse_duration
from sinks.connect import refused_logins

paging_app = typer.Typer(help="The paging file: check, show.", no_args_is_help=True)
silences_app = typer.Typer(help="Silences and maintenance windows.", no_args_is_help=True)
oncall_app = typer.Typer(help="Who is on call.", no_args_is_help=True)
pages_app = typer.Typer(help="Pages written and sent.", no_args_is_help=True)


def notifier_command(ctx: typer.Context) -> None:
    """Run the notifier: route incident transitions into pages, escalate, send. Several may run."""
    settings = settings_from(ctx)
    try:
        context = build_context(settings)
    except (PagingError, RuleError) as exc:
        raise fail("cannot start the notifier:\n  " + "\n  ".join(exc.problems), code=2) from None
    if refused := refused_logins(settings.db, ("notifier",)):
        raise fail("cannot start the notifier: " + "; ".join(refused))

    async def main() -> None:
        notifier = Notifier(settings, context)
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, notifier.stop)
        await notifier.run()

    asyncio.run(main())


@paging_app.command("check")
def paging_check(path: Annotated[Path, typer.Argument(help="A paging YAML file.")]) -> None:
    """Validate a paging file without starting anything; exit 2 naming the field."""
    if not path.is_file():
        raise fail(f"{path}: no such file", code=2)
    try:
        config = check_file(path)
    except PagingError as exc:
        raise fail("invalid paging file:\n  " + "\n  ".join(exc.problems), code=2) from None
    console.print(f"{path}: valid: {len(config.routes)} routes, {len(config.receivers)} receivers, "
                  f"{len(config.policies)} policies; secrets it needs: "
                  f"{', '.join(sorted(config.secret_names()))}", highlight=False)  # fmt: skip


@paging_app.command("show")
def paging_show(ctx: typer.Context) -> None:
    """The routes in use, in the order they are tried, and whether each secret is set."""
    settings = settings_from(ctx)
    try:
        config = load_paging(settings.paging, need_secrets=False)
    except PagingError as exc:
        raise fail("invalid paging file:\n  " + "\n  ".join(exc.problems), code=2) from None
    table = Table(title="routes (first match wins)")
    for column in ("route", "match", "receivers", "policy", "group_by", "wait", "interval",
                   "repeat"):  # fmt: skip
        table.add_column(column)
    for route in config.routes:
        g = config.grouping_of(route)
        table.add_row(route.name, str(route.match.model_dump(exclude_none=True) or "everything"),
                      ", ".join(route.receivers), route.policy or "", ",".join(g.group_by),
                      f"{g.group_wait} (critical {g.critical_group_wait})", str(g.group_interval),
                      str(g.repeat_interval))  # fmt: skip
    console.print(table)
    for name in sorted(config.secret_names()):
        state = "set" if name in settings.paging.secrets else "NOT SET"
        console.print(f"secret {name}: {state} (IOC_PAGING__SECRETS__{name.upper()})",
                      highlight=False)  # fmt: skip


def _aware(value: datetime | None, option: str) -> datetime | None:
    if value is not None and value.tzinfo is None:
        raise fail(f"{option} needs a time zone (e.g. 2026-07-01T22:00:00+07:00)", code=2)
    return value


@silences_app.command("add")
def silences_add(
    ctx: typer.Context,
    by: Annotated[str, typer.Option("--by", help="Who sets it.")],
    zone: Annotated[list[str] | None, typer.Option(help="Zone id (repeat for several).")] = None,
    domain: Annotated[list[str] | None, typer.Option(help="Domain (repeat for several).")] = None,
    severity: Annotated[list[str] | None, typer.Option(help="Severity (repeat).")] = None,
    rule: Annotated[list[str] | None, typer.Option(help="Rule id (repeat).")] = None,
    duration: Annotated[str, typer.Option("--for", help="How long: 30m, 2h, 1d.")] = "2h",
    starts: Annotated[
        datetime | None, typer.Option("--starts", help="A maintenance window's start (ISO 8601).")
    ] = None,
    comment: Annotated[str, typer.Option(help="Why.")] = "",
) -> None:
    """Mute pages of matching incidents for a while (from now, or from --starts)."""
    settings = settings_from(ctx)
    try:
        matchers = RouteMatch(zone=zone or None, domain=domain or None,
                              severity=severity or None, rule=rule or None)  # fmt: skip
        length = parse_duration(duration)
    except ValueError as exc:
        raise fail(f"invalid silence: {exc}", code=2) from None
    begin = _aware(starts, "--starts") or datetime.now(UTC)
    with connect(settings, "notifier") as conn:
        try:
            row = add_silence(conn, matchers, begin, begin + length, by, comment)
        except SilenceError as exc:
            raise fail(str(exc), code=2) from None
    console.print(f"silence {row['id']} from {row['starts_at']:%Y-%m-%d %H:%M %Z} to "
                  f"{row['ends_at']:%Y-%m-%d %H:%M %Z}: {row['matchers']}", highlight=False)  # fmt: skip


@silences_app.command("list")
def silences_list(
    ctx: typer.Context,
    all_: Annotated[bool, typer.Option("--all", help="Include expired silences.")] = False,
) -> None:
    """Silences in force or pending (maintenance windows)."""
    settings = settings_from(ctx)
    with connect(settings, "notifier") as conn:
        rows = list_silences(conn, include_expired=all_)
    table = Table(title=f"{len(rows)} silences")
    for column in ("id", "state", "matchers", "starts", "ends", "by", "comment"):
        table.add_column(column, no_wrap=column in ("id", "state", "starts", "ends"))
    for row in rows:
        state = "expired" if row["expired"] else "pending" if row["pending"] else "active"
        table.add_row(str(row["id"]), state, str(row["matchers"]),
                      f"{row['starts_at']:%Y-%m-%d %H:%M:%S%z}", f"{row['ends_at']:%Y-%m-%d %H:%M:%S%z}",
                      row["created_by"], row["comment"])  # fmt: skip
    console.print(table)


@silences_app.command("expire")
def silences_expire(
    ctx: typer.Context,
    silence_id: str,
    by: Annotated[str, typer.Option("--by", help="Who ends it.")],
) -> None:
    """End a silence now; what it muted is paged at its group's next look if still open."""
    settings = settings_from(ctx)
    with connect(settings, "notifier") as conn:
        try:
            row = expire_silence(conn, silence_id, by)
        except SilenceError as exc:
            raise fail(str(exc)) from None
    console.print(f"silence {row['id']} expired by {by}", highlight=False)


@oncall_app.command("show")
def oncall_show(
    ctx: typer.Context,
    at: Annotated[
        datetime | None, typer.Option(help="At this time (ISO 8601); default now.")
    ] = None,
) -> None:
    """Who is on call for each role, and until when (in the center's time zone)."""
    settings = settings_from(ctx)
    try:
        config = load_paging(settings.paging, need_secrets=False)
    except PagingError as exc:
        raise fail("invalid paging file:\n  " + "\n  ".join(exc.problems), code=2) from None
    moment = _aware(at, "--at") or datetime.now(UTC)
    table = Table(title=f"on call at {moment.isoformat(timespec='minutes')} "
                        f"({config.oncall.timezone})")  # fmt: skip
    for column in ("role", "person", "name", "since", "until"):
        table.add_column(column)
    from zoneinfo import ZoneInfo

    zone = ZoneInfo(config.oncall.timezone)
    for shift in on_call(config.oncall, moment):
        table.add_row(shift.role, shift.person, config.people[shift.person].name,
                      f"{shift.starts.astimezone(zone):%Y-%m-%d %H:%M}",
                      f"{shift.ends.astimezone(zone):%Y-%m-%d %H:%M}")  # fmt: skip
    console.print(table)


@pages_app.command("list")
def pages_list(
    ctx: typer.Context,
    since: Annotated[str, typer.Option(help="How far back: 1h, 1d.")] = "1d",
    limit: Annotated[int, typer.Option(min=1, max=10_000)] = 50,
) -> None:
    """The newest notifications: kind, receiver, when written and sent, attempts, subject."""
    settings = settings_from(ctx)
    try:
        back: timedelta = parse_duration(since)
    except ValueError as exc:
        raise fail(f"--since: {exc}", code=2) from None
    with connect(settings, "notifier") as conn, conn.cursor(row_factory=dict_row) as cur:
        rows = cur.execute(
            "SELECT * FROM notifications WHERE created_at > now() - %s "
            "ORDER BY created_at DESC LIMIT %s", (back, limit),
        ).fetchall()  # fmt: skip
    table = Table(title=f"{len(rows)} notifications")
    for column in ("written", "kind", "receiver", "sent", "attempts", "subject", "error"):
        table.add_column(column)
    for row in rows:
        table.add_row(f"{row['created_at']:%H:%M:%S}", row["kind"], row["receiver"],
                      f"{row['sent_at']:%H:%M:%S}" if row["sent_at"] else "pending",
                      str(row["attempts"]), row["subject"][:70], (row["last_error"] or "")[:60])  # fmt: skip
    console.print(table)
