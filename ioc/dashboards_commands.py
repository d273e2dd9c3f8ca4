"""`ioc dashboards build | check | push`: the Grafana wall as code."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import psycopg
import typer
from rich.table import Table

from dashboards.check import DashboardError, check_dashboards, dashboard_files
from dashboards.grafana_sql import TimeRange, VariableError, parse_interval
from dashboards.push import PushError, datasource_payload, push
from ioc.console import console, fail, settings_from

dashboards_app = typer.Typer(help="Grafana dashboards: build, check, push.", no_args_is_help=True)
DASHBOARDS = Path("deploy/grafana/dashboards")


@dashboards_app.command("build")
def build(
    out: Annotated[Path, typer.Option(help="Where the JSON files go.")] = DASHBOARDS,
) -> None:
    """Write every dashboard as JSON (grafana-foundation-sdk definitions in dashboards/)."""
    from dashboards.build import build_all  # type: ignore[import-not-found,unused-ignore]

    for path in build_all(out):
        console.print(f"wrote {path}", highlight=False)


def _files(paths: list[Path] | None) -> list[Path]:
    files: list[Path] = []
    for path in paths or [DASHBOARDS]:
        files.extend(dashboard_files(path) if path.is_dir() else [path])
    return files


@dashboards_app.command("check")
def check(
    ctx: typer.Context,
    paths: Annotated[
        list[Path] | None, typer.Argument(help="Dashboard JSON files or folders.")
    ] = None,
    last: Annotated[str, typer.Option(help="The time range: the last 24h, 6h, 7d...")] = "24h",
    require_rows: Annotated[
        bool, typer.Option(help="A query that returns no rows is a failure.")
    ] = False,
    show_sql: Annotated[bool, typer.Option(help="Print each expanded query.")] = False,
) -> None:
    """Expand every panel query as Grafana does and run it as ioc_grafana; a table of results."""
    settings = settings_from(ctx)
    files = _files(paths)
    if not files:
        raise fail(f"no dashboard JSON found in {', '.join(map(str, paths or [DASHBOARDS]))}")
    try:
        span = parse_interval(last)
    except ValueError:
        raise fail(f"--last {last!r} is not a duration (24h, 90m, 7d)", code=2) from None
    now = datetime.now(UTC)
    try:
        results = check_dashboards(settings.db, files, TimeRange(now - span, now),
                                   require_rows=require_rows)  # fmt: skip
    except psycopg.OperationalError as exc:
        raise fail(f"cannot reach the database as {settings.db.grafana_user}: {exc}") from None
    except (DashboardError, VariableError) as exc:
        raise fail(str(exc)) from None
    table = Table("dashboard", "panel", "type", "rows", "columns", "ms", "status")
    for r in results:
        status = "[green]ok[/]" if r.ok else "[red]" + (r.error or "; ".join(r.problems)) + "[/]"
        table.add_row(r.dashboard, r.panel + (f" ({r.ref_id})" if r.ref_id != "A" else ""),
                      r.panel_type, str(r.rows), ", ".join(r.column_names), f"{r.ms:.1f}",
                      status)  # fmt: skip
    console.print(table)
    if show_sql:
        for r in results:
            console.print(f"-- {r.dashboard} / {r.panel}\n{r.sql}\n", highlight=False)
    bad = [r for r in results if not r.ok]
    if bad:
        names = "; ".join(f"{r.dashboard} / {r.panel}" for r in bad)
        raise fail(f"{len(bad)} of {len(results)} panel queries failed: {names}")
    console.print(f"{len(results)} panel queries ok", highlight=False)


@dashboards_app.command("push")
def push_command(
    ctx: typer.Context,
    url: Annotated[str | None, typer.Option(help="Grafana's URL (IOC_GRAFANA__URL).")] = None,
    token: Annotated[
        str | None, typer.Option(help="A service-account token (IOC_GRAFANA__TOKEN).")
    ] = None,
    datasource: Annotated[
        bool, typer.Option("--datasource", help="Also create or update the datasource.")
    ] = False,
    datasource_url: Annotated[
        str | None, typer.Option(help="host:port of the database as Grafana reaches it.")
    ] = None,
    paths: Annotated[list[Path] | None, typer.Argument(help="Dashboard JSON files.")] = None,
) -> None:
    """Upload the dashboards into their folder; a second push changes nothing."""
    settings = settings_from(ctx)
    grafana = settings.grafana
    target = url or grafana.url
    credential: str | tuple[str, str]
    if token or grafana.token:
        credential = token or grafana.token.get_secret_value()  # type: ignore[union-attr]
    else:
        credential = (grafana.user, grafana.password.get_secret_value())
    files = _files(paths)
    if not files:
        raise fail(f"no dashboard JSON found in {DASHBOARDS}")
    ds = datasource_payload(settings.db, datasource_url) if datasource else None
    try:
        report = push(target, credential, files, datasource=ds)
    except PushError as exc:
        raise fail(str(exc)) from None
    for verb, names in (("created", report.created), ("updated", report.updated)):
        for name in names:
            console.print(f"{verb} {name}", highlight=False)
    console.print(
        f"{len(report.created)} created, {len(report.updated)} updated, "
        f"{len(report.unchanged)} unchanged at {target}",
        highlight=False,
    )
