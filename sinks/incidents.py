"""Rule state and incidents in PostgreSQL, written inside the transaction of a batch's events.

The rule engine (rules.engine) decides; this module reads and writes what it decided, as plain
data: state rows keyed by (rule id, key), incident snapshots (dicts, see rules.engine), their
history and the outbox. It knows psycopg, not the rules.

Concurrency: `lock_states` locks the existing state rows it needs with SELECT ... FOR UPDATE in
(rule, key) order, then inserts the missing ones (ON CONFLICT DO NOTHING: a second transaction
inserting the same key waits for the first to commit) and locks those, so two workers that touch
the same zone key apply their batches one after the other, each on the other's committed state.
Two transactions that lock in opposite orders (a key created by a third between their first
statements) deadlock; PostgreSQL aborts one, and its batch is written again (a transient error).
The partial unique index on incidents (one open incident per rule and key) is the last guard: an
incident is inserted with ON CONFLICT on its id.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson
import psycopg
from psycopg.types.json import Jsonb

StateKey = tuple[str, str]

LOCK_STATES = """
SELECT s.rule_id, s.key, s.state::text FROM rule_state s
JOIN unnest(%s::text[], %s::text[]) AS k(rule_id, key) USING (rule_id, key)
ORDER BY s.rule_id, s.key
FOR UPDATE OF s"""

INSERT_MISSING = """
INSERT INTO rule_state (rule_id, key)
SELECT * FROM unnest(%s::text[], %s::text[]) ORDER BY 1, 2
ON CONFLICT DO NOTHING"""

SAVE_STATES = """
UPDATE rule_state s SET state = u.state::jsonb, updated_at = now()
FROM unnest(%s::text[], %s::text[], %s::text[]) AS u(rule_id, key, state)
WHERE s.rule_id = u.rule_id AND s.key = u.key"""

UPSERT_INCIDENT = """
INSERT INTO incidents (id, rule_id, key, zone_id, entity_id, state, severity, category,
  subcategory, title, description_vi, description_en, opened_at, last_seen, resolved_at,
  resolved_by, count, last_value, peak_value, previous_id, flapping, flap_count, entities,
  trigger_values, version)
VALUES (%(id)s, %(rule)s, %(key)s, %(zone)s, %(entity)s, %(state)s, %(severity)s, %(category)s,
  %(subcategory)s, %(title)s, %(vi)s, %(en)s, %(opened_at)s, %(last_seen)s, %(resolved_at)s,
  %(resolved_by)s, %(count)s, %(value)s, %(peak)s, %(previous)s, %(flapping)s, %(flap_count)s,
  %(entities)s, %(values)s, 1)
ON CONFLICT (id) DO UPDATE SET
  state = CASE WHEN excluded.state = 'resolved' THEN 'resolved' ELSE incidents.state END,
  last_seen = excluded.last_seen, resolved_at = coalesce(incidents.resolved_at, excluded.resolved_at),
  resolved_by = coalesce(incidents.resolved_by, excluded.resolved_by),
  count = excluded.count, last_value = excluded.last_value, peak_value = excluded.peak_value,
  entities = excluded.entities, trigger_values = excluded.trigger_values,
  description_vi = excluded.description_vi, description_en = excluded.description_en,
  version = incidents.version + 1, updated_at = now()
WHERE incidents.state <> 'resolved'
RETURNING version, state"""

INSERT_HISTORY = """
INSERT INTO incident_events (incident_id, version, at, kind, actor, channel, detail)
VALUES (%s, %s, %s, %s, %s, %s, %s)"""

INSERT_OUTBOX = """
INSERT INTO incident_outbox (incident_id, version, kind, payload)
VALUES (%s, %s, %s, %s) ON CONFLICT DO NOTHING"""

# Written to when a transaction adds outbox rows; delivered at its commit. The notifier listens
# to page sooner than its poll (it polls as well, so a lost notification costs only latency).
OUTBOX_CHANNEL = "ioc_incident_outbox"
NOTIFY_OUTBOX = f"SELECT pg_notify('{OUTBOX_CHANNEL}', '')"


@dataclass(frozen=True)
class RuleFacts:
    """What an incident row takes from its rule."""

    severity: str
    category: str
    subcategory: str
    title: str


async def lock_states(
    conn: psycopg.AsyncConnection[Any], keys: Sequence[StateKey]
) -> dict[StateKey, dict[str, Any]]:
    """The state of each key, locked for this transaction (new keys: {})."""
    if not keys:
        return {}
    rule_ids, names = [list(c) for c in zip(*sorted(keys), strict=True)]
    async with conn.cursor() as cur:
        # states travel as JSON text, parsed and written with orjson (thousands per batch)
        await cur.execute(LOCK_STATES, (rule_ids, names))
        found = {(r, k): orjson.loads(s) for r, k, s in await cur.fetchall()}
        missing = sorted(set(keys) - found.keys())
        if missing:  # new keys: insert, then lock what is there (another worker's, if it won)
            rule_ids, names = [list(c) for c in zip(*missing, strict=True)]
            await cur.execute(INSERT_MISSING, (rule_ids, names))
            await cur.execute(LOCK_STATES, (rule_ids, names))
            found.update({(r, k): orjson.loads(s) for r, k, s in await cur.fetchall()})
        return found


async def save(
    conn: psycopg.AsyncConnection[Any],
    states: Mapping[StateKey, dict[str, Any]],
    incidents: Mapping[str, dict[str, Any]],
    transitions: Mapping[str, Sequence[tuple[str, datetime]]],
    facts: Mapping[str, RuleFacts],
    texts: Mapping[str, tuple[str, str]],
) -> int:
    """Write the engine's outcome; returns the number of outbox rows written."""
    async with conn.cursor() as cur:
        if states:
            ordered = sorted(states.items())
            await cur.execute(
                SAVE_STATES,
                (
                    [k[0] for k, _ in ordered],
                    [k[1] for k, _ in ordered],
                    [orjson.dumps(state).decode() for _, state in ordered],
                ),
            )
        outbox = 0
        # resolutions first: a key's next occurrence may open in the same batch, and the partial
        # unique index allows it only once the previous one is resolved
        order = sorted(incidents, key=lambda i: (incidents[i]["state"] != "resolved", i))
        for incident_id in order:
            snapshot = incidents[incident_id]
            rule = facts[snapshot["rule"]]
            vi, en = texts[incident_id]
            await cur.execute(UPSERT_INCIDENT, _row(snapshot, rule, vi, en))
            written = await cur.fetchone()
            if written is None:  # a person resolved it meanwhile: the rule changes nothing
                continue
            version, state = written
            kinds = [kind for kind, _ in transitions.get(incident_id, [])]
            history = _history(transitions.get(incident_id, []), snapshot)
            await cur.executemany(
                INSERT_HISTORY,
                [(incident_id, version, at, kind, f"rule:{snapshot['rule']}", "rule", Jsonb(detail))
                 for kind, at, detail in history],
            )  # fmt: skip
            payload = outbox_payload(snapshot, rule, vi, en, version) | {"state": state}
            for kind in _outbox_kinds(kinds):
                await cur.execute(INSERT_OUTBOX, (incident_id, version, kind, Jsonb(payload)))
                outbox += 1
        if outbox:
            await cur.execute(NOTIFY_OUTBOX)
    return outbox


def _row(snapshot: Mapping[str, Any], rule: RuleFacts, vi: str, en: str) -> dict[str, Any]:
    return {
        "id": snapshot["id"], "rule": snapshot["rule"], "key": snapshot["key"],
        "zone": snapshot.get("zone"), "entity": snapshot.get("entity"),
        "state": snapshot["state"], "severity": rule.severity, "category": rule.category,
        "subcategory": rule.subcategory, "title": rule.title, "vi": vi, "en": en,
        "opened_at": snapshot["opened_at"], "last_seen": snapshot["last_seen"],
        "resolved_at": snapshot.get("resolved_at"),
        "resolved_by": "rule" if snapshot["state"] == "resolved" else None,
        "count": snapshot["count"], "value": snapshot.get("value"), "peak": snapshot.get("peak"),
        "previous": snapshot.get("previous"), "flapping": snapshot.get("flapping", False),
        "flap_count": snapshot.get("flap_count", 0), "entities": list(snapshot.get("entities", [])),
        "values": Jsonb(snapshot.get("values", {})),
    }  # fmt: skip


def _history(
    transitions: Sequence[tuple[str, datetime]], snapshot: Mapping[str, Any]
) -> list[tuple[str, datetime, dict[str, Any]]]:
    """One history row per opening and resolution; repeats in a batch are one `updated` row."""
    rows: list[tuple[str, datetime, dict[str, Any]]] = []
    updates = [at for kind, at in transitions if kind == "updated"]
    for kind, at in transitions:
        if kind in ("opened", "resolved"):
            rows.append((kind, at, {"count": snapshot["count"], "value": snapshot.get("value")}))
    if updates:
        rows.append(("updated", updates[-1], {"repeats": len(updates), "count": snapshot["count"]}))
    rows.sort(key=lambda row: row[1])
    return rows


def _outbox_kinds(kinds: Iterable[str]) -> list[str]:
    """What the batch did to an incident, for the outbox: each opening and resolution, or one
    `updated` when it only repeated (repeats are not paged again; the row carries the count)."""
    seen = [k for k in ("opened", "resolved") if k in kinds]
    return seen or (["updated"] if "updated" in kinds else [])


def outbox_payload(
    snapshot: Mapping[str, Any], rule: RuleFacts, vi: str, en: str, version: int
) -> dict[str, Any]:
    """The incident as the relay publishes it (the `data` of the city.incidents CloudEvent)."""
    return {
        "id": snapshot["id"], "version": version, "rule_id": snapshot["rule"],
        "key": snapshot["key"], "state": snapshot["state"], "zone_id": snapshot.get("zone"),
        "entity_id": snapshot.get("entity"), "severity": rule.severity,
        "category": rule.category, "subcategory": rule.subcategory, "title": rule.title,
        "description": {"vi": vi, "en": en}, "opened_at": snapshot["opened_at"],
        "last_seen": snapshot["last_seen"], "resolved_at": snapshot.get("resolved_at"),
        "count": snapshot["count"], "last_value": snapshot.get("value"),
        "peak_value": snapshot.get("peak"), "previous_id": snapshot.get("previous"),
        "flapping": snapshot.get("flapping", False), "flap_count": snapshot.get("flap_count", 0),
        "entities": list(snapshot.get("entities", [])), "trigger_values": snapshot.get("values", {}),
    }  # fmt: skip


def dumps(value: Any) -> str:
    return orjson.dumps(value).decode()


# -- people's actions (the CLI; later the API), each in one transaction -------------------------

ACTIONS = {"acknowledge": "acknowledged", "resolve": "resolved"}

LOCK_INCIDENT = "SELECT rule_id, key, state FROM incidents WHERE id = %s"
LOCK_KEY_STATE = "SELECT state FROM rule_state WHERE rule_id = %s AND key = %s FOR UPDATE"

ACKNOWLEDGE = """
UPDATE incidents SET state = 'acknowledged', acknowledged_at = now(), acknowledged_by = %s,
  version = version + 1, updated_at = now()
WHERE id = %s AND state = 'open'
RETURNING *"""

RESOLVE = """
UPDATE incidents SET state = 'resolved', resolved_at = now(), resolved_by = %s,
  version = version + 1, updated_at = now()
WHERE id = %s AND state <> 'resolved'
RETURNING *"""

# A person resolved the key's open incident: the rule holds until its condition clears.
HOLD_KEY = """
UPDATE rule_state SET updated_at = now(), state = state
  || jsonb_build_object('held', true, 'inc', NULL,
       'last', jsonb_build_object('id', %(id)s::text, 'resolved_at', %(at)s::text,
                                  'flap_count', coalesce((state->'inc'->>'flap_count')::int, 0)))
WHERE rule_id = %(rule)s AND key = %(key)s AND state->'inc'->>'id' = %(id)s::text"""


class IncidentActionError(Exception):
    """The action does not apply (unknown incident, or already in that state); says why."""


def act(
    conn: psycopg.Connection[Any], incident_id: str, action: str, actor: str, channel: str,
    note: str | None = None,
) -> dict[str, Any]:  # fmt: skip
    """Acknowledge, resolve or comment an incident as `actor` through `channel` (cli, api, link),
    with its history row and, for a change of state, its outbox row. Returns the incident row."""
    from psycopg.rows import dict_row

    if not actor.strip():
        raise IncidentActionError("who acts must be given")
    try:
        incident_id = str(uuid.UUID(incident_id))
    except ValueError:
        raise IncidentActionError(f"{incident_id!r} is not an incident id (a UUID)") from None
    with conn.transaction(), conn.cursor(row_factory=dict_row) as cur:
        found = cur.execute(LOCK_INCIDENT, (incident_id,)).fetchone()
        if found is None:
            raise IncidentActionError(f"no incident {incident_id}")
        # the rule's state row first, in the order the workers lock: no deadlock with them
        cur.execute(LOCK_KEY_STATE, (found["rule_id"], found["key"]))
        if action == "comment":
            if not note:
                raise IncidentActionError("a comment needs text")
            row = cur.execute("SELECT * FROM incidents WHERE id = %s", (incident_id,)).fetchone()
            assert row is not None
            kind = "comment"
        elif action in ACTIONS:
            sql = ACKNOWLEDGE if action == "acknowledge" else RESOLVE
            row = cur.execute(sql, (actor, incident_id)).fetchone()
            if row is None:
                raise IncidentActionError(
                    f"incident {incident_id} is {found['state']}: it cannot be {ACTIONS[action]}"
                )
            kind = ACTIONS[action]
            if action == "resolve":
                cur.execute(HOLD_KEY, {"id": incident_id, "at": row["resolved_at"].isoformat(),
                                       "rule": row["rule_id"], "key": row["key"]})  # fmt: skip
        else:
            raise IncidentActionError(f"unknown action {action!r}")
        cur.execute(
            INSERT_HISTORY,
            (incident_id, row["version"], row["updated_at"] if kind != "comment" else _now(cur),
             kind, actor, channel, Jsonb({"note": note} if note else {})),
        )  # fmt: skip
        if kind != "comment":
            cur.execute(
                INSERT_OUTBOX, (incident_id, row["version"], kind, Jsonb(payload_of_row(row)))
            )
            cur.execute(NOTIFY_OUTBOX)
        return dict(row)


def _now(cur: psycopg.Cursor[Any]) -> datetime:
    row = cur.execute("SELECT now() AS now").fetchone()
    assert row is not None
    return row["now"] if isinstance(row, dict) else row[0]


def payload_of_row(row: Mapping[str, Any]) -> dict[str, Any]:
    """An incident row as the outbox carries it (same shape as `outbox_payload`)."""

    def iso(value: Any) -> Any:
        return value.isoformat() if isinstance(value, datetime) else value

    return {
        "id": str(row["id"]), "version": row["version"], "rule_id": row["rule_id"],
        "key": row["key"], "state": row["state"], "zone_id": row["zone_id"],
        "entity_id": row["entity_id"], "severity": row["severity"], "category": row["category"],
        "subcategory": row["subcategory"], "title": row["title"],
        "description": {"vi": row["description_vi"], "en": row["description_en"]},
        "opened_at": iso(row["opened_at"]), "last_seen": iso(row["last_seen"]),
        "resolved_at": iso(row["resolved_at"]), "count": row["count"],
        "last_value": row["last_value"], "peak_value": row["peak_value"],
        "previous_id": None if row["previous_id"] is None else str(row["previous_id"]),
        "flapping": row["flapping"], "flap_count": row["flap_count"],
        "entities": list(row["entities"]), "trigger_values": row["trigger_values"],
        "acknowledged_by": row.get("acknowledged_by"), "resolved_by": row.get("resolved_by"),
    }  # fmt: skip
