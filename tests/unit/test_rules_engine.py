"""The rule engine on crafted streams, in event time, without a database (rules.engine is pure).

`Run` carries the state between batches the way the pipeline does (it is written in the same
transaction as the batch's events), so these tests see exactly what the worker would do."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from rules.engine import Observation, apply, check_silence, group, targets
from rules.load import RuleError, load_rule_files
from sinks.rows import Batch, EventRow, MeasurementRow
from streams.rules_runner import RuleRunner

T0 = datetime(2026, 7, 15, 8, 0, tzinfo=UTC)
TEXT = "description: {vi: 'PM2.5 {value} tại {zone}', en: 'PM2.5 {value} at {zone}'}"

RULES = f"""
rules:
  - id: pm25-high
    kind: threshold
    title: PM2.5 above the national 24 h limit
    domain: environment
    metric: pm25
    raise_at: 50
    clear_at: 40
    for: 60s
    quiet: 120s
    flap_window: 10m
    severity: high
    category: environment
    subcategory: airPollution
    {TEXT}
  - id: level-rise
    kind: rate_of_change
    title: River rising fast
    domain: environment
    metric: water_level
    window: 10m
    change: 50
    quiet: 0s
    severity: medium
    category: naturalDisaster
    subcategory: flood
    {TEXT}
  - id: no-trucks-in-old-town
    kind: geofence
    title: Truck inside a protected zone
    domain: transport
    event_type: vehicle_position
    zones: [z-old]
    when: inside
    quiet: 0s
    severity: low
    category: traffic
    subcategory: trafficViolation
    {TEXT}
  - id: flood-and-calls
    kind: correlation
    title: Flooding with emergency calls
    window: 15m
    quiet: 0s
    conditions:
      - {{domain: environment, metric: water_level, op: ">=", value: 500}}
      - {{domain: security, event_type: emergency_call}}
    severity: critical
    category: naturalDisaster
    subcategory: flood
    {TEXT}
  - id: station-silent
    kind: silence
    title: Station silent
    domain: environment
    after: 10m
    severity: medium
    category: anomaly
    subcategory: deviceFailure
    {TEXT}
"""


def obs(t: float, value: float | None = None, *, metric: str = "pm25", entity: str = "st-1",
        zone: str | None = "z-1", domain: str = "environment", type_name: str = "air_quality",
        source: str = "urn:aq") -> Observation:  # fmt: skip
    values = {} if value is None else {metric: value}
    return Observation(T0 + timedelta(seconds=t), domain, type_name, source, entity, zone, values)


class Run:
    def __init__(self, text: str = RULES, only: str | None = None) -> None:
        rules = load_rule_files([("rules.yaml", text)])
        if only is not None:
            rules = type(rules)(tuple(r for r in rules if r.id == only), rules.origin)
        self.rules = rules
        self.states: dict[tuple[str, str], dict[str, Any]] = {}
        self.incidents: dict[str, dict[str, Any]] = {}
        self.history: list[tuple[str, str, datetime]] = []
        self.late = 0

    def batch(self, *observations: Observation) -> None:
        plan = group(self.rules, list(observations))
        out = apply(self.rules, plan, {k: self.states[k] for k in plan if k in self.states})
        self.states.update(out.states)
        self.incidents.update({i: dict(v) for i, v in out.incidents.items()})
        for incident_id, transitions in out.transitions.items():
            self.history += [(incident_id, kind, at) for kind, at in transitions]
        self.late += sum(out.late_for_rule.values())

    def kinds(self) -> list[str]:
        return [kind for _, kind, _ in self.history if kind != "updated"]

    def only(self) -> dict[str, Any]:
        (incident,) = self.incidents.values()
        return incident


def test_threshold_waits_its_minimum_duration_then_opens_once() -> None:
    run = Run(only="pm25-high")
    run.batch(obs(0, 60), obs(30, 70), obs(59, 65))  # above for 59 s: not yet
    assert run.incidents == {}
    run.batch(obs(60, 80))  # 60 s above: opens, at the event time that completed the duration
    incident = run.only()
    assert (incident["state"], incident["opened_at"]) == (
        "open",
        (T0 + timedelta(seconds=60)).isoformat(),
    )
    assert (incident["count"], incident["peak"], incident["value"]) == (1, 80, 80)


def test_a_dip_under_the_raise_level_restarts_the_minimum_duration() -> None:
    run = Run(only="pm25-high")
    run.batch(obs(0, 60), obs(40, 45), obs(50, 60), obs(100, 60))  # 45 < 50 resets at t=40
    assert run.incidents == {}
    run.batch(obs(110, 60))  # 60 s since t=50
    assert run.only()["opened_at"] == (T0 + timedelta(seconds=110)).isoformat()


def test_hysteresis_and_quiet_period_hold_to_the_second() -> None:
    run = Run(only="pm25-high")
    run.batch(obs(0, 60), obs(60, 60))  # opens at 60
    run.batch(obs(100, 45))  # in the band (40..50): not cleared
    run.batch(obs(200, 39))  # cleared from 200
    run.batch(obs(319, 30))  # 119 s clear: still open
    assert run.only()["state"] == "open"
    run.batch(obs(320, 30))  # 120 s: resolved, at that event's time
    incident = run.only()
    assert (incident["state"], incident["resolved_at"]) == (
        "resolved",
        (T0 + timedelta(seconds=320)).isoformat(),
    )
    assert run.kinds() == ["opened", "resolved"]


def test_back_in_the_band_restarts_the_quiet_period() -> None:
    run = Run(only="pm25-high")
    run.batch(obs(0, 60), obs(60, 60), obs(100, 30), obs(200, 45), obs(300, 30), obs(419, 30))
    assert run.only()["state"] == "open"  # clear since 300 only
    run.batch(obs(420, 30))
    assert run.only()["state"] == "resolved"


def test_ten_thousand_repeats_are_one_incident_with_count_ten_thousand() -> None:
    run = Run(only="pm25-high")
    run.batch(obs(0, 60))
    values = [obs(60 + i * 0.01, 55 + i % 10) for i in range(10_000)]
    for start in range(0, 10_000, 2_500):
        run.batch(*values[start : start + 2_500])
    incident = run.only()
    assert (incident["count"], incident["peak"], incident["state"]) == (10_000, 64, "open")
    assert run.kinds() == ["opened"]


def test_a_breach_after_resolution_is_a_new_incident_linked_and_flapping() -> None:
    run = Run(only="pm25-high")
    run.batch(obs(0, 60), obs(60, 60), obs(100, 30), obs(220, 30))  # open 60, resolved 220
    first = run.only()["id"]
    run.batch(obs(300, 60), obs(360, 60))  # re-opens 140 s after: within the flap window
    second = next(i for i in run.incidents.values() if i["id"] != first)
    assert (second["previous"], second["flapping"], second["flap_count"]) == (first, True, 1)
    assert run.kinds() == ["opened", "resolved", "opened"]


def test_a_person_resolving_while_it_holds_keeps_it_quiet_until_cleared_and_raised_again() -> None:
    run = Run(only="pm25-high")
    run.batch(obs(0, 60), obs(60, 60))
    (key,) = run.states
    state = run.states[key]
    state.update(held=True, inc=None)  # what `ioc incidents resolve` writes with the incident
    run.batch(obs(100, 70), obs(200, 70))
    assert len(run.incidents) == 1  # no new incident while it still holds
    run.batch(obs(300, 30), obs(420, 30))  # cleared for the quiet period
    run.batch(obs(500, 60), obs(560, 60))  # raised again: a new occurrence
    assert len(run.incidents) == 2


def test_late_events_are_counted_and_change_nothing() -> None:
    run = Run(only="pm25-high")
    run.batch(obs(100, 30))
    run.batch(obs(50, 99), obs(0, 99))  # older than what the key applied in an earlier batch
    assert run.late == 2 and run.incidents == {}


def test_out_of_order_within_a_batch_equals_in_order_and_replay_is_identical() -> None:
    stream = [obs(t, 60 if (t // 100) % 3 else 30, entity=f"st-{t % 3}") for t in range(0, 2000, 7)]
    ordered = Run()
    for start in range(0, len(stream), 50):
        ordered.batch(*stream[start : start + 50])
    shuffled = Run()
    rng = random.Random(4)
    for start in range(0, len(stream), 50):
        chunk = stream[start : start + 50]
        rng.shuffle(chunk)
        shuffled.batch(*chunk)
    assert ordered.incidents and ordered.incidents == shuffled.incidents
    assert ordered.history == shuffled.history


def test_rate_of_change_opens_on_a_fast_rise_and_clears_when_it_slows() -> None:
    run = Run(only="level-rise")
    level = {"metric": "water_level", "type_name": "water_level"}
    run.batch(obs(0, 400, **level), obs(300, 430, **level))  # +30 in 5 min
    assert run.incidents == {}
    run.batch(obs(540, 455, **level))  # +55 within 10 min
    assert run.only()["values"]["change"] == 55
    run.batch(obs(1500, 460, **level))  # the window now holds only +5: cleared
    assert run.only()["state"] == "resolved"


@pytest.mark.parametrize(("window", "gap_s"), [("10m", 45), ("1d", 60)])
def test_rate_of_change_measures_from_the_window_s_extreme_as_points_leave_it(
    window: str, gap_s: int
) -> None:
    """The change of every breaching reading against a brute-force minimum over the readings
    still in the window, at most the newest 500: a 10 min window (readings leave by time) and a
    day (they leave by the cap); a random walk with jumps, in random batches."""
    rule = "window: 10m\n    change: 50\n    quiet: 0s"
    assert rule in RULES
    text = RULES.replace(
        rule, f"window: {window}\n    change: 0.000001\n    clear_change: -1\n    quiet: 0s"
    )
    run = Run(text, only="level-rise")  # opens on any rise, never clears: every rise repeats
    rng = random.Random(window)
    level = {"metric": "water_level", "type_name": "water_level"}
    span = 600 if window == "10m" else 86400
    seen: list[tuple[int, float]] = []
    t = rises = 0
    while len(seen) < 1400:
        readings = []
        for _ in range(rng.randint(1, 40)):
            t += rng.randint(1, gap_s)
            jump = rng.random() < 0.05
            readings.append((t, round(rng.uniform(0, 100) if jump else rng.gauss(50, 10), 3)))
        run.batch(*(obs(when, value, **level) for when, value in readings))
        last_rise = None
        for when, value in readings:
            seen.append((when, value))
            change = round(value - min(v for w, v in seen[-500:] if w >= when - span), 6)
            if change > 0:
                last_rise, rises = change, rises + 1
        if last_rise is not None:
            assert run.only()["values"]["change"] == last_rise, (len(seen), t)
    assert run.only()["count"] == rises > 1000


def test_geofence_opens_inside_and_clears_outside() -> None:
    run = Run(only="no-trucks-in-old-town")
    truck = {"domain": "transport", "type_name": "vehicle_position", "entity": "truck-9"}
    run.batch(
        obs(0, zone="z-1", **truck), obs(10, zone="z-old", **truck), obs(20, zone="z-old", **truck)
    )
    assert (run.only()["count"], run.only()["zone"]) == (2, "z-old")
    run.batch(obs(30, zone="z-2", **truck))
    assert run.only()["state"] == "resolved"


def test_correlation_opens_one_compound_incident_per_zone_within_its_window() -> None:
    run = Run(only="flood-and-calls")
    level = {"metric": "water_level", "type_name": "water_level"}
    call = {"domain": "security", "type_name": "emergency_call"}
    run.batch(obs(0, 520, entity="gauge", **level), obs(60, entity="caller-1", zone="z-2", **call))
    assert run.incidents == {}  # the call is in another zone
    run.batch(obs(120, entity="caller-2", **call), obs(130, entity="caller-3", **call))
    incident = run.only()
    assert (incident["key"], incident["count"]) == ("z-1", 2)
    assert set(incident["entities"]) == {"caller-2", "caller-3"}
    run.batch(obs(2000, 480, entity="gauge", **level))  # 15 min later: no longer both
    assert run.only()["state"] == "resolved"


def test_silence_is_judged_against_the_sources_watermark_not_the_wall_clock() -> None:
    run = Run(only="station-silent")
    run.batch(obs(0, 10, entity="st-a"), obs(0, 10, entity="st-b"))
    rule = run.rules.by_id("station-silent")
    states = {key: state for (rule_id, key), state in run.states.items() if rule_id == rule.id}
    from rules.engine import Outcome

    out = Outcome()
    check_silence(rule, states, {"urn:aq": T0 + timedelta(minutes=9)}, out)
    assert out.incidents == {}
    run.batch(obs(900, 10, entity="st-b"))  # st-b still reports: the source's watermark moves
    states = {key: state for (rule_id, key), state in run.states.items() if rule_id == rule.id}
    out = Outcome()
    check_silence(rule, states, {"urn:aq": T0 + timedelta(seconds=900)}, out)
    (incident,) = out.incidents.values()
    assert (incident["key"], incident["opened_at"]) == (
        "st-a",
        (T0 + timedelta(minutes=10)).isoformat(),
    )
    run.states.update(out.states)
    run.batch(obs(950, 10, entity="st-a"))  # it reports again: resolved
    assert run.incidents[incident["id"]]["state"] == "resolved"


def test_a_bad_rule_names_the_file_the_rule_and_the_field() -> None:
    bad = RULES.replace("clear_at: 40", "clear_at: 70").replace(
        "    window: 10m\n", "    window: soon\n"
    )
    with pytest.raises(RuleError) as caught:
        load_rule_files([("city/air.yaml", bad)])
    problems = "\n".join(caught.value.problems)
    assert "city/air.yaml: rule 'pm25-high'" in problems and "clear_at (70.0)" in problems
    assert "city/air.yaml: rule 'level-rise': window:" in problems


def test_correlation_conditions_from_separate_agents_count_whatever_their_arrival_order() -> None:
    """Two domains' agents commit their batches in turn, so a zone sees an older event after a
    newer one. The compound incident is the same as in time order, opened when the last
    condition came true."""
    level = {"metric": "water_level", "type_name": "water_level", "entity": "gauge"}
    call = {"domain": "security", "type_name": "emergency_call"}
    river = [obs(t, 520, **level) for t in (0, 300, 600)]
    calls = [obs(t, entity=f"caller-{t}", **call) for t in (120, 420)]

    in_order = Run(only="flood-and-calls")
    for o in sorted(river + calls, key=lambda o: o.time):
        in_order.batch(o)
    security_first = Run(only="flood-and-calls")
    security_first.batch(*calls)  # the security agent's batch commits first
    security_first.batch(*river)  # then the environment agent's, with older events
    a, b = in_order.only(), security_first.only()
    assert a["opened_at"] == b["opened_at"] == (T0 + timedelta(seconds=120)).isoformat()
    assert a["id"] == b["id"] and security_first.late == 0


def test_the_rules_an_event_type_reaches_are_worked_out_once_and_list_each_rule_once() -> None:
    """engine.targets: by domain and event type; a correlation whose conditions sit under "*"
    and under a domain is listed once for that domain's events (each event applied once)."""
    text = RULES.replace(
        "- {{domain: security, event_type: emergency_call}}".replace("{{", "{").replace("}}", "}"),
        "- {domain: '*', event_type: emergency_call}",
    )
    rules = load_rule_files([("rules.yaml", text)])
    water = [t.rule.id for t in targets(rules, "environment", "water_level")]
    assert water == ["pm25-high", "level-rise", "flood-and-calls", "station-silent"]
    assert [t.rule.id for t in targets(rules, "environment", "emergency_call")].count(
        "flood-and-calls"
    ) == 1
    assert [t.rule.id for t in targets(rules, "transport", "emergency_call")] == ["flood-and-calls"]
    assert targets(rules, "transport", "parking") == ()
    assert targets(rules, "transport", "vehicle_position")[0].rule.id == "no-trucks-in-old-town"
    assert targets(rules, "tourism", "visitor_count") == ()
    assert targets(rules, "environment", "water_level") is targets(
        rules, "environment", "water_level"
    )
    run = Run(text, only="flood-and-calls")
    call = {"domain": "environment", "type_name": "emergency_call", "zone": "z-1"}
    plan = group(
        run.rules, [obs(0, 600, metric="water_level", type_name="water_level"), obs(5, **call)]
    )
    assert [len(items) for items in plan.values()] == [2]


def test_the_runner_hands_the_engine_only_the_events_a_rule_looks_at() -> None:
    runner = RuleRunner(load_rule_files([("rules.yaml", RULES)]))
    batch = Batch()
    for i, (domain, kind, metric) in enumerate([
        ("environment", "air_quality", "pm25"), ("tourism", "visitor_count", "occupancy"),
        ("transport", "vehicle_position", "speed"), ("environment", "water_level", "water_level"),
    ]):  # fmt: skip
        event = EventRow(f"e{i}", T0 + timedelta(seconds=i), "urn:x", f"vn.daklak.{domain}.{kind}.v1",
                         domain, f"ent-{i}", "z-1", None, None, None, "{}")  # fmt: skip
        batch.add_event(
            event,
            [MeasurementRow(event.time, domain, metric, event.entity_id, "z-1", 1.0 + i, None)],
        )
    seen = runner.observations(batch)
    assert [(o.type_name, dict(o.values)) for o in seen] == [
        ("air_quality", {"pm25": 1.0}), ("vehicle_position", {"speed": 3.0}),
        ("water_level", {"water_level": 4.0}),
    ]  # fmt: skip
