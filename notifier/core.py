"""The notifier's four steps, each one transaction over rows claimed FOR UPDATE SKIP LOCKED.

1. `route_once`: new outbox rows (incident transitions) -> page groups. An opened incident joins the
   active group of its route and group_by labels (or the storm group, when more than the storm
   threshold opened city-wide within its window); the group's flush is due after group_wait
   (critical: critical_group_wait, 0 s by default) or, once paged, group_interval after its last
   page. A resolution of a paged incident makes the group due too. An acknowledgement that leaves
   nobody unacknowledged stops the group's escalation at once.
2. `flush_once`: due groups -> pages. Each member is checked against the silences in force, the
   open compound incidents of its zone (inhibition) and its flapping flag; a muted member is
   recorded in the incident's history once and left out. A page is written when something is new
   or resolved, or as a reminder after repeat_interval, as one notification row per target.
   The first page starts the route's escalation policy.
3. `escalate_once`: groups whose next escalation step is due. If no paged incident of the group is
   still open and unacknowledged, the chain stops; otherwise the step's role (whoever is on call
   now) is paged and the next wait is scheduled from the step's due time.
4. `deliver_once`: due notifications are claimed, sent (notifier.deliver), and marked sent in the
   same transaction. A notifier killed mid-send leaves them unsent and unlocked: another notifier
   (or the next start) sends them again with the same notification id. A failed send is retried
   with a doubling wait, capped; it is never dropped.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import psycopg
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

from access.links import link
from notifier.deliver import SENDS_AT_ONCE, DeliveryError, Message, send
from paging.config import PagingSettings
from paging.model import Grouping, Notify, PagingConfig, RouteMatch, SecretRef
from paging.oncall import shift_at
from paging.pages import (
    AckLink,
    Page,
    constituents,
    group_key,
    group_wait,
    labels_of,
    quiet_until,
    render,
)
from rules.load import RuleSet
from rules.model import Correlation

STORM_KEY = "storm"
STORM_ROUTE = "storm"


@dataclass(frozen=True)
class Links:
    """One-tap acknowledgement links (access.links), signed for one officer each."""

    base_url: str
    key: bytes
    ttl: timedelta

    def maker(self, officer: str, now: datetime) -> AckLink:
        return lambda item: link(self.base_url, self.key, str(item["id"]), officer, now=now,
                                 ttl=self.ttl)  # fmt: skip


@dataclass
class Context:
    """What the steps need: the paging file, the rules (for domains and inhibition), settings,
    and the links' signer (None: pages say how to acknowledge from the CLI)."""

    config: PagingConfig
    settings: PagingSettings
    ruleset: RuleSet
    links: Links | None = None
    zone_names: dict[str, str] = field(default_factory=dict)
    compounds: dict[str, set[str]] = field(default_factory=dict)
    domains: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.compounds = constituents(self.ruleset)
        self.domains = {
            rule.id: "compound" if isinstance(rule, Correlation) else rule.domain
            for rule in self.ruleset
        }

    def labels(self, payload: Mapping[str, Any]) -> dict[str, str | None]:
        rule = payload.get("rule_id") or ""
        domain = self.domains.get(rule) or rule.split(".", 1)[0] or "unknown"
        return labels_of({**payload, "domain": domain})

    def ack_link(self, officer: str | None, now: datetime) -> AckLink | None:
        return self.links.maker(officer, now) if self.links and officer else None

    def answering(self, now: datetime) -> str | None:
        """Who answers a receiver's page: the holder of the first on-call role now."""
        oncall = self.config.oncall
        for role, rotation in oncall.roles.items():
            return shift_at(role, rotation, oncall.timezone, now).person
        return None

    def route_of(self, group: Mapping[str, Any]) -> tuple[list[str], str | None, Grouping]:
        """A group's receivers, policy and grouping (the storm's, or its route's)."""
        config = self.config
        if group["storm"] and config.storm is not None:
            storm = config.storm
            return (
                storm.receivers,
                storm.policy,
                config.grouping.model_copy(
                    update={"group_wait": storm.wait, "critical_group_wait": storm.wait}
                ),
            )
        route = config.route_named(group["route"]) or config.routes[-1]
        return route.receivers, route.policy, config.grouping_of(route)


# -- 1. outbox -> groups ------------------------------------------------------------------------

CLAIM_OUTBOX = """
SELECT id, incident_id::text AS incident_id, version, kind, payload FROM incident_outbox
WHERE paged_at IS NULL ORDER BY id LIMIT %s FOR UPDATE SKIP LOCKED"""

NEW_GROUP = """
INSERT INTO page_groups (id, group_key, route, labels, storm, policy)
VALUES (%s, %s, %s, %s, %s, %s)
ON CONFLICT (group_key) WHERE state = 'active' DO NOTHING"""

LOCK_GROUP = "SELECT * FROM page_groups WHERE group_key = %s AND state = 'active' FOR UPDATE"

ADD_MEMBER = """
INSERT INTO page_members (incident_id, group_id, version, state, labels, payload, muted_by)
VALUES (%s, %s, %s, %s, %s, %s, %s) ON CONFLICT DO NOTHING"""

SET_DUE = """
UPDATE page_groups SET next_flush_at = least(coalesce(next_flush_at, %(due)s), %(due)s)
WHERE id = %(id)s"""

# Entering a storm: groups not paged yet are folded into the storm group.
ABSORB = """
WITH folded AS (
  UPDATE page_groups SET state = 'closed', closed_at = %(now)s, next_flush_at = NULL
  WHERE state = 'active' AND NOT storm AND first_paged_at IS NULL RETURNING id)
UPDATE page_members SET group_id = %(storm)s WHERE group_id IN (SELECT id FROM folded)"""


async def route_once(conn: psycopg.AsyncConnection[Any], ctx: Context, now: datetime) -> int:
    """Route up to `claim_limit` new transitions; returns how many rows were taken."""
    async with conn.transaction(), conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(CLAIM_OUTBOX, (ctx.settings.claim_limit,))
        rows = await cur.fetchall()
        if not rows:
            return 0
        storm = ctx.config.storm
        recent = 0
        if storm is not None:
            await cur.execute("SELECT count(*) AS n FROM page_members WHERE added_at > %s",
                              (now - storm.window,))  # fmt: skip
            recent = (await cur.fetchone() or {"n": 0})["n"]
        for row in rows:
            payload = row["payload"]
            await cur.execute(
                "SELECT m.*, g.first_paged_at, g.last_paged_at, g.escalation_state FROM page_members m "
                "JOIN page_groups g ON g.id = m.group_id WHERE m.incident_id = %s FOR UPDATE OF m",
                (row["incident_id"],),
            )
            member = await cur.fetchone()
            if member is None:
                if payload.get("state") == "resolved":
                    continue  # opened and resolved before the notifier saw it open: nothing to say
                recent += 1
                in_storm = storm is not None and recent > storm.threshold
                await _add(cur, ctx, row, payload, now, in_storm)
            elif row["version"] >= member["version"]:
                await _update(cur, ctx, member, row, payload, now)
        await cur.execute("UPDATE incident_outbox SET paged_at = %s WHERE id = ANY(%s)",
                          (now, [row["id"] for row in rows]))  # fmt: skip
        return len(rows)


async def _group(cur: psycopg.AsyncCursor[Any], key: str, route: str, labels: Mapping[str, Any],
                 storm: bool, policy: str | None) -> tuple[dict[str, Any], bool]:  # fmt: skip
    """The active group of `key`, locked; and whether it was made now."""
    await cur.execute(NEW_GROUP, (uuid.uuid4(), key, route, Jsonb(labels), storm, policy))
    made = cur.rowcount == 1
    await cur.execute(LOCK_GROUP, (key,))
    group = await cur.fetchone()
    assert group is not None
    return group, made


async def _add(cur: psycopg.AsyncCursor[Any], ctx: Context, row: Mapping[str, Any],
               payload: Mapping[str, Any], now: datetime, in_storm: bool) -> None:  # fmt: skip
    labels = ctx.labels(payload)
    if in_storm:
        group, made = await _group(cur, STORM_KEY, STORM_ROUTE, {}, True, ctx.config.storm.policy
                                   if ctx.config.storm else None)  # fmt: skip
        if made:
            await cur.execute(ABSORB, {"now": now, "storm": group["id"]})
    else:
        route = ctx.config.route_for(labels)
        grouping = ctx.config.grouping_of(route)
        key = group_key(route, grouping, labels)
        shown = {label: labels.get(label) for label in grouping.group_by}
        group, _ = await _group(cur, key, route.name, shown, False, route.policy)
    _receivers, _policy, grouping = ctx.route_of(group)
    muted = "flapping" if payload.get("flapping") else None
    await cur.execute(ADD_MEMBER, (row["incident_id"], group["id"], row["version"],
                                   payload.get("state", "open"), Jsonb(labels), Jsonb(payload),
                                   muted))  # fmt: skip
    if muted:  # not paged; the group's next reminder carries its count
        due = (group["last_paged_at"] or now) + grouping.repeat_interval
    elif group["first_paged_at"] is None:
        due = now + group_wait(grouping, labels.get("severity"))
    else:
        due = max(now, group["last_paged_at"] + grouping.group_interval)
    await cur.execute(SET_DUE, {"due": due, "id": group["id"]})


async def _update(cur: psycopg.AsyncCursor[Any], ctx: Context, member: Mapping[str, Any],
                  row: Mapping[str, Any], payload: Mapping[str, Any],
                  now: datetime) -> None:  # fmt: skip
    state = payload.get("state", member["state"])
    await cur.execute(
        "UPDATE page_members SET version = %s, state = %s, payload = %s WHERE incident_id = %s",
        (row["version"], state, Jsonb(payload), row["incident_id"]),
    )
    if state == "resolved" and member["paged_at"] is not None and member["muted_by"] is None:
        await cur.execute(
            "SELECT * FROM page_groups WHERE id = %s FOR UPDATE", (member["group_id"],)
        )
        group = await cur.fetchone()
        assert group is not None
        _r, _p, grouping = ctx.route_of(group)
        due = max(now, (group["last_paged_at"] or now) + grouping.group_interval)
        await cur.execute(SET_DUE, {"due": due, "id": group["id"]})
    if state == "resolved" and payload.get("rule_id") in ctx.compounds:
        # what it muted is looked at again now: still open and never paged -> paged
        await cur.execute(
            "UPDATE page_groups SET next_flush_at = %s WHERE state = 'active' AND id IN "
            "(SELECT group_id FROM page_members WHERE muted_by = %s)",
            (now, f"inhibited:{row['incident_id']}"),
        )
    if state != "open" and member["escalation_state"] == "running":
        await _stop_if_answered(cur, member["group_id"], now)


# -- 2. groups -> pages -------------------------------------------------------------------------


@dataclass(frozen=True)
class Silence:
    id: str
    matchers: RouteMatch
    ends_at: datetime
    by: str
    comment: str


CLAIM_GROUPS = """
SELECT * FROM page_groups WHERE state = 'active' AND next_flush_at <= %s
ORDER BY next_flush_at LIMIT 50 FOR UPDATE SKIP LOCKED"""

# A group's members with their incidents' current state (the table is the truth; the outbox
# payload may be behind it).
MEMBERS_OF = """
SELECT m.incident_id::text AS incident_id, m.version, m.labels, m.payload, m.paged_at,
  m.resolved_paged, m.muted_by, i.state, i.count, i.flapping, i.flap_count, i.last_value,
  i.resolved_at, i.acknowledged_by
FROM page_members m JOIN incidents i ON i.id = m.incident_id
WHERE m.group_id = %s"""

MEMBERS = MEMBERS_OF + " ORDER BY m.added_at, m.incident_id FOR UPDATE OF m"

ACTIVE_SILENCES = """
SELECT id::text AS id, matchers, ends_at, created_by, comment FROM silences
WHERE starts_at <= %(now)s AND ends_at > %(now)s ORDER BY ends_at"""

OPEN_COMPOUNDS = """
SELECT id::text AS id, rule_id, zone_id, title FROM incidents
WHERE state <> 'resolved' AND rule_id = ANY(%s) AND zone_id = ANY(%s)"""

HISTORY = """
INSERT INTO incident_events (incident_id, version, at, kind, actor, channel, detail)
VALUES (%s, %s, %s, %s, 'notifier', 'notifier', %s)"""

NOTIFY = """
INSERT INTO notifications (id, group_id, kind, receiver, secret, subject, body, incidents,
  next_attempt_at)
VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)"""


async def flush_once(conn: psycopg.AsyncConnection[Any], ctx: Context, now: datetime) -> int:
    """Look at every due group; returns how many pages were written."""
    async with conn.transaction(), conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(CLAIM_GROUPS, (now,))
        groups = await cur.fetchall()
        if not groups:  # the usual idle poll: nothing due, no silences to read
            return 0
        await cur.execute(ACTIVE_SILENCES, {"now": now})
        silences = [
            Silence(s["id"], RouteMatch.model_validate(s["matchers"]), s["ends_at"],
                    s["created_by"], s["comment"])
            for s in await cur.fetchall()
        ]  # fmt: skip
        pages = 0
        for group in groups:
            pages += await _flush(cur, ctx, group, silences, now)
        return pages


def _current(member: Mapping[str, Any]) -> dict[str, Any]:
    """The member's incident as the page shows it: the outbox payload with the table's state."""
    payload = dict(member["payload"])
    for column in ("state", "count", "flapping", "flap_count", "acknowledged_by"):
        payload[column] = member[column]
    payload["last_value"] = member["last_value"]
    if member["resolved_at"] is not None:
        payload["resolved_at"] = member["resolved_at"].isoformat()
    return payload


async def _mutes(cur: psycopg.AsyncCursor[Any], ctx: Context, members: Sequence[dict[str, Any]],
                 silences: Sequence[Silence]) -> dict[str, str | None]:  # fmt: skip
    """Why each open member is muted now (None: it is not)."""
    zones = sorted({m["labels"].get("zone") for m in members if m["labels"].get("zone")})
    compounds: list[dict[str, Any]] = []
    if ctx.compounds and zones:
        await cur.execute(OPEN_COMPOUNDS, (sorted(ctx.compounds), zones))
        compounds = await cur.fetchall()
    reasons: dict[str, str | None] = {}
    for m in members:
        labels = m["labels"]
        reason = None
        if m["flapping"]:
            reason = "flapping"
        elif found := next((s for s in silences if s.matchers.fits(labels)), None):
            reason = f"silence:{found.id}"
        else:
            for c in compounds:
                if (c["zone_id"] == labels.get("zone") and c["id"] != m["incident_id"]
                        and labels.get("rule") in ctx.compounds.get(c["rule_id"], ())):  # fmt: skip
                    reason = f"inhibited:{c['id']}"
                    break
        reasons[m["incident_id"]] = reason
    return reasons


async def _flush(cur: psycopg.AsyncCursor[Any], ctx: Context, group: dict[str, Any],
                 silences: Sequence[Silence], now: datetime) -> int:  # fmt: skip
    receivers, policy, grouping = ctx.route_of(group)
    await cur.execute(MEMBERS, (group["id"],))
    members = await cur.fetchall()
    reasons = await _mutes(cur, ctx, members, silences)
    by_id = {s.id: s for s in silences}
    for m in members:
        reason = reasons[m["incident_id"]] if m["state"] != "resolved" else m["muted_by"]
        if reason != m["muted_by"]:
            kind = reason.split(":", 1)[0] if reason else "unmuted"
            kind = {"silence": "silenced", "inhibited": "inhibited"}.get(kind, kind)
            detail = {"by": reason or m["muted_by"], "group": str(group["id"])}
            silence = by_id.get((reason or m["muted_by"] or "").partition(":")[2])
            if silence is not None:
                detail |= {"set_by": silence.by, "comment": silence.comment,
                           "until": silence.ends_at.isoformat()}  # fmt: skip
            await cur.execute(HISTORY, (m["incident_id"], m["version"], now, kind, Jsonb(detail)))
            await cur.execute("UPDATE page_members SET muted_by = %s WHERE incident_id = %s",
                              (reason, m["incident_id"]))  # fmt: skip
            m["muted_by"] = reason
    live = [m for m in members if m["state"] != "resolved"]
    new = [m for m in live if m["muted_by"] is None and m["paged_at"] is None]
    firing = [m for m in live if m["muted_by"] is None and m["paged_at"] is not None]
    flapping = [m for m in live if m["muted_by"] == "flapping"]
    done = [m for m in members if m["state"] == "resolved" and not m["resolved_paged"]]
    cleared = [m for m in done if m["paged_at"] is not None and m["muted_by"] is None]
    # a group that only ever held muted (flapping) incidents reminds from its creation
    repeat_due = now >= (group["last_paged_at"] or group["created_at"]) + grouping.repeat_interval
    pages = 0
    if new or cleared or (repeat_due and (firing or flapping)):
        kind = ("storm" if group["storm"] else "repeat" if not new and not cleared
                else "first" if group["first_paged_at"] is None else "update")  # fmt: skip
        page = Page(
            kind=kind, labels=group["labels"], new=[_current(m) for m in new],
            firing=[_current(m) for m in firing], resolved=[_current(m) for m in cleared],
            flapping=[_current(m) for m in flapping] if kind == "repeat" or new else [],
            groups=await _grouped(cur, ctx, new), zone_names=ctx.zone_names,
        )  # fmt: skip
        targets = [(r, ref) for r in receivers for ref in ctx.config.receivers.get(r, [])]
        ids = await _write_page(cur, ctx, group, page, targets, ctx.answering(now), now)
        pages = 1
        for m in new:
            await cur.execute(HISTORY, (m["incident_id"], m["version"], now, "paged",
                                        Jsonb({"group": str(group["id"]), "page": kind,
                                               "receivers": receivers,
                                               "notifications": ids})))  # fmt: skip
        await cur.execute(
            "UPDATE page_members SET paged_at = coalesce(paged_at, %s) WHERE incident_id = ANY(%s)",
            (now, [m["incident_id"] for m in new]),
        )
        await cur.execute(
            "UPDATE page_groups SET first_paged_at = coalesce(first_paged_at, %(now)s), "
            "last_paged_at = %(now)s, pages = pages + 1 WHERE id = %(id)s",
            {"now": now, "id": group["id"]},
        )
        group["last_paged_at"] = now
        if group["first_paged_at"] is None and policy is not None and new:
            group["first_paged_at"] = now
            await cur.execute(
                "UPDATE page_groups SET escalation_state = 'running', escalation_step = 0, "
                "escalation_due_at = %s, policy = %s WHERE id = %s",
                (now, policy, group["id"]),
            )
            group.update(escalation_state="running", escalation_step=0, escalation_due_at=now,
                         policy=policy)  # fmt: skip
            await _escalate(cur, ctx, group, now)
    if done:
        await cur.execute("UPDATE page_members SET resolved_paged = true WHERE incident_id = ANY(%s)",
                          ([m["incident_id"] for m in done],))  # fmt: skip
    await _reschedule(cur, group, live, silences, grouping, now)
    return pages


async def _grouped(cur: psycopg.AsyncCursor[Any], ctx: Context,
                   new: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:  # fmt: skip
    """For a compound incident paged now: its zone's open constituents, each marked `paged`
    if it was paged before the compound opened (it is not paged again)."""
    found: list[dict[str, Any]] = []
    for m in new:
        rules = ctx.compounds.get(m["labels"].get("rule") or "")
        if not rules:
            continue
        await cur.execute(
            "SELECT payload, paged_at IS NOT NULL AS paged FROM page_members "
            "WHERE labels->>'zone' = %s AND labels->>'rule' = ANY(%s) AND state <> 'resolved' "
            "ORDER BY added_at",
            (m["labels"].get("zone"), sorted(rules)),
        )
        found += [row["payload"] | {"paged": row["paged"]} for row in await cur.fetchall()]
    return found


async def _write_page(cur: psycopg.AsyncCursor[Any], ctx: Context, group: Mapping[str, Any],
                      page: Page, targets: Sequence[tuple[str, SecretRef]], officer: str | None,
                      now: datetime) -> list[str]:  # fmt: skip
    """The page rendered once (its links signed for `officer`), then one notification row per
    (receiver, secret) target, held until quiet hours end if they apply; returns their ids."""
    subject, body = render(page, ctx.settings.dashboard_url, ctx.ack_link(officer, now))
    leaves = quiet_until(ctx.config.quiet_hours, ctx.config.oncall.timezone, page.severity, now)
    incidents = [str(i["id"]) for i in page.incidents]
    ids = []
    for receiver, ref in targets:
        notification = str(uuid.uuid4())
        await cur.execute(NOTIFY, (notification, group["id"], page.kind, receiver, ref.secret,
                                   subject, body, incidents, leaves or now))  # fmt: skip
        ids.append(notification)
    return ids


async def _reschedule(cur: psycopg.AsyncCursor[Any], group: Mapping[str, Any],
                      live: Sequence[Mapping[str, Any]],
                      silences: Sequence[Silence],
                      grouping: Grouping, now: datetime) -> None:  # fmt: skip
    """The group's next look: a reminder, a silence's end, or closed when nothing is open."""
    if not live:
        await cur.execute(
            "UPDATE page_groups SET state = 'closed', closed_at = %s, next_flush_at = NULL, "
            "escalation_state = CASE WHEN escalation_state = 'running' THEN 'stopped' "
            "ELSE escalation_state END, escalation_note = coalesce(escalation_note, 'resolved') "
            "WHERE id = %s",
            (now, group["id"]),
        )
        return
    candidates = [(group["last_paged_at"] or group["created_at"]) + grouping.repeat_interval]
    ends = {s.id: s.ends_at for s in silences}
    candidates += [ends[m["muted_by"].split(":", 1)[1]] for m in live
                   if (m["muted_by"] or "").startswith("silence:")
                   and m["muted_by"].split(":", 1)[1] in ends]  # fmt: skip
    await cur.execute("UPDATE page_groups SET next_flush_at = %s WHERE id = %s",
                      (min(candidates), group["id"]))  # fmt: skip


# -- 3. escalation ------------------------------------------------------------------------------

CLAIM_ESCALATIONS = """
SELECT * FROM page_groups WHERE escalation_state = 'running' AND escalation_due_at <= %s
ORDER BY escalation_due_at LIMIT 50 FOR UPDATE SKIP LOCKED"""

# The paged, unmuted incidents of a group that nobody has acknowledged or resolved yet.
UNANSWERED = (
    MEMBERS_OF + " AND m.paged_at IS NOT NULL AND m.muted_by IS NULL AND i.state = 'open'"
    " ORDER BY m.added_at"
)


async def escalate_once(conn: psycopg.AsyncConnection[Any], ctx: Context, now: datetime) -> int:
    async with conn.transaction(), conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(CLAIM_ESCALATIONS, (now,))
        groups = await cur.fetchall()
        for group in groups:
            await _escalate(cur, ctx, group, now)
        return len(groups)


async def _stop_if_answered(cur: psycopg.AsyncCursor[Any], group_id: Any, now: datetime) -> bool:
    await cur.execute(UNANSWERED, (group_id,))
    if await cur.fetchall():
        return False
    await cur.execute(
        "SELECT count(*) FILTER (WHERE i.state = 'acknowledged') AS acked, "
        "array_agg(m.incident_id::text) AS ids, array_agg(m.version) AS versions "
        "FROM page_members m JOIN incidents i ON i.id = m.incident_id WHERE m.group_id = %s",
        (group_id,),
    )
    row = await cur.fetchone()
    note = "acknowledged" if row and row["acked"] else "resolved"
    await cur.execute(
        "UPDATE page_groups SET escalation_state = 'stopped', escalation_note = %s, "
        "escalation_due_at = NULL WHERE id = %s AND escalation_state = 'running'",
        (note, group_id),
    )
    if cur.rowcount and row and row["ids"]:
        for incident, version in zip(row["ids"], row["versions"], strict=True):
            await cur.execute(HISTORY, (incident, version, now, "escalation_stopped",
                                        Jsonb({"group": str(group_id), "why": note})))  # fmt: skip
    return True


async def _escalate(cur: psycopg.AsyncCursor[Any], ctx: Context, group: dict[str, Any],
                    now: datetime) -> None:  # fmt: skip
    """Run the group's escalation steps that are due, up to the next wait."""
    if await _stop_if_answered(cur, group["id"], now):
        return
    policy = ctx.config.policies.get(group["policy"] or "")
    if policy is None:
        await cur.execute(
            "UPDATE page_groups SET escalation_state = 'stopped', escalation_note = %s, "
            "escalation_due_at = NULL WHERE id = %s",
            (f"policy {group['policy']!r} is not in the paging file", group["id"]),
        )
        return
    await cur.execute(UNANSWERED, (group["id"],))
    open_members = await cur.fetchall()
    steps = list(policy.steps) * (policy.repeat + 1)
    step = group["escalation_step"]
    due = group["escalation_due_at"] or now
    waited = due - (group["first_paged_at"] or now)
    while step < len(steps):
        current = steps[step]
        step += 1
        if isinstance(current, Notify):
            await _page_role(cur, ctx, group, current.notify, open_members, waited, now)
            continue
        due = due + current.wait
        await cur.execute(
            "UPDATE page_groups SET escalation_step = %s, escalation_due_at = %s WHERE id = %s",
            (step, due, group["id"]),
        )
        return
    await cur.execute(
        "UPDATE page_groups SET escalation_state = 'done', escalation_step = %s, "
        "escalation_due_at = NULL, escalation_note = 'every step paged' WHERE id = %s",
        (step, group["id"]),
    )


async def _page_role(cur: psycopg.AsyncCursor[Any], ctx: Context, group: Mapping[str, Any],
                     role: str, members: Sequence[Mapping[str, Any]], waited: timedelta,
                     now: datetime) -> None:  # fmt: skip
    oncall = ctx.config.oncall
    shift = shift_at(role, oncall.roles[role], oncall.timezone, now)
    person = ctx.config.people[shift.person]
    page = Page(kind="escalation", labels=group["labels"], firing=[_current(m) for m in members],
                role=role, person=person.name, waited=waited, zone_names=ctx.zone_names)  # fmt: skip
    targets = [(f"{role}:{shift.person}", ref) for ref in person.contacts]
    ids = await _write_page(cur, ctx, group, page, targets, shift.person, now)
    for m in members:
        await cur.execute(HISTORY, (m["incident_id"], m["version"], now, "escalated",
                                    Jsonb({"group": str(group["id"]), "role": role,
                                           "person": shift.person, "notifications": ids})))  # fmt: skip


# -- 4. delivery --------------------------------------------------------------------------------

CLAIM_NOTIFICATIONS = """
SELECT id::text AS id, secret, subject, body, attempts FROM notifications
WHERE sent_at IS NULL AND next_attempt_at <= %s
ORDER BY next_attempt_at, created_at LIMIT %s FOR UPDATE SKIP LOCKED"""


@dataclass
class Delivered:
    sent: int = 0
    failed: int = 0
    errors: list[str] = field(default_factory=list)


async def deliver_once(conn: psycopg.AsyncConnection[Any], ctx: Context, now: datetime,
                       limit: int = SENDS_AT_ONCE) -> Delivered:  # fmt: skip
    """Send the due notifications; each is marked sent, or rescheduled, in this transaction."""
    result = Delivered()
    async with conn.transaction(), conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(CLAIM_NOTIFICATIONS, (now, limit))
        rows = await cur.fetchall()
        if not rows:
            return result
        outcomes = await asyncio.gather(*(_send(ctx, row) for row in rows))
        sent = [row["id"] for row, error in zip(rows, outcomes, strict=True) if error is None]
        if sent:
            await cur.execute(
                "UPDATE notifications SET sent_at = clock_timestamp(), attempts = attempts + 1, "
                "last_error = NULL WHERE id = ANY(%s::uuid[])",
                (sent,),
            )
        for row, error in zip(rows, outcomes, strict=True):
            if error is None:
                continue
            wait = min(ctx.settings.retry_cap_s, ctx.settings.retry_first_s * 2 ** row["attempts"])
            await cur.execute(
                "UPDATE notifications SET attempts = attempts + 1, last_error = %s, "
                "next_attempt_at = %s WHERE id = %s",
                (error, now + timedelta(seconds=wait), row["id"]),
            )
            result.errors.append(f"{row['id']}: {error}")
        result.sent, result.failed = len(sent), len(rows) - len(sent)
    return result


async def _send(ctx: Context, row: Mapping[str, Any]) -> str | None:
    """None when sent, else why not (safe to store: no URL, no secret)."""
    secret = ctx.settings.secrets.get(row["secret"])
    if secret is None:
        return f"secret {row['secret']!r} is not set (IOC_PAGING__SECRETS__{row['secret'].upper()})"
    message = Message(row["id"], row["subject"], row["body"])
    try:
        await send(secret.get_secret_value(), message, mail_from=ctx.settings.mail_from,
                   timeout=ctx.settings.send_timeout_s)  # fmt: skip
    except DeliveryError as exc:
        return str(exc)
    except TimeoutError:
        return "timed out"
    return None
