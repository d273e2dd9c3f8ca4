"""`ioc wall snapshot --out wall.png`: the wall's panels as one PNG (dashboards.snapshot)."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Annotated

import psycopg
import typer

from ioc.console import console, fail, settings_from

wall_app = typer.Typer(help="The operations center's wall (Grafana dashboard ioc-wall).",
                       no_args_is_help=True)  # fmt: skip


@wall_app.command("snapshot")
def snapshot(
    ctx: typer.Context,
    out: Annotated[Path, typer.Option(help="Where to write the PNG.")] = Path("wall.png"),
    minutes: Annotated[
        int, typer.Option(min=5, max=7 * 24 * 60, help="The range, ending now, in minutes.")
    ] = 60,
) -> None:
    """Render the wall's panels from their own queries, run as the Grafana role, to one PNG.
    A preview for people without a Grafana at hand, not a Grafana replacement."""
    from dashboards.snapshot import ExpansionError, render_wall

    settings = settings_from(ctx)
    try:
        titles = render_wall(settings.db.conninfo("grafana"), out, span=timedelta(minutes=minutes))
    except psycopg.OperationalError as exc:
        raise fail(f"cannot reach the database as {settings.db.grafana_user}: {exc}") from None
    except (psycopg.Error, ExpansionError) as exc:
        raise fail(f"a wall query failed: {exc}") from None
    console.print(f"{out}: {len(titles)} panels", highlight=False)
