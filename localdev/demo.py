"""`ioc demo`: the simulator through a real worker into the database, and an account of it.

Steps: migrate the database, create the topics, start one `ioc worker` (a child process), run
`ioc simulate` for the given time with faults (a progress bar shows its time), wait until every
sent event is accounted for, print one table per domain, stop the worker. Counts are read from
the database and the DLQ topic (before/after), not from the worker's own figures. Each run uses
a fresh seed, so its event ids are new and nothing is a duplicate of an earlier run.

One table, one truth: what the database and the DLQ topic hold. The simulator's own table (what
it meant each message to become, before the worker's late horizon turns old events into
`too_late` dead letters) goes to `<state dir>/demo/simulate.log` with its manifest; the demo
compares its counts with that manifest under the worker's horizon, says so under the table, and
on a mismatch prints what the manifest expected beside what was found, labelled as such.

A scripted scenario runs in the traffic (`flood` by default): its manifest lists the incidents the
shipped default rules must open and resolve, with event times. After the counts, a second table
shows the incidents the worker opened during the run: each one's opening, its repeats (one
incident however many breaching readings) and its resolution, beside the manifest's, and says
whether they are equal. Incidents of other rules (background noise elsewhere) are counted apart.
A scenario's event times go back 55 minutes, so a second demo within the hour would send times
the rules have already passed for the zone's keys (late for the rules): before each scenario run,
the demo forgets the rule state of the scenario zone's keys that hold no open incident.

With a scenario, the demo pages too (localdev.demo_paging): it starts a local SMTP server and
`ioc notifier` (a child process) with the demo's paging file, whose secrets point at that server.
At the end, a third table lists the pages the server received, and says whether the scenario's
zone got ONE grouped page listing its incidents and whether the on-call chain escalated exactly
once; the demo exits non-zero if not.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
from rich.console import Console, Group, RenderableType
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from localdev.accounting import (
    Observed,
    group_lag,
    observe,
    split_expected,
    wait_until_accounted,
)
from localdev.demo_paging import (
    DemoPaging,
    LinkAck,
    ReceivedPage,
    link_verdict,
    muted,
    page_verdict,
    pages_table,
    received_pages,
    settle_earlier,
)
from localdev.processes import ChildCommand, wait_http_ok
from localdev.runtime import RuntimeProblem, state_dir
from simulator.generate import SCENARIO_ZONES, Manifest
from sinks.migrate import migrate
from streams.net import port_is_free
from streams.pipeline import ensure_topics, registry_for
from streams.settings import Settings


@dataclass
class DemoResult:
    manifest: Manifest
    before: Observed
    after: Observed
    seconds: float
    work: Path = Path(".local/demo")  # the worker's log, the simulator's log and manifest
    #: incidents opened during a scenario run (rows of `incidents`, event times), if one ran
    incidents: list[dict[str, Any]] | None = None
    #: the pages the demo's SMTP server received, if the notifier ran (with a scenario)
    pages: list[ReceivedPage] | None = None
    #: the escalation chain's roles, in order, and when the notifier started
    chain: tuple[str, ...] = ()
    #: why each scenario incident the notifier routed was muted ("" if it was not)
    mutes: dict[str, str] = field(default_factory=dict)
    paging_since: datetime | None = None
    #: the demo's officer acknowledging through a page's link
    link_ack: LinkAck | None = None

    def stored(self, domain: str) -> int:
        return self.after.stored[domain] - self.before.stored[domain]

    def dead(self, domain: str) -> Counter[str]:
        after = self.after.dead.get(domain, Counter())
        before = self.before.dead.get(domain, Counter())
        return Counter({r: after[r] - before[r] for r in after if after[r] - before[r] > 0})

    def duplicates(self, domain: str) -> int:
        return (
            self.manifest.sent.get(domain, 0)
            - self.stored(domain)
            - sum(self.dead(domain).values())
        )

    def complete(self, horizon_s: float) -> bool:
        return not self.mismatched(horizon_s)

    def scenario_incidents(self) -> list[dict[str, Any]]:
        """The run's incidents in the scenario's zone or of a compound rule, as the manifest
        lists them (rule, zone, entity, key, opened_at, resolved_at)."""
        zone = (self.manifest.run.get("scenario") or {}).get("zone_id")
        return [
            _listed(i)
            for i in self.incidents or []
            if i["zone"] == zone or i["rule"].startswith("compound.")
        ]

    def scenario_zone(self) -> str | None:
        return (self.manifest.run.get("scenario") or {}).get("zone_id")

    def paging(self) -> tuple[bool, str] | None:
        """The page check's verdict (see localdev.demo_paging.page_verdict), if pages were taken."""
        zone = self.scenario_zone()
        if self.pages is None or zone is None:
            return None
        ok, sentence = page_verdict(self.pages, zone, self.scenario_ids(), self.mutes,
                                    list(self.chain))  # fmt: skip
        if len(self.chain) < 2:
            return ok, sentence
        linked, how = link_verdict(self.link_ack, self.chain[1])
        return ok and linked, f"{sentence}\n{how}"

    def scenario_ids(self) -> set[str]:
        """The ids of the run's incidents of the scenario's rules in its zone."""
        zone = self.scenario_zone()
        rules = {i["rule"] for i in self.manifest.incidents}
        return {i["id"] for i in self.incidents or [] if i["zone"] == zone and i["rule"] in rules}

    def paging_ok(self) -> bool:
        verdict = self.paging()
        return verdict is None or verdict[0]

    def incidents_match(self) -> bool:
        if self.incidents is None:
            return True
        return self.scenario_incidents() == self.manifest.incidents

    def mismatched(self, horizon_s: float) -> list[str]:
        """Domains whose counts differ from the manifest's expectation under `horizon_s`."""
        stored, dead, duplicates = split_expected(self.manifest.expected(late_horizon_s=horizon_s))
        return [
            d
            for d in sorted(self.manifest.sent)
            if self.stored(d) != stored.get(d, 0)
            or self.dead(d) != +dead.get(d, Counter())
            or self.duplicates(d) != duplicates.get(d, 0)
        ]


def run_demo(
    settings: Settings,
    *,
    duration_s: int,
    rate: float,
    faults: float,
    console: Console,
    scenario: str | None = "flood",
) -> DemoResult:
    registry = registry_for(settings)
    work = state_dir(settings) / "demo"
    work.mkdir(parents=True, exist_ok=True)
    try:
        with psycopg.connect(settings.db.conninfo("owner")) as conn:
            ran = migrate(conn, settings.db, settings.storage)
    except psycopg.OperationalError as exc:
        raise RuntimeProblem(
            f"cannot reach the database ({exc}); start it with `ioc dev up`"
        ) from exc
    console.print(
        f"database {settings.db.name} (flavour {settings.db.flavour}): {len(ran)} migrations applied"
    )
    asyncio.run(ensure_topics(settings, registry))

    port = settings.stream.web_port
    if not port_is_free(port):
        raise RuntimeProblem(
            f"port {port} for the worker's web server is taken; set IOC_STREAM__WEB_PORT"
        )
    worker = ChildCommand(["worker"], work / "worker.log").start()
    paging: DemoPaging | None = None
    pages: list[ReceivedPage] | None = None
    mutes: dict[str, str] = {}
    try:
        wait_http_ok(f"http://127.0.0.1:{port}/metrics", timeout=90, child=worker)
        console.print(f"worker started (pid {worker.pid}, log {worker.log_path})")
        catch_up(settings, registry, worker, console)
        demo_start = datetime.now(UTC)
        if scenario:
            forget_zone_state(settings, scenario)
            transitions, groups = settle_earlier(settings)
            if transitions or groups:
                console.print(
                    f"paging: {transitions:,} transitions of earlier runs marked routed and "
                    f"{groups:,} page groups still active closed, so that the demo pages only "
                    "what this run causes"
                )
            paging = DemoPaging(settings, work, duration_s, SCENARIO_ZONES[scenario]).start()
            console.print(
                f"notifier started (pid {paging.notifier.pid}, log {paging.notifier.log_path}), "
                f"paging through a local SMTP server on 127.0.0.1:{paging.mail.port} "
                f"with {paging.file}"
            )
        before = observe(settings, registry)
        seed = random.SystemRandom().randrange(1, 2**31)
        manifest_path = work / "manifest.json"
        started = time.monotonic()
        simulate = ChildCommand(
            [
                "simulate", "--rate", str(rate), "--duration", f"{duration_s}s",
                "--faults", str(faults), "--seed", str(seed), "--manifest", str(manifest_path),
                *(["--scenario", scenario] if scenario else []),
            ],
            work / "simulate.log",
        )  # fmt: skip
        simulate.log_path.unlink(missing_ok=True)
        code = run_with_progress(simulate, duration_s, console)
        if code != 0:
            raise RuntimeProblem(
                f"the simulator exited with {code}; the end of {simulate.log_path}:\n"
                f"{simulate.log_tail(20)}"
            )
        manifest = Manifest.from_json(manifest_path.read_bytes())
        stored, dead, _ = split_expected(
            manifest.expected(late_horizon_s=settings.stream.late_horizon_s)
        )
        with console.status("waiting until every event is accounted for..."):
            after = wait_until_accounted(
                settings, registry,
                expected_dead={d: before.dead_total(d) + sum(dead[d].values()) for d in dead},
                expected_stored={d: before.stored[d] + stored[d] for d in stored},
                timeout_s=180,
            )  # fmt: skip
        seconds = time.monotonic() - started
        time.sleep(settings.stream.stats_interval_s + 1)  # one more stats window for latency
        after.latency_p95_s = observe(settings, registry, since=demo_start).latency_p95_s
        incidents = run_incidents(settings, demo_start) if scenario else None
        if paging is not None:
            with console.status("waiting until the scenario's pages are sent..."):
                paging.settle(manifest.run.get("scenario", {}).get("zone_id"),
                              timeout=max(30.0, float(duration_s)))  # fmt: skip
            pages = received_pages(settings, paging.mail.mails)
            mutes = muted(settings, [i["id"] for i in incidents or []])
    finally:
        if paging is not None:
            paging.stop()
        worker.stop(30)
    return DemoResult(
        manifest, before, after, seconds, work, incidents, pages,
        tuple(paging.chain) if paging else (), mutes, paging.started if paging else None,
        paging.link_ack if paging else None,
    )  # fmt: skip


def _listed(incident: dict[str, Any]) -> dict[str, Any]:
    """An incident as the manifest lists it."""
    return {k: incident[k] for k in ("rule", "zone", "entity", "key", "opened_at", "resolved_at")}


RUN_INCIDENTS = """
SELECT i.id::text, i.rule_id, i.zone_id, i.entity_id, i.key, i.opened_at, i.resolved_at, i.count,
  (SELECT count(*) FROM incident_events e WHERE e.incident_id = i.id AND e.kind = 'updated')
FROM incidents i WHERE i.created_at >= %s
ORDER BY i.opened_at, i.rule_id, i.entity_id"""

# The zone's key and its entities' keys (entity ids carry their zone: <prefix>-<zone>-<n>).
FORGET_ZONE_STATE = """
DELETE FROM rule_state
WHERE (key = %(zone)s OR key LIKE '%%-' || %(zone)s || '-%%')
  AND coalesce(state->'inc', 'null'::jsonb) = 'null'::jsonb"""


def forget_zone_state(settings: Settings, scenario: str) -> None:
    zone = SCENARIO_ZONES[scenario]
    with psycopg.connect(settings.db.conninfo("owner")) as conn:
        conn.execute(FORGET_ZONE_STATE, {"zone": zone})


def run_incidents(settings: Settings, since: datetime) -> list[dict[str, Any]]:
    """The incidents the worker opened since `since` (wall time; their times are event times)."""
    with psycopg.connect(settings.db.conninfo("owner")) as conn:
        rows = conn.execute(RUN_INCIDENTS, (since,)).fetchall()
    return [
        {
            "id": incident_id,
            "rule": rule,
            "zone": zone,
            "entity": entity,
            "key": key,
            "opened_at": _iso(opened),
            "resolved_at": None if resolved is None else _iso(resolved),
            "count": count,
            "updates": updates,
        }
        for incident_id, rule, zone, entity, key, opened, resolved, count, updates in rows
    ]


def _iso(t: datetime) -> str:
    return t.astimezone(UTC).isoformat(timespec="milliseconds")


def run_with_progress(child: ChildCommand, duration_s: int, console: Console) -> int | None:
    """Run `child` (output to its log) with a bar over its `duration_s`; its exit code."""
    columns = (TextColumn("simulating"), BarColumn(), TimeElapsedColumn(), TextColumn("{task.description}"))  # fmt: skip
    with Progress(*columns, console=console, transient=True) as progress:
        task = progress.add_task(f"log: {child.log_path}", total=duration_s)
        child.start()
        started = time.monotonic()
        while (code := child.wait(0.25)) is None:
            progress.update(task, completed=min(duration_s, time.monotonic() - started))
    return code


def catch_up(settings: Settings, registry: Any, worker: ChildCommand, console: Console) -> None:
    """Wait until the worker has committed what was already in the topics before this demo."""
    topics = list(registry.topics().values())
    lag = asyncio.run(group_lag(settings, settings.stream.app_id, topics))
    if lag:
        console.print(f"catching up with {lag:,} events already in the topics...")
    deadline = time.monotonic() + 600
    while lag and time.monotonic() < deadline:
        if not worker.running():
            raise RuntimeProblem(f"the worker exited:\n{worker.log_tail()}")
        time.sleep(2)
        lag = asyncio.run(group_lag(settings, settings.stream.app_id, topics))
    if lag:
        raise RuntimeProblem(
            f"the worker did not catch up ({lag:,} events behind); see {worker.log_path}"
        )
    time.sleep(settings.stream.commit_interval_s + 1)


def summary_table(result: DemoResult, horizon_s: float) -> RenderableType:
    """The demo's account: what the database and the DLQ topic hold, per domain; with what the
    simulator's manifest expected beside it, for the domains that differ."""
    table = Table(
        title=f"demo: {sum(result.manifest.sent.values()):,} events sent in {result.seconds:.0f}s,"
        " counted in the database and the DLQ topic"
    )
    for column in (
        "domain",
        "sent",
        "stored",
        "duplicates",
        "DLQ by reason",
        "latency p95",
        "events/s",
    ):
        table.add_column(
            column, justify="left" if column in ("domain", "DLQ by reason") else "right"
        )
    totals = Counter[str]()
    for domain in sorted(result.manifest.sent):
        sent = result.manifest.sent[domain]
        dead = result.dead(domain)
        p95 = result.after.latency_p95_s.get(domain)
        totals.update(
            sent=sent,
            stored=result.stored(domain),
            dup=result.duplicates(domain),
            dlq=sum(dead.values()),
        )
        table.add_row(
            domain, f"{sent:,}", f"{result.stored(domain):,}", f"{result.duplicates(domain):,}",
            ", ".join(f"{r} {n}" for r, n in sorted(dead.items())) or "-",
            "-" if p95 is None else f"{p95:.2f}s", f"{sent / result.seconds:,.0f}",
        )  # fmt: skip
    table.add_row(
        "all", f"{totals['sent']:,}", f"{totals['stored']:,}", f"{totals['dup']:,}", f"{totals['dlq']:,}",
        "", f"{totals['sent'] / result.seconds:,.0f}", style="bold",
    )  # fmt: skip
    horizon = f"late horizon {horizon_s:,.0f} s"
    mismatched = result.mismatched(horizon_s)
    counts = table
    if result.incidents is not None:
        table = Group(table, incidents_table(result))  # type: ignore[assignment]
    if result.pages is not None:
        verdict = result.paging()
        since = result.paging_since or datetime.now(UTC)
        table = Group(table, pages_table(result.pages, since, result.scenario_zone(),
                                         verdict[1] if verdict else None))  # type: ignore[assignment]  # fmt: skip
    if not mismatched:
        counts.caption = (
            "every sent event accounted for: stored + duplicates + DLQ = sent, exactly as the "
            f"simulator's manifest expects under the worker's {horizon} (older events are "
            "dead letters too_late, not stored)"
        )
        return table
    counts.caption = (
        f"MISMATCH with the simulator's manifest under the worker's {horizon}: see the table "
        f"below and {result.work} (manifest.json, worker.log, simulate.log)"
    )
    return Group(table, expected_table(result, horizon_s, mismatched))


def expected_table(result: DemoResult, horizon_s: float, domains: list[str]) -> Table:
    """For `domains`: what the manifest expected (under `horizon_s`) and what was found."""
    stored, dead, duplicates = split_expected(result.manifest.expected(late_horizon_s=horizon_s))
    table = Table(
        title=f"expected by the simulator's manifest (late horizon {horizon_s:,.0f} s)"
        " / found in the database and the DLQ topic"
    )
    for column in ("domain", "stored", "duplicates", "DLQ by reason"):
        table.add_column(column, justify="left" if column != "stored" else "right")
    for domain in domains:
        table.add_row(
            domain,
            f"{stored.get(domain, 0):,} / {result.stored(domain):,}",
            f"{duplicates.get(domain, 0):,} / {result.duplicates(domain):,}",
            f"{reasons(dead.get(domain, Counter()))} / {reasons(result.dead(domain))}",
        )
    return table


def reasons(counts: Counter[str]) -> str:
    return ", ".join(f"{r} {n}" for r, n in sorted(counts.items()) if n) or "-"


def incidents_table(result: DemoResult) -> Table:
    """The scenario's incidents: opened, repeated (count, update rows), resolved, in event time,
    each beside the manifest's; other incidents of the run counted by rule."""
    scenario = result.manifest.run.get("scenario") or {}
    found = result.incidents or []
    mine = result.scenario_incidents()
    expected = result.manifest.incidents
    table = Table(
        title=f"incidents of the {scenario.get('name')} scenario in zone {scenario.get('zone_id')}"
        " (event times, UTC), from the database"
    )
    for column in ("rule", "entity", "opened", "repeats", "resolved", "manifest"):
        table.add_column(column, justify="right" if column == "repeats" else "left")
    rows = {(i["rule"], i["entity"], i["opened_at"]): i for i in found}
    for incident in mine:
        row = rows[incident["rule"], incident["entity"], incident["opened_at"]]
        table.add_row(
            incident["rule"], incident["entity"], incident["opened_at"][11:19],
            f"{row['count'] - 1:,} ({row['updates']} update rows)",
            incident["resolved_at"][11:19] if incident["resolved_at"] else "still open",
            "equal" if incident in expected else "NOT IN MANIFEST",
        )  # fmt: skip
    for incident in expected:
        if incident not in mine:
            table.add_row(
                incident["rule"], incident["entity"], incident["opened_at"][11:19], "-",
                (incident["resolved_at"] or "")[11:19], "MISSING (manifest only)",
            )  # fmt: skip
    others = Counter(i["rule"] for i in found if _listed(i) not in mine)
    verdict = (
        f"the {len(mine)} incidents equal the manifest's {len(expected)}: each opened once, "
        "repeated without a new incident, and resolved at the event times the manifest lists"
        if result.incidents_match()
        else f"MISMATCH: {len(mine)} incidents found, the manifest lists {len(expected)} (a "
        "compound rule's condition that reaches the zone's state after a newer event from another "
        "domain's agent is dropped as late_for_rule, and the incident opens on a later reading)"
    )
    verdict += (
        "; latency in the table above is measured from event time, which the scenario dates "
        "back up to 55 minutes"
    )
    background = ", ".join(f"{rule} {n}" for rule, n in sorted(others.items()))
    table.caption = verdict + (f"; elsewhere, background noise: {background}" if others else "")
    return table
