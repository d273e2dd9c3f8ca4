"""The `ioc` command line, the composition root: one typer app, a sub-command module per concern.

It imports every room (the pipeline, the simulator, the local runtime); nothing imports it.

Settings are loaded once, when a command starts; an invalid setting prints the environment
variable that holds it and exits 2.
"""

from __future__ import annotations

import json
from typing import Annotated

import typer

from ioc.api_commands import api_app, tokens_app
from ioc.console import console, err_console, settings_from
from ioc.dashboards_commands import dashboards_app
from ioc.db_commands import db_app
from ioc.dev_commands import demo_command, dev_app
from ioc.paging_commands import (
    notifier_command,
    oncall_app,
    pages_app,
    paging_app,
    silences_app,
)
from ioc.rules_commands import incidents_app, rules_app
from ioc.schemas_commands import schemas_app
from ioc.simulate_command import simulate_command
from ioc.wall_commands import wall_app
from ioc.worker_commands import dlq_app, topics_app, worker_command
from streams.logs import configure_logging
from streams.settings import SettingsError, load_settings, masked

app = typer.Typer(
    name="ioc",
    help="City intelligent operations center: Kafka -> Faust -> TimescaleDB -> Grafana.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
config_app = typer.Typer(help="Inspect the effective settings.", no_args_is_help=True)
app.add_typer(config_app, name="config")


@app.callback()
def root(
    ctx: typer.Context,
    log_level: Annotated[
        str | None, typer.Option(help="Override IOC_LOG_LEVEL (DEBUG, INFO, WARNING, ERROR).")
    ] = None,
) -> None:
    overrides = {"log_level": log_level.upper()} if log_level else {}
    try:
        settings = load_settings(**overrides)
    except SettingsError as exc:
        err_console.print("[bold red]error:[/] invalid settings", highlight=False)
        for problem in exc.problems:
            err_console.print(f"  {problem}", highlight=False, soft_wrap=True)
        raise typer.Exit(2) from None
    configure_logging(settings.log_level, settings.log_format)
    ctx.obj = settings


@config_app.command("show")
def config_show(
    ctx: typer.Context,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print JSON instead of env lines.")
    ] = False,
) -> None:
    """Print the effective settings; secrets are masked."""
    data = masked(settings_from(ctx))
    if as_json:
        console.print_json(json.dumps(data))
        return
    for name, value in flatten(data):
        console.print(f"{name}={value}", highlight=False, soft_wrap=True)


def flatten(data: dict[str, object], prefix: str = "IOC_") -> list[tuple[str, object]]:
    rows: list[tuple[str, object]] = []
    for key, value in data.items():
        name = f"{prefix}{key.upper()}"
        if isinstance(value, dict):
            rows.extend(flatten(value, name + "__"))
        else:
            rows.append((name, value))
    return rows


app.add_typer(dev_app, name="dev")
app.add_typer(db_app, name="db")
app.command("demo")(demo_command)
app.add_typer(schemas_app, name="schemas")
app.command("simulate")(simulate_command)
app.command("worker")(worker_command)
app.add_typer(topics_app, name="topics")
app.add_typer(dlq_app, name="dlq")
app.add_typer(rules_app, name="rules")
app.add_typer(incidents_app, name="incidents")
app.command("notifier")(notifier_command)
app.add_typer(paging_app, name="paging")
app.add_typer(silences_app, name="silences")
app.add_typer(oncall_app, name="oncall")
app.add_typer(pages_app, name="pages")
app.add_typer(api_app, name="api")
app.add_typer(tokens_app, name="tokens")
app.add_typer(dashboards_app, name="dashboards")
app.add_typer(wall_app, name="wall")


def main() -> None:
    app()
