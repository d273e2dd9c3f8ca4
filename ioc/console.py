"""What every `ioc` sub-command shares: the consoles, the error exit, the loaded settings, a
database connection as one role.

The command modules import this, never `ioc.cli` (the root that imports them).
"""

from __future__ import annotations

import asyncio
import sys
from typing import Any

import psycopg
import typer
from rich.console import Console

from sinks.config import Role
from sinks.connect import connect_problem
from streams.settings import Settings

# Wide enough for tables when output goes to a file or a CI log rather than a terminal.
console = Console(width=None if sys.stdout.isatty() else 160)
err_console = Console(stderr=True, width=None if sys.stderr.isatty() else 160)


def settings_from(ctx: typer.Context) -> Settings:
    """The settings the root command loaded when the program started."""
    settings = ctx.find_root().obj
    assert isinstance(settings, Settings)
    return settings


def fail(message: str, code: int = 1) -> typer.Exit:
    err_console.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
    return typer.Exit(code)


def check_kafka(settings: Settings) -> None:
    """Connect to Kafka as this process's principal before a command starts; on failure exit 1
    naming the real cause (a wrong password, an untrusted certificate, a PLAINTEXT client at a
    secure listener), which aiokafka itself reports only as "Unable to bootstrap"."""
    from streams.kafka_auth import KafkaAccessProblem, KafkaUnreachable, probe

    try:
        asyncio.run(probe(settings.kafka))
    except KafkaUnreachable:
        return  # the command's own retries and messages handle a broker that is away
    except KafkaAccessProblem as exc:
        raise fail(str(exc)) from None


def connect(
    settings: Settings, role: Role, *, hint: str = "", **kwargs: Any
) -> psycopg.Connection[Any]:
    """A connection to the database as `role`; if it fails, exit 1 saying why (an expired
    password, a refused login, an unreachable server: sinks.connect)."""
    try:
        return psycopg.connect(settings.db.conninfo(role), **kwargs)
    except psycopg.OperationalError as exc:
        raise fail(connect_problem(exc, settings.db, role) + hint) from None
