"""The paging file, on-call shifts, quiet hours, grouping keys, inhibition and the page text."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from typer.testing import CliRunner

from ioc.cli import app
from paging.config import PagingSettings
from paging.load import PagingError, load_paging, parse_paging
from paging.model import QuietHours
from paging.oncall import on_call, shift_at, upcoming
from paging.pages import Page, constituents, group_key, quiet_until, render
from rules import load_rules
from rules.config import RulesSettings

HCM = ZoneInfo("Asia/Ho_Chi_Minh")
SHIPPED = Path("paging/defaults/paging.yaml")


def shipped() -> str:
    return SHIPPED.read_text()


def test_the_shipped_example_is_valid_and_names_its_secrets() -> None:
    config = parse_paging(shipped(), "shipped")
    assert config.routes[-1].match.everything
    assert "center_mail" in config.secret_names()
    assert config.grouping.critical_group_wait == timedelta(0)
    assert config.grouping.group_wait == timedelta(seconds=30)
    assert config.storm is not None and config.storm.threshold == 20


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (
            ("group_wait: 30s", "group_wait: soon"),
            "grouping.group_wait: not a duration",
        ),
        (
            (
                "receivers: [center, center_webhook]\n    policy: standard",
                "receivers: [centre]\n    policy: standard",
            ),
            "routes.critical.receivers: no receiver 'centre'",
        ),
        (
            ("- notify: shift_lead", "- notify: mayor"),
            "policies.standard.steps.2.notify: no on-call role 'mayor'",
        ),
        (
            ("people: [officer_a, officer_b]", "people: [officer_a, officer_z]"),
            "oncall.roles.duty_officer.people: no person 'officer_z'",
        ),
        (
            ("severities: [informational, low]", "severities: [low, critical]"),
            "quiet hours never apply to critical incidents",
        ),
        (
            (
                "  - name: everything-else       # the last route matches everything\n",
                "  - name: everything-else\n    match: {domain: [health]}\n",
            ),
            "routes: the last route (everything-else) must match everything",
        ),
        (("timezone: Asia/Ho_Chi_Minh", "timezone: Asia/Atlantis"), "unknown time zone"),
        (("  center_webhook:", "  center_webhook:\n    - url: json://x\n"), "center_webhook"),
    ],
)
def test_a_bad_paging_file_names_the_file_and_the_field(
    change: tuple[str, str], expected: str
) -> None:
    old, new = change
    assert old in shipped()
    with pytest.raises(PagingError) as caught:
        parse_paging(shipped().replace(old, new, 1), "city.yaml")
    assert any(p.startswith("city.yaml: ") and expected in p for p in caught.value.problems), (
        caught.value.problems
    )


def test_a_missing_secret_is_named_with_its_environment_variable() -> None:
    with pytest.raises(PagingError) as caught:
        load_paging(PagingSettings(secrets={"center_mail": "mailto://x"}))  # type: ignore[dict-item]
    assert any("IOC_PAGING__SECRETS__CENTER_WEBHOOK" in p for p in caught.value.problems)
    assert not any("CENTER_MAIL" in p for p in caught.value.problems)


def test_ioc_paging_check_exits_2_naming_the_field(tmp_path: Path) -> None:
    bad = tmp_path / "paging.yaml"
    bad.write_text(shipped().replace("repeat_interval: 4h", "repeat_interval: 1m"))
    result = CliRunner().invoke(app, ["paging", "check", str(bad)])
    assert result.exit_code == 2
    assert "repeat_interval must not be shorter than group_interval" in result.output
    good = tmp_path / "good.yaml"
    good.write_text(shipped())
    result = CliRunner().invoke(app, ["paging", "check", str(good)])
    assert result.exit_code == 0 and "valid: 3 routes" in result.output


def test_shifts_rotate_in_the_centers_time_zone() -> None:
    config = parse_paging(shipped(), "shipped")
    officer = config.oncall.roles["duty_officer"]  # 12 h shifts from 2026-01-01 07:00 local
    day = datetime(2026, 3, 10, 6, 59, tzinfo=HCM)
    assert shift_at("duty_officer", officer, "Asia/Ho_Chi_Minh", day).starts.hour == 19
    morning = shift_at("duty_officer", officer, "Asia/Ho_Chi_Minh", day + timedelta(minutes=1))
    evening = shift_at(
        "duty_officer", officer, "Asia/Ho_Chi_Minh", day + timedelta(hours=12, minutes=1)
    )
    assert morning.person != evening.person and {morning.person, evening.person} == {
        "officer_a", "officer_b"}  # fmt: skip
    assert morning.starts == datetime(2026, 3, 10, 7, 0, tzinfo=HCM)
    assert morning.ends == datetime(2026, 3, 10, 19, 0, tzinfo=HCM)
    assert [s.role for s in on_call(config.oncall, day)] == [
        "duty_officer",
        "shift_lead",
        "director",
    ]
    turns = upcoming(config.oncall, "duty_officer", day, 4)
    assert [t.person for t in turns[:2]] == [t.person for t in turns[2:]]  # two people alternate
    # before the rotation's start, it counts backwards without a gap
    early = shift_at(
        "duty_officer", officer, "Asia/Ho_Chi_Minh", datetime(2025, 12, 31, 20, tzinfo=HCM)
    )
    assert early.starts == datetime(2025, 12, 31, 19, tzinfo=HCM)


def test_quiet_hours_hold_low_severities_until_the_morning_and_never_critical() -> None:
    quiet = QuietHours.model_validate({"start": "22:00", "end": "06:00"})
    night = datetime(2026, 7, 1, 23, 30, tzinfo=HCM).astimezone(UTC)
    early = datetime(2026, 7, 2, 5, 0, tzinfo=HCM).astimezone(UTC)
    day = datetime(2026, 7, 2, 9, 0, tzinfo=HCM).astimezone(UTC)
    morning = datetime(2026, 7, 2, 6, 0, tzinfo=HCM)
    assert quiet_until(quiet, "Asia/Ho_Chi_Minh", "low", night) == morning
    assert quiet_until(quiet, "Asia/Ho_Chi_Minh", "low", early) == morning
    assert quiet_until(quiet, "Asia/Ho_Chi_Minh", "low", day) is None
    assert quiet_until(quiet, "Asia/Ho_Chi_Minh", "critical", night) is None
    assert quiet_until(quiet, "Asia/Ho_Chi_Minh", "high", night) is None
    lunch = QuietHours.model_validate({"start": "12:00", "end": "13:30", "severities": ["low"]})
    noon = datetime(2026, 7, 2, 12, 15, tzinfo=HCM)
    assert quiet_until(lunch, "Asia/Ho_Chi_Minh", "low", noon) == noon.replace(hour=13, minute=30)


def test_group_keys_follow_the_routes_labels() -> None:
    config = parse_paging(shipped(), "shipped")
    labels = {"zone": "66001", "domain": "health", "severity": "high", "rule": "r"}
    route = config.route_for(labels)
    assert route.name == "health-and-safety"
    assert group_key(route, config.grouping_of(route), labels) == (
        "route=health-and-safety|zone=66001|domain=health"
    )
    assert config.route_for({**labels, "severity": "critical"}).name == "critical"
    assert config.route_for({**labels, "domain": "tourism"}).name == "everything-else"


def test_a_compound_rule_groups_the_rules_its_conditions_look_at() -> None:
    found = constituents(load_rules(RulesSettings()))
    flood = found["compound.flood-impact"]
    assert flood and all(not r.startswith("compound.") for r in flood)
    assert {"env.rain.heavy", "env.river.flood-alert-2", "transport.corridor.slow"} <= flood


def test_a_page_speaks_vietnamese_then_english_with_links_and_how_to_acknowledge() -> None:
    incident = {
        "id": "0b7c", "title": "River above alert II", "severity": "critical", "zone_id": "66001",
        "description": {"vi": "Sông vượt báo động II", "en": "River above alert level II"},
        "opened_at": "2026-07-01T10:00:00+00:00", "count": 3, "state": "open",
    }  # fmt: skip
    page = Page(kind="first", labels={"zone": "66001"}, new=[incident],
                zone_names={"66001": "Buôn Ma Thuột"})  # fmt: skip
    subject, body = render(page, "http://grafana/d/zone?var-zone={zone}", None)
    assert subject == "[CRITICAL] River above alert II · Buôn Ma Thuột"
    assert body.index("VI: Sông vượt") < body.index("EN: River above")
    assert "http://grafana/d/zone?var-zone=66001" in body
    assert "ioc incidents ack 0b7c" in body
    _, linked = render(
        page, "http://g/{zone}", lambda item: f"https://ioc.example.org/l/{item['id']}/x"
    )
    assert "acknowledge: https://ioc.example.org/l/0b7c/x" in linked
