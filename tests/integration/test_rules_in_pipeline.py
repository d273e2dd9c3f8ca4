"""The rules inside the pipeline, on the real database: rule state, incidents, history and outbox
commit with the batch's events; redelivery and two workers leave exactly one incident per key
with exact counts (tests/support/harness.py: the real Pipeline.handle and sink, a fake DLQ)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest

from localdev.runtime import LocalPostgres
from streams.settings import Settings
from tests.support.harness import Harness, pipeline_harness

pytestmark = pytest.mark.integration

POINT = {"type": "Point", "coordinates": [108.04, 12.68]}
TEXT = "description: {vi: 'PM2.5 {value} tại {zone}', en: 'PM2.5 {value} at {zone}'}"


def rules(key: str = "entity") -> str:
    return f"""
rules:
  - id: pm25-high
    kind: threshold
    title: PM2.5 above the limit
    domain: environment
    event_type: air_quality
    metric: pm25
    raise_at: 50
    clear_at: 40
    key: {key}
    quiet: 0s
    severity: high
    category: environment
    subcategory: airPollution
    {TEXT}
"""


@pytest.fixture(scope="module")
def superuser(settings: Settings, pg_conninfo: str) -> str:
    return LocalPostgres(settings).superuser_conninfo()


def reading(h: Harness, n: int, pm25: float, *, entity: str = "st-1", t0: datetime) -> Any:
    data = {"entity_id": entity, "location": POINT, "pm25": pm25}
    return h.event(data, id=f"{entity}-{n}", time=t0 + timedelta(milliseconds=10 * n))


def outbox(h: Harness) -> list[tuple[str, int, str]]:
    with h.owner() as conn:
        return conn.execute(
            "SELECT incident_id::text, version, kind FROM incident_outbox ORDER BY id"
        ).fetchall()


async def test_an_incident_commits_with_its_events_and_a_redelivery_changes_nothing(
    settings: Settings, superuser: str
) -> None:
    t0 = datetime.now(UTC) - timedelta(minutes=20)
    async with pipeline_harness(settings, superuser, rules=rules()) as h:
        batch = [reading(h, n, 60 + n, t0=t0) for n in range(5)]
        await h.handle("environment", batch)
        (incident,) = h.incidents()
        assert (incident["state"], incident["count"], incident["peak_value"]) == ("open", 5, 64)
        assert incident["opened_at"] == t0
        assert "tại" in incident["description_vi"] and incident["zone_id"]
        assert [kind for _, _, kind in outbox(h)] == ["opened"]

        await h.handle("environment", batch)  # redelivered after a crash: all duplicates
        (again,) = h.incidents()
        assert (again["count"], again["version"]) == (5, incident["version"])
        assert len(outbox(h)) == 1

        await h.handle("environment", [reading(h, 9, 20, t0=t0)])  # cleared, quiet 0 s
        (resolved,) = h.incidents()
        assert (resolved["state"], resolved["resolved_by"]) == ("resolved", "rule")
        assert [kind for _, _, kind in outbox(h)] == ["opened", "resolved"]
        with h.owner() as conn:
            history = conn.execute(
                "SELECT kind, actor, channel FROM incident_events ORDER BY id"
            ).fetchall()
        assert history == [
            ("opened", "rule:pm25-high", "rule"),
            ("updated", "rule:pm25-high", "rule"),
            ("resolved", "rule:pm25-high", "rule"),
        ]


async def test_ten_thousand_breaches_are_one_incident_counted_exactly(
    settings: Settings, superuser: str
) -> None:
    t0 = datetime.now(UTC) - timedelta(minutes=30)
    async with pipeline_harness(settings, superuser, rules=rules()) as h:
        events = [reading(h, n, 55 + n % 7, t0=t0) for n in range(10_000)]
        for start in range(0, 10_000, 2_500):
            await h.handle("environment", events[start : start + 2_500])
        await h.handle("environment", events[4_000:6_000])  # a redelivered stretch
        (incident,) = h.incidents()
        assert (incident["count"], incident["state"]) == (10_000, "open")
        assert [kind for _, _, kind in outbox(h)] == ["opened", "updated", "updated", "updated"]


async def test_two_workers_on_one_zone_key_make_one_incident_with_every_breach_counted(
    settings: Settings, superuser: str
) -> None:
    """Different entities of one zone arrive through two workers at once (a zone-keyed rule):
    the state row lock serialises them; one incident, and its count is the sum."""
    t0 = datetime.now(UTC) - timedelta(minutes=10)
    async with pipeline_harness(settings, superuser, rules=rules(key="zone")) as h:
        other = h.another_worker()
        for round_ in range(4):
            first = [reading(h, round_ * 100 + n, 70, entity="st-a", t0=t0) for n in range(50)]
            second = [reading(h, round_ * 100 + n, 70, entity="st-b", t0=t0) for n in range(50)]
            await asyncio.gather(
                h.handle("environment", first), other.handle("environment", second)
            )
        incidents = h.incidents()
        assert len(incidents) == 1
        incident = incidents[0]
        # an event older than the zone's newest applied one (from the other worker's batch) is
        # late for the rule: counted there, not in the incident
        late = sum(p.rule_totals.late_for_rule["pm25-high"] for p in (h.pipeline, other))
        assert incident["count"] + late == 400
        assert set(incident["entities"]) == {"st-a", "st-b"}


async def test_a_rule_that_fails_never_stops_the_batch(
    settings: Settings, superuser: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from rules import engine

    def broken(*_: Any) -> None:
        raise RuntimeError("a bug in a rule")

    monkeypatch.setitem(engine._STEP, engine.Threshold, broken)
    t0 = datetime.now(UTC) - timedelta(minutes=5)
    async with pipeline_harness(settings, superuser, rules=rules()) as h:
        await h.handle("environment", [reading(h, n, 90, t0=t0) for n in range(3)])
        assert len(h.stored_ids()) == 3 and h.incidents() == []
        assert h.pipeline.rule_totals.errors["pm25-high"] == 1


SILENCE = f"""
rules:
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


async def test_silence_opens_from_the_timer_against_the_sources_watermark_and_clears_on_report(
    settings: Settings, superuser: str
) -> None:
    t0 = datetime.now(UTC) - timedelta(minutes=50)
    async with pipeline_harness(settings, superuser, rules=SILENCE) as h:
        runner = h.pipeline.rules
        assert runner is not None
        await h.handle("environment", [reading(h, 0, 10, entity="st-a", t0=t0),
                                       reading(h, 1, 10, entity="st-b", t0=t0)])  # fmt: skip

        async def check() -> None:
            async with (
                await psycopg.AsyncConnection.connect(h.settings.db.conninfo("ingest")) as conn,
                conn.transaction(),
            ):
                await runner.check_silence(conn)

        await check()
        assert h.incidents() == []  # nobody's newer: the watermark has not moved
        later = t0 + timedelta(minutes=11)
        await h.handle("environment", [h.event({"entity_id": "st-b", "location": POINT, "pm25": 5.0},
                                               id="st-b-late", time=later)])  # fmt: skip
        await check()
        (incident,) = h.incidents()
        assert (incident["key"], incident["opened_at"]) == ("st-a", t0 + timedelta(minutes=10))
        await check()  # checking again opens nothing more
        assert len(h.incidents()) == 1
        await h.handle("environment", [h.event({"entity_id": "st-a", "location": POINT, "pm25": 5.0},
                                               id="st-a-back", time=later)])  # fmt: skip
        (incident,) = h.incidents()
        assert incident["state"] == "resolved"


async def test_a_key_resolving_and_opening_again_in_one_batch_keeps_one_open_incident(
    settings: Settings, superuser: str
) -> None:
    t0 = datetime.now(UTC) - timedelta(minutes=25)
    async with pipeline_harness(settings, superuser, rules=rules()) as h:
        await h.handle("environment", [reading(h, 0, 70, t0=t0)])
        # one batch: it clears (quiet 0 s: resolved) and breaches again (a new occurrence)
        await h.handle("environment", [reading(h, 1, 10, t0=t0), reading(h, 2, 80, t0=t0)])
        first, second = h.incidents()
        assert (first["state"], second["state"]) == ("resolved", "open")
        assert second["previous_id"] == first["id"]
        assert h.pipeline.rule_totals.errors == {}


CALLS = """
rules:
  - id: calls-cluster
    kind: count
    title: Emergency calls clustering in a zone
    domain: security
    event_type: emergency_call
    window: 10m
    raise_at: 3
    clear_at: 1
    quiet: 60s
    severity: high
    category: security
    subcategory: callSurge
    description: {vi: '{value} cuộc gọi từ {zone}', en: '{value} calls from {zone}'}
"""


async def test_a_count_rule_keeps_its_window_in_the_rule_state_across_batches(
    settings: Settings, superuser: str
) -> None:
    """Calls from different callers in one zone, in separate batches: the window lives in the
    rule_state row (bounded by raise_at), a redelivered batch counts nothing twice, and the
    incident resolves at the event time the count fell, plus the quiet period."""
    t0 = (datetime.now(UTC) - timedelta(minutes=40)).replace(microsecond=0)

    def calling(h: Harness, n: int, seconds: float) -> Any:
        data = {"entity_id": f"caller-{n}", "location": POINT, "line": "114",
                "category": "fire", "wait_time": 4.0}  # fmt: skip
        return h.event(data, id=f"call-{n}", type="vn.daklak.security.emergency_call.v1",
                       time=t0 + timedelta(seconds=seconds), topic="city.security.events")  # fmt: skip

    async with pipeline_harness(settings, superuser, rules=CALLS) as h:
        first = [calling(h, 0, 0), calling(h, 1, 30)]
        await h.handle("security", first)
        assert h.incidents() == []
        await h.handle("security", first)  # redelivered: duplicates, not two more calls
        assert h.incidents() == []
        await h.handle("security", [calling(h, 2, 90), calling(h, 3, 120)])
        (incident,) = h.incidents()
        assert incident["opened_at"] == t0 + timedelta(seconds=90)
        assert (incident["entity_id"], incident["count"], incident["state"]) == (
            "caller-2",
            2,
            "open",
        )
        assert incident["description_en"].startswith("3 calls from ")
        with h.owner() as conn:
            (state,) = conn.execute(
                "SELECT state FROM rule_state WHERE rule_id = 'calls-cluster'"
            ).fetchone()  # type: ignore[misc]
        assert len(state["times"]) == 3
        # silence for 20 minutes; the count fell to 1 when the call at 90 s left (690 s)
        await h.handle("security", [calling(h, 4, 1500)])
        (resolved,) = h.incidents()
        assert resolved["state"] == "resolved"
        assert resolved["resolved_at"] == t0 + timedelta(seconds=750)
        assert [kind for _, _, kind in outbox(h)] == ["opened", "resolved"]  # one per batch
