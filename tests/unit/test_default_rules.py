"""The shipped default rules: every one loads, names a source or states its reason, rules only on
metrics its domain's event type emits, the compound rules name conditions that exist, and the
simulator's ordinary noise in any season opens no compound incident (the engine, no I/O)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import orjson
import pytest

from domains import Decoder, Event, Registry
from geo import ZoneIndex
from rules.engine import Observation, apply, group
from rules.load import RuleSet, default_rule_files, load_rule_files
from rules.model import Baseline, Correlation, Match, RateOfChange, Threshold
from simulator.config import SimulatorConfig
from simulator.generate import Simulation

RULES = load_rule_files(default_rule_files())
REGISTRY = Registry()
ZONES = ZoneIndex.from_file()


def metrics_of(match: Match) -> set[str]:
    return {
        m.name
        for t in REGISTRY
        if t.domain == match.domain and t.model.spec.name == match.event_type
        for m in t.model.spec.measures
    }


def fields_of(match: Match) -> set[str]:
    return {
        name
        for t in REGISTRY
        if t.domain == match.domain and t.model.spec.name == match.event_type
        for name in t.model.model_fields
    }


def test_every_default_rule_loads_with_a_source_and_a_reason() -> None:
    files = {name for name, _ in default_rule_files()}
    assert {f"rules/defaults/{d}.yaml" for d in REGISTRY.domains()} <= files  # one per domain
    assert len(RULES) >= 20
    for rule in RULES:
        assert rule.source and rule.reason, rule.id
        assert rule.enabled, rule.id


def test_rules_use_metrics_their_event_types_emit() -> None:
    """A rule's metric is one its event type emits; a `where` names the type's fields (a
    correlation condition without a metric is met by a `where` alone, as a port's closure)."""
    for rule in RULES:
        if isinstance(rule, Threshold | RateOfChange | Baseline):
            assert rule.metric in metrics_of(rule), (rule.id, rule.metric)
        if not isinstance(rule, Correlation):
            assert set(rule.where) <= fields_of(rule), (rule.id, rule.where)
            continue
        domains = {c.domain for c in rule.conditions}
        assert len(domains) >= 2, rule.id
        for condition in rule.conditions:
            if condition.metric is None:
                assert condition.where, (rule.id, condition)
            else:
                assert condition.metric in metrics_of(condition), (rule.id, condition)
            assert set(condition.where) <= fields_of(condition), (rule.id, condition)


def test_the_compound_rules_of_the_issue_are_shipped() -> None:
    ids = {rule.id for rule in RULES}
    assert {
        "compound.flood-impact", "compound.crowd-health-risk", "compound.coastal-storm-impact"
    } <= ids  # fmt: skip
    assert RULES.by_id("compound.flood-impact").window.total_seconds() == 1800  # type: ignore[union-attr]


def observations(start: datetime, count: int, seed: int, rate: float) -> list[Observation]:
    """The simulator's noise (no scenario) as the rules see it: decoded, zoned, measured."""
    registry = Registry()
    config = SimulatorConfig(count=count, rate=rate, seed=seed, start=start)
    sim = Simulation(config, registry, ZONES)
    decoder = Decoder(registry, max_bytes=65_536)
    now = datetime.now(UTC) + timedelta(days=3650)
    out = []
    for message in sim.messages():
        event = decoder.decode(message.value, message.headers, now=now)
        assert isinstance(event, Event)
        data = event.payload
        location = data.location
        zone = ZONES.lookup_one(location.lon, location.lat) if location else data.zone_id
        values = {metric: value for metric, value, _ in data.measurements()}
        short = event.type.rsplit(".", 2)[-2]
        out.append(
            Observation(event.time, event.domain, short, event.source, event.entity_id, zone,
                        values, orjson.dumps(data.as_data()).decode())
        )  # fmt: skip
    return out


@pytest.mark.parametrize(
    ("start", "rate"),
    [
        # 10:00 during the coffee festival, in the haze, at city load (2,000 events/s)
        (datetime(2027, 3, 10, 3, 0, tzinfo=UTC), 2000),
        # 16:00-17:00 at the height of the rainy season, an hour at 4 events/s
        (datetime(2026, 9, 20, 9, 0, tzinfo=UTC), 4),
        # 06:30-07:30, the dry season's morning rush, an hour at 4 events/s
        (datetime(2026, 12, 1, 23, 30, tzinfo=UTC), 4),
    ],
)
def test_noise_in_any_season_opens_no_compound_incident(start: datetime, rate: float) -> None:
    """The rule engine on the simulator's ordinary traffic (no scenario), a burst at city load
    and whole hours: the compound rules stay closed, whatever the single rules do."""
    compound = RuleSet(tuple(r for r in RULES if isinstance(r, Correlation)))
    states: dict[tuple[str, str], dict[str, object]] = {}
    events = observations(start, 15_000, seed=7, rate=rate)
    for i in range(0, len(events), 1000):
        plan = group(compound, events[i : i + 1000])
        outcome = apply(compound, plan, {key: states.get(key, {}) for key in plan})
        states.update(outcome.states)
        assert outcome.incidents == {}
        assert not outcome.errors
    assert len(states) > 50  # the compound rules did look at the zones
