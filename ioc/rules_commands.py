"""`ioc rules check DIR | list | replay` and `ioc incidents list | show | ack | resolve | comment`."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import psycopg
import typer
from psycopg.rows import dict_row
from rich.table import Table

from ioc.console import connect, console, fail, settings_from
from rules import RuleError, RuleSet, load_rule_files, load_rules
from rules.engine import Observation, Outcome, apply, group, type_name
from rules.load import directory_files
from sinks.incidents import IncidentActionError, act
from streams.settings import Settings

rules_app = typer.Typer(help="Rules as data: check, list, replay.", no_args_is_help=True)
incidents_app = typer.Typer(help="Incidents: list, show, acknowledge, resolve, comment.",
                            no_args_is_help=True)  # fmt: skip


def _ruleset(settings: Settings, directory: Path | None = None) -> RuleSet:
    try:
        if directory is None:
            return load_rules(settings.rules)
        return load_rule_files(directory_files(directory))
    except RuleError as exc:
        raise fail("invalid rules:\n  " + "\n  ".join(exc.problems), code=2) from None


@rules_app.command("check")
def check(
    directory: Annotated[Path, typer.Argument(help="A directory of *.yaml rule files.")],
) -> None:
    """Validate rule files without starting anything; exit 2 naming the file, rule and field."""
    try:
        ruleset = load_rule_files(directory_files(directory))
    except RuleError as exc:
        raise fail("invalid rules:\n  " + "\n  ".join(exc.problems), code=2) from None
    console.print(f"{len(ruleset)} rules valid in {directory}", highlight=False)


@rules_app.command("list")
def list_rules(ctx: typer.Context) -> None:
    """The active rules (shipped defaults and IOC_RULES__DIR), with where each comes from."""
    settings = settings_from(ctx)
    ruleset = _ruleset(settings)
    table = Table(
        title=f"{len(ruleset)} rules"
        + ("" if settings.rules.enabled else " (rules are off: IOC_RULES__ENABLED=false)")
    )
    for column in ("id", "kind", "domain", "severity", "enabled", "file"):
        table.add_column(column)
    for rule in ruleset:
        table.add_row(rule.id, rule.kind, rule.domain, rule.severity, "yes" if rule.enabled else "no",
                      ruleset.origin.get(rule.id, ""))  # fmt: skip
    console.print(table)


STORED = """
SELECT e.time, e.domain, e.type, e.source, e.entity_id, e.zone_id, e.data::text,
       coalesce(jsonb_object_agg(m.metric, m.value) FILTER (WHERE m.metric IS NOT NULL), '{}')
FROM events e
LEFT JOIN measurements m ON m.time = e.time AND m.entity_id = e.entity_id AND m.domain = e.domain
WHERE e.time >= %s AND e.time < %s
GROUP BY e.time, e.source, e.id, e.domain, e.type, e.entity_id, e.zone_id, e.data::text
ORDER BY e.time, e.source, e.id"""


def stored_observations(conninfo: str, start: datetime, end: datetime) -> Iterator[Observation]:
    """The stored events of [start, end) in event-time order, as the rules see them."""
    with psycopg.connect(conninfo) as conn, conn.cursor(name="ioc_replay") as cur:
        cur.itersize = 5000
        cur.execute(STORED, (start, end))
        for time, domain, type_, source, entity, zone, data, values in cur:
            yield Observation(
                time.astimezone(UTC), domain, type_name(type_), source, entity, zone, values, data
            )


def replay(
    ruleset: RuleSet, observations: Iterator[Observation], batch_size: int = 5000
) -> Outcome:
    """Run observations through `ruleset` in memory, in batches: nothing is written."""
    states: dict[tuple[str, str], dict[str, Any]] = {}
    total = Outcome()
    batch: list[Observation] = []

    def flush() -> None:
        plan = group(ruleset, batch)
        out = apply(ruleset, plan, {k: states[k] for k in plan if k in states})
        states.update(out.states)
        total.incidents.update(out.incidents)
        for incident_id, transitions in out.transitions.items():
            total.transitions.setdefault(incident_id, []).extend(transitions)
        total.late_for_rule.update(out.late_for_rule)
        total.errors.update(out.errors)
        batch.clear()

    for obs in observations:
        batch.append(obs)
        if len(batch) >= batch_size:
            flush()
    if batch:
        flush()
    return total


@rules_app.command("replay")
def replay_command(
    ctx: typer.Context,
    start: Annotated[
        datetime, typer.Option("--from", help="Event time from (inclusive, ISO 8601).")
    ],
    end: Annotated[datetime, typer.Option("--to", help="Event time to (exclusive).")],
    rules_dir: Annotated[
        Path | None,
        typer.Option("--rules", help="Try these rule files instead of the active ones."),
    ] = None,
) -> None:
    """Run stored events through a rule set in memory and print the incidents that would have
    opened. Touches no live incident or rule state: test a rule change before it goes live."""
    settings = settings_from(ctx)
    if start.tzinfo is None or end.tzinfo is None:
        raise fail("--from and --to need a time zone (e.g. 2026-07-01T00:00:00+07:00)", code=2)
    ruleset = _ruleset(settings, rules_dir).enabled()
    out = replay(ruleset, stored_observations(settings.db.conninfo("ingest"), start, end))
    table = Table(
        title=f"replay {start.isoformat()} .. {end.isoformat()}: {len(out.incidents)} incidents"
    )
    for column in ("rule", "key", "zone", "opened", "state", "count", "peak", "id"):
        table.add_column(column)
    for incident in sorted(out.incidents.values(), key=lambda i: (i["opened_at"], i["id"])):
        table.add_row(incident["rule"], incident["key"], incident.get("zone") or "",
                      incident["opened_at"], incident["state"], str(incident["count"]),
                      str(incident.get("peak")), incident["id"])  # fmt: skip
    console.print(table)
    late = sum(out.late_for_rule.values())
    if late or out.errors:
        console.print(f"late for rule: {late}; rule errors: {dict(out.errors)}", highlight=False)


# -- incidents ---------------------------------------------------------------------------------


@incidents_app.command("list")
def incidents_list(
    ctx: typer.Context,
    state: Annotated[str | None, typer.Option(help="open, acknowledged or resolved.")] = None,
    limit: Annotated[int, typer.Option(min=1, max=10_000)] = 50,
) -> None:
    """The newest incidents."""
    settings = settings_from(ctx)
    with connect(settings, "api") as conn, conn.cursor(row_factory=dict_row) as cur:
        rows = cur.execute(
            "SELECT * FROM incidents WHERE %(state)s::text IS NULL OR state = %(state)s"
            " ORDER BY opened_at DESC LIMIT %(limit)s", {"state": state, "limit": limit},
        ).fetchall()  # fmt: skip
    table = Table(title=f"{len(rows)} incidents")
    for column in (
        "opened (event time)",
        "state",
        "severity",
        "rule",
        "zone",
        "count",
        "flapping",
        "id",
    ):
        table.add_column(column)
    for row in rows:
        table.add_row(f"{row['opened_at']:%Y-%m-%d %H:%M:%S%z}", row["state"], row["severity"],
                      row["rule_id"], row["zone_id"] or "", str(row["count"]),
                      str(row["flap_count"]) if row["flapping"] else "", str(row["id"]))  # fmt: skip
    console.print(table)


@incidents_app.command("show")
def incidents_show(ctx: typer.Context, incident_id: str) -> None:
    """One incident with its history."""
    settings = settings_from(ctx)
    with connect(settings, "api") as conn, conn.cursor(row_factory=dict_row) as cur:
        row = cur.execute("SELECT * FROM incidents WHERE id::text = %s", (incident_id,)).fetchone()
        if row is None:
            raise fail(f"no incident {incident_id}")
        history = cur.execute(
            "SELECT * FROM incident_events WHERE incident_id = %s ORDER BY id", (row["id"],)
        ).fetchall()
    console.print(f"[bold]{row['title']}[/] ({row['severity']}, {row['state']})\n"
                  f"  {row['description_vi']}\n  {row['description_en']}", highlight=False)  # fmt: skip
    for name in ("id", "rule_id", "zone_id", "entity_id", "opened_at", "last_seen", "resolved_at",
                 "resolved_by", "acknowledged_at", "acknowledged_by", "count", "last_value",
                 "peak_value", "previous_id", "flapping", "flap_count", "entities",
                 "trigger_values", "version"):  # fmt: skip
        console.print(f"  {name}: {row[name]}", highlight=False)
    for event in history:
        console.print(f"  {event['at']:%Y-%m-%d %H:%M:%S%z} v{event['version']} {event['kind']} "
                      f"by {event['actor']} via {event['channel']} {event['detail'] or ''}",
                      highlight=False)  # fmt: skip


def _act(ctx: typer.Context, incident_id: str, action: str, actor: str, note: str | None) -> None:
    settings = settings_from(ctx)
    with connect(settings, "api") as conn:
        try:
            row = act(conn, incident_id, action, actor, "cli", note)
        except IncidentActionError as exc:
            raise fail(str(exc)) from None
    console.print(
        f"incident {row['id']} is {row['state']} (version {row['version']})", highlight=False
    )


Actor = Annotated[str, typer.Option("--by", help="Who acts (the duty officer's name or id).")]


@incidents_app.command("ack")
def incidents_ack(ctx: typer.Context, incident_id: str, by: Actor,
                  note: Annotated[str | None, typer.Option()] = None) -> None:  # fmt: skip
    """Acknowledge an open incident."""
    _act(ctx, incident_id, "acknowledge", by, note)


@incidents_app.command("resolve")
def incidents_resolve(ctx: typer.Context, incident_id: str, by: Actor,
                      note: Annotated[str | None, typer.Option()] = None) -> None:  # fmt: skip
    """Resolve an incident by hand. If its condition still holds, the rule opens nothing more
    until the condition has cleared and been raised again."""
    _act(ctx, incident_id, "resolve", by, note)


@incidents_app.command("comment")
def incidents_comment(ctx: typer.Context, incident_id: str, by: Actor,
                      text: Annotated[str, typer.Argument(help="The comment.")]) -> None:  # fmt: skip
    """Add a comment to an incident's history."""
    _act(ctx, incident_id, "comment", by, text)
