"""`ioc dev up | down | status | logs` and the foundation's `ioc demo`."""

from __future__ import annotations

import asyncio
import shlex
import subprocess
import time
from typing import Annotated

import typer
from rich.table import Table

from ioc.console import console, fail, settings_from
from localdev.kafka_secure import acl_command_lines, acl_plan
from localdev.runtime import LocalKafka, RuntimeProblem, components, log_files, state_dir
from streams.settings import Settings

dev_app = typer.Typer(
    help="The local runtime: a real Kafka and PostgreSQL under .local/.", no_args_is_help=True
)


@dev_app.command("up")
def up(
    ctx: typer.Context,
    secure: Annotated[
        bool,
        typer.Option(
            "--secure",
            help="Kafka with SASL/SCRAM-SHA-512 over TLS, one principal per system and ACLs "
            "(same as IOC_DEV__KAFKA_SECURE=true); credentials in .local/kafka/secure/*.env.",
        ),
    ] = False,
) -> None:
    """Install what is missing, start PostgreSQL and Kafka, wait until both answer."""
    settings = secure_settings(settings_from(ctx), secure)
    for component in components(settings):
        started = time.monotonic()
        with console.status(f"starting {component.name}..."):
            try:
                outcome = component.start()
            except RuntimeProblem as exc:
                raise fail(str(exc)) from None
        console.print(
            f"{component.name}: {outcome} ({time.monotonic() - started:.1f}s)", highlight=False
        )
    print_status(ctx)


def secure_settings(settings: Settings, secure: bool) -> Settings:
    if not secure or settings.dev.kafka_secure:
        return settings
    return settings.model_copy(
        update={"dev": settings.dev.model_copy(update={"kafka_secure": True})}
    )


@dev_app.command("credentials")
def credentials(
    ctx: typer.Context,
    principal: Annotated[
        str, typer.Argument(help="ioc-worker, ioc-operator, ioc-simulator, ioc-producer-<domain>")
    ],
) -> None:
    """The IOC_KAFKA__* settings of a process that runs as `principal` against the secure local
    Kafka, as shell lines: `eval "$(ioc dev credentials ioc-operator)"`."""
    settings = settings_from(ctx)
    kafka = LocalKafka(settings)
    if kafka.running_mode() != "secure":
        raise fail("the local Kafka was not started with `ioc dev up --secure`")
    files = kafka.secure_files
    if principal not in files.passwords() or principal == "keystore":
        known = ", ".join(sorted(u for u in files.passwords() if u != "keystore"))
        raise fail(f"unknown principal {principal!r}; one of {known}", code=2)
    for name, value in files.client_env(principal, f"127.0.0.1:{kafka.port}").items():
        print(f"export {name}={shlex.quote(value)}")


@dev_app.command("acls")
def acls(
    ctx: typer.Context,
    apply: Annotated[
        bool, typer.Option("--apply", help="Grant them on the secure local Kafka (as admin).")
    ] = False,
) -> None:
    """Every ACL the platform needs for the current settings (topic prefix, app id), as
    `kafka-acls` lines for a production cluster; `--apply` grants them on the local one."""
    settings = settings_from(ctx)
    plan = acl_plan(settings)
    if apply:
        kafka = LocalKafka(settings)
        if kafka.running_mode() != "secure" or not kafka.pid():
            raise fail("the local Kafka does not run in secure mode (`ioc dev up --secure`)")
        console.print(f"granted {kafka.grant(settings)} ACL bindings", highlight=False)
        return
    for line in acl_command_lines(plan, settings.kafka.bootstrap):
        print(line)


@dev_app.command("down")
def down(ctx: typer.Context) -> None:
    """Stop Kafka and PostgreSQL cleanly; their data stays under .local/."""
    settings = settings_from(ctx)
    for component in reversed(components(settings)):
        try:
            outcome = component.stop()
        except RuntimeProblem as exc:
            raise fail(str(exc)) from None
        console.print(f"{component.name}: {outcome}", highlight=False)


@dev_app.command("status")
def status(
    ctx: typer.Context,
    quiet: Annotated[
        bool, typer.Option("--quiet", "-q", help="Print nothing; exit 0 only if all are up.")
    ] = False,
) -> None:
    """Each component's version, address, pid and health. Exit 1 if any is not up."""
    healthy = print_status(ctx, quiet=quiet)
    if not healthy:
        raise typer.Exit(1)


def print_status(ctx: typer.Context, *, quiet: bool = False) -> bool:
    settings = settings_from(ctx)
    rows = [component.status() for component in components(settings)]
    if not quiet:
        table = Table(title=f"local runtime ({state_dir(settings)})")
        for column in ("component", "version", "address", "pid", "health", "detail"):
            table.add_column(column)
        for row in rows:
            colour = "green" if row.healthy else "red"
            table.add_row(
                row.name, row.version, row.address, str(row.pid or "-"),
                f"[{colour}]{row.health}[/]", row.detail,
            )  # fmt: skip
        console.print(table)
    return all(row.healthy for row in rows)


@dev_app.command("logs")
def logs(
    ctx: typer.Context,
    component: Annotated[str, typer.Argument(help="kafka or postgres")] = "kafka",
    lines: Annotated[int, typer.Option("--lines", "-n", min=1)] = 50,
    follow: Annotated[bool, typer.Option("--follow", "-f")] = False,
) -> None:
    """Show the last lines of a component's log (or follow it)."""
    files = log_files(settings_from(ctx))
    if component not in files:
        raise fail(f"unknown component {component!r}; choose one of {', '.join(files)}", code=2)
    path = files[component]
    if not path.exists():
        raise fail(f"{path} does not exist yet; start the runtime with `ioc dev up`")
    subprocess.run(["tail", "-n", str(lines), *(["-f"] if follow else []), str(path)], check=False)


@dev_app.command("smoke")
def smoke_command(
    ctx: typer.Context,
    events: Annotated[int, typer.Option(min=1, max=1_000_000, help="How many events.")] = 5000,
) -> None:
    """Round trip: produce, consume as a group, store in PostgreSQL, and count."""
    from localdev.smoke import run_smoke

    settings = settings_from(ctx)
    try:
        report = asyncio.run(run_smoke(settings, events))
    except RuntimeProblem as exc:
        raise fail(str(exc)) from None
    table = Table(title="smoke: broker and database round trip")
    table.add_column("step")
    table.add_column("count", justify="right")
    table.add_column("seconds", justify="right")
    for step, count, seconds in report.rows():
        table.add_row(step, f"{count:,}", f"{seconds:.2f}")
    console.print(table)
    if not report.complete:
        raise fail(f"lost events: produced {report.produced}, stored {report.stored}")


def demo_command(
    ctx: typer.Context,
    duration: Annotated[
        int, typer.Option(min=5, max=3600, help="Seconds of simulated traffic.")
    ] = 60,
    rate: Annotated[float, typer.Option(min=1, max=100_000, help="Events per second.")] = 2000.0,
    faults: Annotated[
        float, typer.Option(min=0, max=0.05, help="Rate of each fault kind.")
    ] = 0.002,
    scenario: Annotated[
        str,
        typer.Option(
            help="A scripted scenario (flood, festival-crowd, coastal-storm) whose incidents are "
            "shown beside its manifest's, or `none`."
        ),
    ] = "flood",
) -> None:
    """Simulator -> Kafka -> worker -> database for a minute, then who got what, per domain,
    the scenario's incidents (opened, repeated, resolved) against its manifest, and the pages
    `ioc notifier` sent about them to a local SMTP server (one grouped page, one escalation)."""
    from localdev.demo import run_demo, summary_table
    from simulator.profiles import SCRIPTS

    if scenario != "none" and scenario not in SCRIPTS:
        raise fail(f"--scenario: one of {', '.join(SCRIPTS)} or none", 2)
    settings = settings_from(ctx)
    try:
        result = run_demo(
            settings, duration_s=duration, rate=rate, faults=faults, console=console,
            scenario=None if scenario == "none" else scenario,
        )  # fmt: skip
    except RuntimeProblem as exc:
        raise fail(str(exc)) from None
    console.print(summary_table(result, settings.stream.late_horizon_s))
    if not result.complete(settings.stream.late_horizon_s):
        raise fail("the counts do not match the simulator's manifest (see .local/demo/)")
    if not result.paging_ok():
        raise fail(
            "the pages are not one grouped page and one escalation step for the scenario's zone "
            f"(see {result.work}/notifier.log and {result.work}/paging.yaml)"
        )
