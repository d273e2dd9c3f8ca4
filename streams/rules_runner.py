"""The rules in the pipeline: run on each batch's newly stored events, inside the batch's write
transaction (EventSink.write's `after_insert`), and from a timer for the silence rules.

A duplicate was stored before, with its effect on the rule state committed in the same
transaction: rules see only the newly stored events, which makes redelivery exact. Rules whose
evaluation fails on a key are logged and counted; they never stop the batch.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import psycopg
import structlog

from rules.engine import (
    Observation,
    Outcome,
    apply,
    check_silence,
    describe,
    group,
    targets,
    type_name,
)
from rules.load import RuleSet
from rules.model import Silence
from sinks import incidents as store
from sinks.rows import Batch

log = structlog.get_logger(__name__)

WATERMARKS = """
SELECT state->>'source', max((state->>'t')::timestamptz) FROM rule_state
WHERE rule_id = %s AND state ? 't' GROUP BY 1"""

SILENCE_STATES = "SELECT key, state FROM rule_state WHERE rule_id = %s ORDER BY key FOR UPDATE"


@dataclass
class RuleCounts:
    """What the rules did in one batch (or one silence check)."""

    observed: int = 0
    late_for_rule: Counter[str] = field(default_factory=Counter)
    errors: Counter[str] = field(default_factory=Counter)
    transitions: Counter[str] = field(default_factory=Counter)
    outbox: int = 0

    def add(self, other: RuleCounts) -> None:
        self.observed += other.observed
        self.late_for_rule.update(other.late_for_rule)
        self.errors.update(other.errors)
        self.transitions.update(other.transitions)
        self.outbox += other.outbox


class RuleRunner:
    def __init__(self, ruleset: RuleSet, zone_names: Mapping[str, str] | None = None) -> None:
        self.ruleset = ruleset.enabled()
        self.zone_names = dict(zone_names or {})
        self._kinds: dict[tuple[str, str], str] = {}  # see _kind
        self.facts = {
            rule.id: store.RuleFacts(rule.severity, rule.category, rule.subcategory, rule.title)
            for rule in self.ruleset
        }

    def __bool__(self) -> bool:
        return bool(self.ruleset)

    @property
    def has_silence(self) -> bool:
        return any(isinstance(rule, Silence) for rule in self.ruleset)

    def observations(self, stored: Batch) -> list[Observation]:
        """The stored events that some rule looks at (by domain and event type), as the engine
        sees them."""
        out = []
        kinds = self._kinds
        measurements, ends = stored.measurements, stored.ends
        start = 0
        for event, end in zip(stored.events, ends, strict=True):
            name = kinds.get((event.domain, event.type))
            if name is None:
                name = self._kind(event.domain, event.type)
            if name:
                values = {m.metric: m.value for m in measurements[start:end]}
                data = event.data if isinstance(event.data, str) else store.dumps(event.data)
                time = event.time if event.time.tzinfo is UTC else event.time.astimezone(UTC)
                out.append(
                    Observation(
                        time, event.domain, name, event.source, event.entity_id, event.zone_id,
                        values, data,
                    )
                )  # fmt: skip
            start = end
        return out

    def _kind(self, domain: str, event_type: str) -> str:
        """The event type's short name if some rule looks at events of this domain and type,
        else "" (remembered per domain and type)."""
        name = type_name(event_type)
        kind = self._kinds[domain, event_type] = name if targets(self.ruleset, domain, name) else ""
        return kind

    async def after_insert(self, conn: psycopg.AsyncConnection[Any], stored: Batch) -> RuleCounts:
        """Apply the rules to `stored` inside the write's transaction."""
        counts = RuleCounts()
        observations = self.observations(stored)
        counts.observed = len(observations)
        if not observations:
            return counts
        plan = group(self.ruleset, observations)
        if not plan:
            return counts
        states = await store.lock_states(conn, list(plan))
        outcome = apply(self.ruleset, plan, states)
        await self._save(conn, outcome, counts)
        return counts

    async def check_silence(self, conn: psycopg.AsyncConnection[Any]) -> RuleCounts:
        """The silence rules, in their own transaction (the caller's)."""
        counts = RuleCounts()
        outcome = Outcome()
        async with conn.cursor() as cur:
            for rule in self.ruleset:
                if not isinstance(rule, Silence):
                    continue
                await cur.execute(WATERMARKS, (rule.id,))
                watermarks = {source: t for source, t in await cur.fetchall() if t is not None}
                now = datetime.now(UTC)  # a watermark never runs ahead of the wall clock
                watermarks = {s: min(t, now) for s, t in watermarks.items()}
                await cur.execute(SILENCE_STATES, (rule.id,))
                states = {key: state for key, state in await cur.fetchall()}
                check_silence(rule, states, watermarks, outcome)
        await self._save(conn, outcome, counts)
        return counts

    async def _save(
        self, conn: psycopg.AsyncConnection[Any], outcome: Outcome, counts: RuleCounts
    ) -> None:
        counts.late_for_rule.update(outcome.late_for_rule)
        counts.errors.update(outcome.errors)
        for transitions in outcome.transitions.values():
            counts.transitions.update(kind for kind, _ in transitions)
        texts = {
            incident_id: describe(
                self.ruleset.by_id(snapshot["rule"]), snapshot,
                self.zone_names.get(snapshot.get("zone") or ""),
            )
            for incident_id, snapshot in outcome.incidents.items()
        }  # fmt: skip
        counts.outbox = await store.save(
            conn, outcome.states, outcome.incidents, outcome.transitions, self.facts, texts
        )
        for rule_id, n in outcome.errors.items():
            log.error("rules.evaluation_failed", rule=rule_id, keys=n)
