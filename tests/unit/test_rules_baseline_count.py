"""The baseline and count rule kinds on crafted streams, in event time (rules.engine is pure):
raising, hysteresis, clearing to the second, window edges, late events, replays, the state's
bound, and rule files whose errors name the file, the rule and the field."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import pytest

from rules.engine import Observation, describe
from rules.load import RuleError, load_rule_files
from rules.model import Baseline
from tests.unit.test_rules_engine import Run

T0 = datetime(2026, 7, 10, 1, 0, tzinfo=UTC)  # 08:00 in Asia/Ho_Chi_Minh, July
TEXT = "description: {vi: '{value} tại {zone}', en: '{value} in {zone} (usual {expected}, band {upper})'}"

RULES = f"""
rules:
  - id: dengue-seasonal
    kind: baseline
    title: Dengue above its season
    domain: health
    event_type: disease_cases
    where: {{disease: dengue}}
    metric: new_cases
    key: zone
    timezone: Asia/Ho_Chi_Minh
    raise_sd: 2
    clear_sd: 1
    min_value: 5
    for: 1d
    quiet: 1d
    flap_window: 7d
    default: {{mean: 0.5, sd: 0.5}}
    baseline:
      7: {{mean: 4, sd: 3}}
      8: {{mean: 6, sd: 4}}
    severity: medium
    category: health
    subcategory: outbreak
    {TEXT}
  - id: calls-cluster
    kind: count
    title: Emergency calls clustering in a zone
    domain: security
    event_type: emergency_call
    window: 10m
    raise_at: 5
    clear_at: 2
    quiet: 60s
    flap_window: 30m
    severity: high
    category: security
    subcategory: callSurge
    {TEXT}
"""
DAY = 86400.0


def cases(t: float, value: float, *, zone: str = "z-1", disease: str = "dengue") -> Observation:
    return Observation(T0 + timedelta(seconds=t), "health", "disease_cases", "urn:hs",
                       f"hs-{zone}", zone, {"new_cases": value},
                       f'{{"disease": "{disease}"}}')  # fmt: skip


def call(t: float, *, zone: str = "z-1", entity: str = "call-1") -> Observation:
    return Observation(T0 + timedelta(seconds=t), "security", "emergency_call", "urn:calls",
                       entity, zone, {"wait_time": 5.0})  # fmt: skip


def at(seconds: float) -> str:
    return (T0 + timedelta(seconds=seconds)).isoformat()


# -- baseline -------------------------------------------------------------------------------------


def test_baseline_raises_above_mean_plus_k_sd_for_its_duration_and_clears_under_the_lower_band() -> (
    None
):
    run = Run(RULES, only="dengue-seasonal")
    run.batch(cases(0, 11))  # July: band mean 4 + 2 * 3 = 10; 11 is above it: pending for 1d
    assert run.incidents == {}
    run.batch(cases(DAY, 13))  # above the band a day later: opens
    incident = run.only()
    assert incident["opened_at"] == at(DAY) and incident["value"] == 13
    assert incident["values"] == {"new_cases": 13, "expected": 4.0, "upper": 10.0}
    run.batch(cases(2 * DAY, 8))  # between 7 (mean + 1 SD) and 10: the band, nothing changes
    run.batch(cases(3 * DAY, 6.9))  # under 7: clear, for the quiet period of 1d
    assert run.only()["state"] == "open"
    run.batch(cases(4 * DAY, 6))
    assert run.only()["state"] == "resolved" and run.only()["resolved_at"] == at(4 * DAY)
    assert run.kinds() == ["opened", "resolved"]


def test_baseline_value_at_the_band_does_not_raise_and_other_diseases_are_not_looked_at() -> None:
    run = Run(RULES, only="dengue-seasonal")
    run.batch(cases(0, 10), cases(DAY, 10), cases(2 * DAY, 10))  # equal to mean + 2 SD
    run.batch(cases(3 * DAY, 50, disease="influenza"), cases(4 * DAY, 50, disease="influenza"))
    assert run.incidents == {}
    assert run.states["dengue-seasonal", "z-1"]["t"] == at(2 * DAY)  # influenza: not seen


def test_baseline_needs_its_minimum_value_over_a_near_zero_season() -> None:
    run = Run(RULES, only="dengue-seasonal")
    feb = (datetime(2027, 2, 1, 1, 0, tzinfo=UTC) - T0).total_seconds()  # the default row
    run.batch(cases(feb, 4), cases(feb + DAY, 4))  # far above 0.5 + 2 * 0.5, but under 5 cases
    assert run.incidents == {}
    run.batch(cases(feb + 2 * DAY, 6), cases(feb + 3 * DAY, 7))
    assert run.only()["opened_at"] == at(feb + 3 * DAY)


def test_baseline_picks_the_row_by_local_time_in_the_rule_s_time_zone() -> None:
    (rule,) = [r for r in load_rule_files([("r.yaml", RULES)]) if r.id == "dengue-seasonal"]
    assert isinstance(rule, Baseline)
    late_july_utc = datetime(2026, 7, 31, 18, 0, tzinfo=UTC)  # 1 August, 01:00 in Vietnam
    assert rule.upper(late_july_utc) == 6 + 2 * 4
    assert rule.upper(late_july_utc - timedelta(hours=8)) == 4 + 2 * 3  # 31 July, 17:00
    weekly = load_rule_files([("w.yaml", RULES.replace(
        "    baseline:\n      7: {mean: 4, sd: 3}\n      8: {mean: 6, sd: 4}",
        "    period: iso_week\n    baseline:\n      52: {mean: 9, sd: 1}\n      1: {mean: 2, sd: 1}",
    ))]).by_id("dengue-seasonal")  # fmt: skip
    assert isinstance(weekly, Baseline)
    week_53 = datetime(2026, 12, 31, 5, 0, tzinfo=UTC)  # 2026-W53 (Thursday 31 December)
    assert week_53.isocalendar().week == 53
    assert weekly.upper(week_53) == 11  # week 53 takes week 52's row
    assert weekly.upper(datetime(2027, 1, 6, tzinfo=UTC)) == 4  # 2027-W01
    assert weekly.upper(datetime(2027, 3, 3, tzinfo=UTC)) == 1.5  # not in the table: default


def test_baseline_description_names_the_usual_value_and_the_band() -> None:
    run = Run(RULES, only="dengue-seasonal")
    run.batch(cases(0, 11), cases(DAY, 13))
    rule = run.rules.by_id("dengue-seasonal")
    assert describe(rule, run.only())[1] == "13 in z-1 (usual 4, band 10)"


# -- count ----------------------------------------------------------------------------------------


def test_count_raises_on_the_event_that_makes_n_within_the_window() -> None:
    run = Run(RULES, only="calls-cluster")
    run.batch(*(call(t) for t in (0, 150, 300, 450)))
    run.batch(call(600))  # the call at 0 left the window at 600: still 4
    assert run.incidents == {}
    run.batch(call(601, entity="call-2"))  # 150..601: 5 calls within 10 minutes
    incident = run.only()
    assert incident["opened_at"] == at(601) and incident["value"] == 5
    assert incident["zone"] == "z-1" and incident["entity"] == "call-2"
    assert incident["values"] == {"in_window": 5}
    run.batch(call(602, entity="call-3"))  # a repeat: the same incident, counted
    assert run.only()["count"] == 2 and run.kinds() == ["opened"]


def test_count_hysteresis_and_quiet_resolve_at_the_exact_time_it_fell_plus_quiet() -> None:
    run = Run(RULES, only="calls-cluster")
    run.batch(*(call(t) for t in (0, 60, 120, 180, 240)))  # opens at 240
    run.batch(call(700))  # window (100, 700]: 120, 180, 240, 700 = 4, in the band (2 < 4 < 5)
    assert run.only()["state"] == "open"
    # no call for half an hour: the count fell to 2 when 180 left the window (780), and the
    # quiet period (60 s) ended at 840; the next call, much later, writes it, dated 840
    run.batch(call(2400))
    incident = run.only()
    assert incident["state"] == "resolved" and incident["resolved_at"] == at(840)
    assert run.kinds() == ["opened", "resolved"]


def test_count_back_over_the_clear_level_within_the_quiet_period_keeps_it_open() -> None:
    run = Run(RULES, only="calls-cluster")
    run.batch(*(call(t) for t in (0, 10, 20, 30, 40)))  # opens at 40
    run.batch(call(615))  # (15, 615]: 20, 30, 40, 615 = 4, in the band
    run.batch(call(660))  # 2 since 630 (when 30 left): clear, the quiet period runs
    run.batch(call(665))  # 615, 660, 665 = 3: over the clear level again within the quiet period
    assert run.only()["state"] == "open"
    run.batch(call(1300))  # fell to 2 at 1215 (when 615 left), resolved at 1215 + 60
    assert run.only()["resolved_at"] == at(1275)


def test_count_a_new_burst_after_resolution_is_a_new_linked_flapping_incident() -> None:
    run = Run(RULES, only="calls-cluster")
    run.batch(*(call(t) for t in range(0, 50, 10)))
    first = run.only()["id"]
    run.batch(*(call(t) for t in range(1000, 1050, 10)))
    assert run.kinds() == ["opened", "resolved", "opened"]
    (second,) = [i for i in run.incidents.values() if i["id"] != first]
    assert run.incidents[first]["resolved_at"] == at(680)  # 2 left since 620 (20 left), + 60
    assert second["previous"] == first and second["flapping"] and second["opened_at"] == at(1040)


def test_count_is_per_zone_and_late_events_change_nothing() -> None:
    run = Run(RULES, only="calls-cluster")
    run.batch(*(call(t, zone="z-2") for t in (0, 1, 2, 3)), call(100, zone="z-1"))
    run.batch(call(50, zone="z-1"), call(4, zone="z-2"))  # z-1's 50 is older than its 100
    assert run.late == 1
    assert [i["zone"] for i in run.incidents.values()] == ["z-2"]
    assert run.states["calls-cluster", "z-1"]["times"] == [
        int((T0 + timedelta(seconds=100)).timestamp() * 1000)
    ]


def test_count_state_stays_bounded_by_raise_at() -> None:
    run = Run(RULES, only="calls-cluster")
    for start in range(0, 10_000, 500):
        run.batch(*(call(t / 10) for t in range(start, start + 500)))  # 10 calls a second
    assert len(run.states["calls-cluster", "z-1"]["times"]) == 5
    assert run.only()["count"] == 10_000 - 4


def test_replay_and_batching_give_the_same_incidents_for_both_kinds() -> None:
    rng = random.Random(11)
    stream: list[Observation] = []
    for minute in range(0, 600):
        burst = 3 if (minute // 60) % 3 == 0 else 0  # every third hour, a burst of calls
        for _ in range(rng.randrange(0, 2) + burst):
            stream.append(call(minute * 60 + rng.random() * 60, zone=f"z-{rng.randrange(2)}"))
    for day in range(0, 60):
        stream.append(cases(day * DAY, 14 if (day // 5) % 2 else 3, zone=f"z-{day % 2}"))
    stream.sort(key=lambda o: o.time)

    def replay(size: int, shuffle: bool) -> Run:
        run = Run(RULES)
        for start in range(0, len(stream), size):
            chunk = stream[start : start + size]
            if shuffle:
                random.Random(start).shuffle(chunk)
            run.batch(*chunk)
        return run

    once = replay(40, shuffle=False)
    assert {i["rule"] for i in once.incidents.values()} == {"calls-cluster", "dengue-seasonal"}
    assert "resolved" in once.kinds()
    for other in (replay(40, shuffle=False), replay(40, shuffle=True)):
        assert other.incidents == once.incidents and other.history == once.history
    # each key's events in time order, whatever the batch boundaries: the same incidents
    assert replay(7, shuffle=False).incidents == once.incidents


# -- rule files -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        (("      8: {mean: 6, sd: 4}\n", ""), None),  # a missing month is fine with a default
        (("    default: {mean: 0.5, sd: 0.5}\n", ""),
         "rule 'dengue-seasonal': baseline: Value error, no row for month [1, 2, 3, 4, 5, 6, 9"),
        (("      8: {mean: 6, sd: 4}", "      13: {mean: 6, sd: 4}"),
         "rule 'dengue-seasonal': baseline: Value error, no month [13]"),
        (("      7: {mean: 4, sd: 3}", "      7: {mean: 4, sd: -3}"),
         "rule 'dengue-seasonal': baseline.7.sd: Input should be greater than or equal to 0"),
        (("    raise_sd: 2\n", "    raise_sd: 0\n"), "rule 'dengue-seasonal': raise_sd: "),
        (("    clear_sd: 1\n", "    clear_sd: 3\n"),
         "rule 'dengue-seasonal': clear_sd: Value error, clear_sd (3.0) must not exceed raise_sd"),
        (("    timezone: Asia/Ho_Chi_Minh", "    timezone: Asia/Buon_Ma_Thuot"),
         "rule 'dengue-seasonal': timezone: Value error, not an IANA time zone"),
        (("    clear_at: 2\n", "    clear_at: 5\n"),
         "rule 'calls-cluster': clear_at: Value error, clear_at (5) must be under raise_at (5)"),
        (("    raise_at: 5\n", "    raise_at: 0\n"), "rule 'calls-cluster': raise_at: "),
        (("    window: 10m\n", "    window: 0s\n"),
         "rule 'calls-cluster': window: Value error, window must be positive"),
    ],
)  # fmt: skip
def test_a_bad_baseline_or_count_rule_names_the_file_the_rule_and_the_field(
    change: tuple[str, str], problem: str | None
) -> None:
    old, new = change
    assert old in RULES
    text = RULES.replace(old, new)
    if problem is None:
        assert len(load_rule_files([("city/rules.yaml", text)])) == 2
        return
    with pytest.raises(RuleError) as caught:
        load_rule_files([("city/rules.yaml", text)])
    assert any(p.startswith(f"city/rules.yaml: {problem}") for p in caught.value.problems), (
        caught.value.problems
    )
