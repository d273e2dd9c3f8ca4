"""Paging on the real database, a real SMTP server (aiosmtpd) and a real webhook receiver: the
notifier runs in-process against a scratch database whose incidents the real pipeline opens."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest
from psycopg.rows import dict_row
from pydantic import SecretStr

from localdev.runtime import LocalPostgres
from notifier.core import Context, Links
from notifier.service import Notifier
from notifier.silences import add_silence, expire_silence
from paging.load import parse_paging
from paging.model import RouteMatch
from rules import load_rule_files
from streams.settings import Settings
from tests.integration.test_rules_in_pipeline import TEXT
from tests.support.harness import Harness, pipeline_harness
from tests.support.paging import MailServer, WebhookServer

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def superuser(settings: Settings, pg_conninfo: str) -> str:
    return LocalPostgres(settings).superuser_conninfo()


POINT = {"type": "Point", "coordinates": [108.0506, 12.6667]}  # a Buôn Ma Thuột ward
ELSEWHERE = {"type": "Point", "coordinates": [108.4390, 12.6925]}  # another commune


def rules(severity: str = "high", *, compound: bool = False) -> str:
    """pm25 per entity; with `compound`, also a water-level rule and a correlation of the two."""
    text = f"""
rules:
  - id: pm25-high
    kind: threshold
    title: PM2.5 above the limit
    domain: environment
    event_type: air_quality
    metric: pm25
    raise_at: 50
    clear_at: 40
    quiet: 0s
    flap_window: 0s
    severity: {severity}
    category: environment
    subcategory: airPollution
    {TEXT}
"""
    if compound:
        text += f"""
  - id: no2-high
    kind: threshold
    title: NO2 above the limit
    domain: environment
    event_type: air_quality
    metric: no2
    raise_at: 200
    clear_at: 150
    quiet: 0s
    severity: high
    category: environment
    subcategory: airPollution
    {TEXT}
  - id: smog
    kind: correlation
    title: Smog
    conditions:
      - {{domain: environment, event_type: air_quality, metric: pm25, op: ">=", value: 50}}
      - {{domain: environment, event_type: air_quality, metric: no2, op: ">=", value: 200}}
    window: 1m
    quiet: 0s
    severity: critical
    category: environment
    subcategory: airPollution
    {TEXT}
"""
    return text


def paging_yaml(
    *, wait: str = "2s", interval: str = "4s", repeat: str = "1h", steps: str = "",
    storm: int = 1000, quiet: str = "",
) -> str:  # fmt: skip
    policy = "    policy: chain\n" if steps else ""
    return f"""
receivers:
  center: [{{secret: center}}]
  hook: [{{secret: hook}}]
people:
  an: {{name: "Trực ban An", contacts: [{{secret: an}}]}}
  binh: {{name: "Trưởng ca Bình", contacts: [{{secret: binh}}]}}
  chi: {{name: "Giám đốc Chi", contacts: [{{secret: chi}}]}}
grouping:
  group_wait: {wait}
  critical_group_wait: 0s
  group_interval: {interval}
  repeat_interval: {repeat}
routes:
  - name: all
    receivers: [center, hook]
{policy}storm:
  threshold: {storm}
  window: 1m
  wait: 2s
  receivers: [center]
{quiet}
oncall:
  timezone: Asia/Ho_Chi_Minh
  roles:
    duty_officer: {{people: [an]}}
    shift_lead: {{people: [binh]}}
    director: {{people: [chi]}}
policies:
  chain:
    steps:
{steps or "      - notify: duty_officer"}
"""


def reading(h: Harness, name: str, pm25: float, *, entity: str, t: datetime,
            where: dict[str, Any] = POINT, no2: float | None = None) -> Any:  # fmt: skip
    data = {"entity_id": entity, "location": where, "pm25": pm25}
    if no2 is not None:
        data["no2"] = no2
    return h.event(data, id=name, time=t)


@contextlib.asynccontextmanager
async def notifier(h: Harness, mail: MailServer, hook: WebhookServer, text: str,
                   poll: float = 0.05, links: Links | None = None) -> AsyncIterator[Notifier]:  # fmt: skip
    """The notifier on the harness's database, sending to the local servers."""
    secrets = {name: mail.url(f"{name}@ioc.test") for name in ("center", "an", "binh", "chi")}
    secrets["hook"] = hook.url()
    paging = h.settings.paging.model_copy(
        update={
            "secrets": {k: SecretStr(v) for k, v in secrets.items()},
            "poll_interval_s": poll,
            "retry_first_s": 0.2,
            "retry_cap_s": 1.0,
        }
    )
    settings = h.settings.model_copy(update={"paging": paging})
    ctx = Context(parse_paging(text, "test-paging.yaml"), paging,
                  load_rule_files([("harness-rules.yaml", h.rules or "rules: []")]), links)  # fmt: skip
    running = Notifier(settings, ctx)
    task = asyncio.create_task(running.run())
    try:
        yield running
    finally:
        running.stop()
        await asyncio.wait_for(task, 10)


def rows(h: Harness, sql: str, *args: Any) -> list[dict[str, Any]]:
    with h.owner() as conn, conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(sql, args).fetchall()


async def test_forty_incidents_in_one_zone_make_one_page_and_a_later_one_one_more(
    settings: Settings, superuser: str
) -> None:
    now = datetime.now(UTC) - timedelta(seconds=5)
    async with pipeline_harness(settings, superuser, rules=rules()) as h:
        with MailServer() as mail, WebhookServer() as hook:
            async with notifier(h, mail, hook, paging_yaml(wait="2s", interval="3s")):
                batch = [reading(h, f"e{n}", 60, entity=f"st-{n}", t=now) for n in range(40)]
                await h.handle("environment", batch)
                first = await mail.wait_for(lambda m: len(m) >= 1, timeout=10)
                await asyncio.sleep(1.5)  # nothing else comes within the group interval
                assert len(mail.to("center@ioc.test")) == 1, [m.subject for m in mail.mails]
                page = first[0]
                assert "40 sự cố / incidents" in page.subject
                assert page.body.count("* [cao / high] PM2.5 above the limit") == 40
                assert "dashboard: http://" in page.body and "ioc incidents ack" in page.body
                assert page.id.startswith("<") and page.id.endswith("@ioc-notifier>")
                # the webhook got the same page, with its notification id as Idempotency-Key
                assert len(hook.hooks) == 1 and hook.hooks[0].headers["Idempotency-Key"]

                await h.handle("environment", [reading(h, "late", 70, entity="st-late",
                                                       t=now + timedelta(seconds=1))])  # fmt: skip
                mails = await mail.wait_for(lambda m: len(m) >= 2, timeout=10)
                second = mails[1]
                written = [
                    r["created_at"]
                    for r in rows(
                        h,
                        "SELECT created_at FROM notifications WHERE receiver = 'center' ORDER BY 1",
                    )
                ]
                assert len(written) == 2
                assert written[1] - written[0] >= timedelta(seconds=3)  # not before group_interval
                assert "st-late" in second.body or "Mới / New (1)" in second.body
                assert "Vẫn đang diễn ra / Still open (40)" in second.body
                await asyncio.sleep(1.0)
                assert len(mail.to("center@ioc.test")) == 2


def zone_points(settings: Settings, count: int) -> list[tuple[str, dict[str, Any]]]:
    """`count` zones of the shipped zone file, each with a point inside it."""
    from geo.zones import ZoneIndex

    zones = ZoneIndex.from_file(settings.geo.zone_file).zones[:count]
    points = [z.geometry.representative_point() for z in zones]
    return [
        (z.id, {"type": "Point", "coordinates": [p.x, p.y]})
        for z, p in zip(zones, points, strict=True)
    ]


async def test_a_storm_over_the_threshold_makes_one_storm_page(
    settings: Settings, superuser: str
) -> None:
    now = datetime.now(UTC) - timedelta(seconds=5)
    places = zone_points(settings, 6)
    async with pipeline_harness(settings, superuser, rules=rules()) as h:
        with MailServer() as mail, WebhookServer() as hook:
            text = paging_yaml(wait="3s", interval="30s", storm=20)
            async with notifier(h, mail, hook, text):
                batch = [reading(h, f"e{n}", 60, entity=f"st-{n}", t=now,
                                 where=places[n % len(places)][1]) for n in range(30)]  # fmt: skip
                await h.handle("environment", batch)
                await mail.wait_for(lambda m: len(m) >= 1, timeout=15)
                await asyncio.sleep(4)  # the zones' own group_wait has passed: nothing else
                pages = mail.to("center@ioc.test")
                assert len(pages) == 1, [m.subject for m in pages]
                assert "[STORM]" in pages[0].subject and "30 sự cố" in pages[0].subject
                assert "Theo khu vực / by zone" in pages[0].body
                groups = rows(h, "SELECT storm, state FROM page_groups ORDER BY storm")
                assert [g["storm"] for g in groups if g["state"] == "active"] == [True]


async def test_escalation_pages_each_role_on_time_and_an_acknowledgement_stops_it(
    settings: Settings, superuser: str
) -> None:
    steps = """      - notify: duty_officer
      - wait: 3s
      - notify: shift_lead
      - wait: 3s
      - notify: director"""
    now = datetime.now(UTC) - timedelta(seconds=5)
    async with pipeline_harness(settings, superuser, rules=rules("critical")) as h:
        with MailServer() as mail, WebhookServer() as hook:
            async with notifier(h, mail, hook, paging_yaml(steps=steps)):
                await h.handle("environment", [reading(h, "a", 60, entity="st-a", t=now)])
                await mail.wait_for(lambda m: any("chi@ioc.test" in x.rcpt for x in m), timeout=15)
                (officer,) = mail.to("an@ioc.test")
                (lead,) = mail.to("binh@ioc.test")
                (director,) = mail.to("chi@ioc.test")
                (first,) = rows(h, "SELECT first_paged_at FROM page_groups")
                t0 = first["first_paged_at"].timestamp()
                for mail_, due in ((officer, t0), (lead, t0 + 3), (director, t0 + 6)):
                    assert abs(mail_.received - due) < 2.0, (mail_.subject, mail_.received - t0)
                assert "[ESCALATION]" in lead.subject and "Trưởng ca Bình" in lead.body
                assert len(mail.to("center@ioc.test")) == 1  # the route's page, once

                # a second incident; acknowledged between the first and the second step
                from sinks.incidents import act

                await h.handle("environment", [reading(h, "b", 60, entity="st-b",
                                                       t=now + timedelta(seconds=1),
                                                       where=zone_points(settings, 1)[0][1])])  # fmt: skip
                await mail.wait_for(lambda m: len(m) >= 5, timeout=10)  # center + officer
                (second,) = [i for i in h.incidents() if i["entity_id"] == "st-b"]
                with h.owner() as conn:
                    act(conn, str(second["id"]), "acknowledge", "officer-an", "cli")
                await asyncio.sleep(7)  # past both later steps
                assert len(mail.to("binh@ioc.test")) == 1 and len(mail.to("chi@ioc.test")) == 1
                (group,) = rows(h, "SELECT escalation_state, escalation_note FROM page_groups "
                                   "WHERE labels->>'zone' = %s", second["zone_id"])  # fmt: skip
                assert (group["escalation_state"], group["escalation_note"]) == (
                    "stopped",
                    "acknowledged",
                )
                kinds = [r["kind"] for r in rows(h, "SELECT kind FROM incident_events WHERE "
                                                    "incident_id = %s ORDER BY id", second["id"])]  # fmt: skip
                assert kinds[-1] == "escalation_stopped" and "escalated" in kinds


async def test_a_compound_incident_mutes_its_constituents_and_says_it_groups_the_paged_ones(
    settings: Settings, superuser: str
) -> None:
    now = datetime.now(UTC) - timedelta(minutes=5)
    (zone, place), (_other_zone, other) = zone_points(settings, 2)
    async with pipeline_harness(settings, superuser, rules=rules(compound=True)) as h:
        with MailServer() as mail, WebhookServer() as hook:
            async with notifier(h, mail, hook, paging_yaml(wait="1s", interval="2s")):
                # pm25 alone, in two zones: both paged after group_wait
                await h.handle("environment", [
                    reading(h, "p1", 60, entity="st-1", t=now, where=place),
                    reading(h, "q1", 60, entity="st-9", t=now, where=other),
                ])  # fmt: skip
                await mail.wait_for(lambda m: len(mail.to("center@ioc.test")) >= 2, timeout=10)
                # then no2 in the first zone: the compound opens (critical: paged at once)
                await h.handle("environment", [
                    reading(h, "p2", 60, entity="st-1", t=now + timedelta(seconds=1),
                            where=place, no2=250),
                ])  # fmt: skip
                await mail.wait_for(
                    lambda m: any("Smog" in x.subject for x in mail.to("center@ioc.test")), 10
                )
                await asyncio.sleep(3)  # the no2 incident's group_wait and an interval pass
                subjects = [m.subject for m in mail.to("center@ioc.test")]
                assert len(subjects) == 3, subjects  # pm25 x2, the compound; never no2
                smog = next(m for m in mail.to("center@ioc.test") if "Smog" in m.subject)
                grouped = smog.body.split("Grouped under this compound incident")[1]
                assert "PM2.5 above the limit" in grouped and "already paged" in grouped
                muted = rows(h, "SELECT labels->>'rule' AS rule, labels->>'zone' AS zone, muted_by "
                                "FROM page_members WHERE muted_by IS NOT NULL ORDER BY 1")  # fmt: skip
                assert {(m["rule"], m["zone"]) for m in muted} == {("no2-high", zone),
                                                                   ("pm25-high", zone)}  # fmt: skip
                assert all(m["muted_by"].startswith("inhibited:") for m in muted)

                # pm25 falls and its condition leaves the compound's 1 min window: the compound
                # clears, and what it muted and is still open (no2) is paged, once
                await h.handle("environment", [
                    reading(h, "p3", 30, entity="st-1", t=now + timedelta(minutes=3),
                            where=place, no2=250),
                ])  # fmt: skip
                await mail.wait_for(
                    lambda m: any("NO2" in x.body for x in mail.to("center@ioc.test")
                                  if "Smog" not in x.subject), timeout=10,
                )  # fmt: skip
                history = rows(
                    h,
                    "SELECT i.rule_id, e.kind FROM incident_events e JOIN incidents i "
                    "ON i.id = e.incident_id WHERE e.actor = 'notifier' ORDER BY e.id",
                )
                no2 = [r["kind"] for r in history if r["rule_id"] == "no2-high"]
                assert no2 == ["inhibited", "unmuted", "paged"]
                await asyncio.sleep(2.5)
                alone = [m for m in mail.to("center@ioc.test") if "Smog" not in m.subject]
                assert sum("NO2" in m.body for m in alone) == 1


async def test_silences_mute_exactly_what_they_match_until_they_end(
    settings: Settings, superuser: str
) -> None:
    now = datetime.now(UTC) - timedelta(seconds=30)
    (zone, place), (other_zone, other), (third_zone, third) = zone_points(settings, 3)
    async with pipeline_harness(settings, superuser, rules=rules()) as h:
        with MailServer() as mail, WebhookServer() as hook, h.owner() as conn:
            short = add_silence(conn, RouteMatch(zone=[zone]), datetime.now(UTC),
                                datetime.now(UTC) + timedelta(seconds=4), "lead-binh",
                                "pump station maintenance")  # fmt: skip
            long = add_silence(conn, RouteMatch(zone=[third_zone], domain=["environment"]),
                               datetime.now(UTC), datetime.now(UTC) + timedelta(hours=1),
                               "lead-binh", "sensor recalibration")  # fmt: skip
            async with notifier(h, mail, hook, paging_yaml(wait="1s", interval="2s")):
                await h.handle("environment", [
                    reading(h, "a", 60, entity="st-a", t=now, where=place),
                    reading(h, "b", 60, entity="st-b", t=now, where=other),
                    reading(h, "c", 60, entity="st-c", t=now, where=third),
                ])  # fmt: skip
                await mail.wait_for(lambda m: len(mail.to("center@ioc.test")) >= 1, timeout=10)
                await asyncio.sleep(1.5)
                paged = mail.to("center@ioc.test")
                assert len(paged) == 1 and "st-b" not in paged[0].body  # (the body names zones)
                assert other_zone in paged[0].body or "Mới / New (1)" in paged[0].body
                # the short silence ends: its zone is paged; the long one still mutes
                await mail.wait_for(lambda m: len(mail.to("center@ioc.test")) >= 2, timeout=10)
                assert time.time() >= short["ends_at"].timestamp()
                expire_silence(conn, str(long["id"]), "lead-binh")
                await mail.wait_for(lambda m: len(mail.to("center@ioc.test")) >= 3, timeout=10)
                await asyncio.sleep(1)
                assert len(mail.to("center@ioc.test")) == 3
                history = rows(h, "SELECT i.zone_id, e.kind, e.detail FROM incident_events e "
                                  "JOIN incidents i ON i.id = e.incident_id "
                                  "WHERE e.actor = 'notifier' ORDER BY e.id")  # fmt: skip
                by_zone = {z: [r["kind"] for r in history if r["zone_id"] == z]
                           for z in (zone, other_zone, third_zone)}  # fmt: skip
                assert by_zone[zone] == ["silenced", "unmuted", "paged"]
                assert by_zone[other_zone] == ["paged"]
                assert by_zone[third_zone] == ["silenced", "unmuted", "paged"]
                silenced = next(r["detail"] for r in history if r["kind"] == "silenced")
                assert silenced["by"].startswith("silence:") and silenced["set_by"] == "lead-binh"
                assert silenced["comment"] in ("pump station maintenance", "sensor recalibration")


async def test_a_flapping_incident_is_not_paged_again_and_the_reminder_counts_it(
    settings: Settings, superuser: str
) -> None:
    now = datetime.now(UTC) - timedelta(seconds=30)
    text = rules().replace("flap_window: 0s", "flap_window: 30m")
    async with pipeline_harness(settings, superuser, rules=text) as h:
        with MailServer() as mail, WebhookServer() as hook:
            async with notifier(h, mail, hook,
                                paging_yaml(wait="0s", interval="1s", repeat="3s")):  # fmt: skip
                t = [now + timedelta(seconds=s) for s in range(6)]
                await h.handle("environment", [reading(h, "a", 60, entity="st-a", t=t[0])])
                await mail.wait_for(lambda m: len(mail.to("center@ioc.test")) >= 1, timeout=10)
                await h.handle("environment", [reading(h, "b", 30, entity="st-a", t=t[1])])
                await h.handle("environment", [reading(h, "c", 60, entity="st-a", t=t[2])])
                await h.handle("environment", [reading(h, "d", 30, entity="st-a", t=t[3])])
                await h.handle("environment", [reading(h, "e", 60, entity="st-a", t=t[4])])
                assert [i["flapping"] for i in h.incidents()] == [False, True, True]
                # the reminder after repeat_interval carries the flap count; nothing else pages
                await mail.wait_for(lambda m: any("[REMINDER]" in x.subject for x in m), 12)
                pages = mail.to("center@ioc.test")
                reminder = next(m for m in pages if "[REMINDER]" in m.subject)
                assert "Flapping, not paged again" in reminder.body
                assert "re-opened 2 lần / times" in reminder.body
                opened = [m for m in pages if "[REMINDER]" not in m.subject
                          and "[RESOLVED]" not in m.subject]  # fmt: skip
                assert len(opened) == 1, [m.subject for m in pages]


async def test_quiet_hours_hold_a_low_page_until_morning_and_never_a_critical_one(
    settings: Settings, superuser: str
) -> None:
    from zoneinfo import ZoneInfo

    from notifier.core import flush_once, route_once

    quiet = 'quiet_hours: {start: "22:00", end: "06:00", severities: [low]}'
    text = rules("low") + rules("critical").split("rules:", 1)[1].replace("pm25-high", "pm25-bad")
    night = datetime(2026, 7, 1, 23, 30, tzinfo=ZoneInfo("Asia/Ho_Chi_Minh"))
    async with pipeline_harness(settings, superuser, rules=text) as h:
        await h.handle("environment", [reading(h, "a", 60, entity="st-a", t=datetime.now(UTC))])
        ctx = Context(parse_paging(paging_yaml(wait="0s", quiet=quiet), "p.yaml"), h.settings.paging,
                      load_rule_files([("r.yaml", text)]))  # fmt: skip
        conn = await psycopg.AsyncConnection.connect(
            h.settings.db.conninfo("notifier"), autocommit=True
        )
        async with conn:
            assert await route_once(conn, ctx, night) == 2
            assert await flush_once(conn, ctx, night) == 1  # one group (zone, domain): one page
        (page,) = {r["next_attempt_at"] for r in rows(h, "SELECT * FROM notifications")}
        assert page == night  # the critical incident takes the page out at once

    async with pipeline_harness(settings, superuser, rules=rules("low")) as h:
        await h.handle("environment", [reading(h, "a", 60, entity="st-a", t=datetime.now(UTC))])
        ctx = Context(parse_paging(paging_yaml(wait="0s", quiet=quiet), "p.yaml"), h.settings.paging,
                      load_rule_files([("r.yaml", rules("low"))]))  # fmt: skip
        conn = await psycopg.AsyncConnection.connect(
            h.settings.db.conninfo("notifier"), autocommit=True
        )
        async with conn:
            await route_once(conn, ctx, night)
            assert await flush_once(conn, ctx, night) == 1
        due = {r["next_attempt_at"] for r in rows(h, "SELECT * FROM notifications")}
        assert due == {datetime(2026, 7, 2, 6, 0, tzinfo=ZoneInfo("Asia/Ho_Chi_Minh"))}


def test_silences_and_oncall_from_the_cli(settings: Settings, superuser: str) -> None:
    import asyncio as aio

    from typer.testing import CliRunner

    from ioc.cli import app

    async def scratch() -> None:
        async with pipeline_harness(settings, superuser, rules=rules()) as h:
            env = {"IOC_DB__NAME": h.dbname}
            run = CliRunner().invoke
            result = run(app, ["silences", "add", "--zone", "24133", "--domain", "environment",
                               "--for", "2h", "--by", "lead-binh", "--comment", "pump works"],
                         env=env)  # fmt: skip
            assert result.exit_code == 0, result.output
            silence_id = result.output.split()[1]
            listed = run(app, ["silences", "list"], env=env)
            assert silence_id in listed.output and "active" in listed.output
            assert run(app, ["silences", "add", "--for", "1h", "--by", "x"], env=env).exit_code == 2
            assert run(app, ["silences", "add", "--zone", "1", "--for", "soon", "--by", "x"],
                       env=env).exit_code == 2  # fmt: skip
            window = run(app, ["silences", "add", "--rule", "pm25-high", "--by", "x", "--for", "1h",
                               "--starts", "2030-01-01T22:00:00+07:00"], env=env)  # fmt: skip
            assert window.exit_code == 0, window.output
            assert "pending" in run(app, ["silences", "list"], env=env).output
            expired = run(app, ["silences", "expire", silence_id, "--by", "lead-binh"], env=env)
            assert expired.exit_code == 0, expired.output
            assert silence_id not in run(app, ["silences", "list"], env=env).output
            assert "expired" in run(app, ["silences", "list", "--all"], env=env).output
            again = run(app, ["silences", "expire", silence_id, "--by", "lead-binh"], env=env)
            assert again.exit_code == 1 and "no silence" in again.output
            shown = run(app, ["oncall", "show", "--at", "2026-07-01T08:00:00+07:00"], env=env)
            assert shown.exit_code == 0 and "duty_officer" in shown.output
            assert "2026-07-01 07:00" in shown.output  # the shift that covers 08:00 local
            assert run(app, ["pages", "list"], env=env).exit_code == 0

    aio.run(scratch())
