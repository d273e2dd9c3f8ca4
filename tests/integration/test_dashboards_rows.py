"""Every panel of every committed dashboard returns rows in the shape its panel type needs, on
demo data loaded through the real pipeline (tests/support/harness.py, the shipped default rules):

- the simulator's events for all eight domains over the last hour, with a scenario and a few
  faulty messages (the DLQ's reasons);
- a breach of one threshold rule per domain, held for the rule's `for`, so that every domain has
  an open incident; a rule's entity that breaches, clears for the rule's quiet period and breaches
  again within its flap window: a flapping incident;
- an acknowledgement (sinks.incidents.act) and a silence (notifier.silences.add_silence);
- the pipeline's own stats window (Pipeline.write_stats) and maintenance (Pipeline.maintain_now:
  the aggregates and the latest values).

Then `ioc dashboards check`'s function runs each panel query as ioc_grafana over the last hour
with require_rows: a panel with no rows, a bad shape or an error fails the test, by name."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest

from dashboards.check import check_dashboards, dashboard_files
from dashboards.grafana_sql import TimeRange
from domains import Registry
from geo import ZoneIndex
from localdev.runtime import LocalPostgres
from notifier.silences import add_silence
from paging.model import RouteMatch
from rules.model import Threshold
from simulator.config import SimulatorConfig
from simulator.generate import Simulation, default_rules
from sinks.incidents import act
from streams.settings import Settings
from tests.integration.test_scenarios_incidents import DEFAULT_RULES, run
from tests.support.harness import Harness, pipeline_harness

pytestmark = pytest.mark.integration

DASHBOARDS = dashboard_files(Path(__file__).resolve().parents[2] / "deploy/grafana/dashboards")
SPAN = timedelta(minutes=55)  # the simulated run: the last hour up to a minute ago
FLAPPING_RULE = "env.rain.heavy"  # no `for`: it re-opens at the first breach after a resolve


@pytest.fixture(scope="module")
def superuser(settings: Settings, pg_conninfo: str) -> str:
    return LocalPostgres(settings).superuser_conninfo()


def demo_run(now: datetime) -> Simulation:
    config = SimulatorConfig(
        count=6000, rate=6000 / SPAN.total_seconds(), seed=11, start=now - SPAN - timedelta(minutes=1),
        scenario="festival-crowd", faults={"malformed_json": 0.002, "out_of_range": 0.002},
    )  # fmt: skip
    return Simulation(config, Registry(), ZoneIndex.from_file())


def sample_data(now: datetime) -> dict[str, tuple[str, str, dict[str, Any]]]:
    """One valid `data` per event type's short name, from a fault-free run: (domain, ce type,
    data), for crafting readings of the rules' own event types."""
    config = SimulatorConfig(count=3000, rate=50, seed=1, start=now - timedelta(minutes=5),
                             structured_share=0.0)  # fmt: skip
    samples: dict[str, tuple[str, str, dict[str, Any]]] = {}
    for message in Simulation(config, Registry(), ZoneIndex.from_file()).messages():
        ce_type = dict(message.headers)["ce_type"].decode()
        short = ce_type.split(".")[-2]
        samples.setdefault(short, (message.domain, ce_type, orjson.loads(message.value)))
    return samples


def reading(rule: Threshold, sample: dict[str, Any], breach: bool) -> float:
    """A value of the rule's metric that breaches (or clears) it, of the sample's number type."""
    level = rule.raise_at if breach else rule.clear_at
    step = max(abs(level) * 0.05, 0.01)
    above = (rule.direction == "above") == breach
    value = level + step if above else level - step
    if isinstance(sample.get(rule.metric), int):
        value = math.ceil(value) if above else math.floor(value)
    return value


async def feed(
    h: Harness, samples: dict[str, tuple[str, str, dict[str, Any]]], rule: Threshold,
    entity: str, readings: list[tuple[datetime, bool]],
) -> None:  # fmt: skip
    domain, ce_type, sample = samples[rule.event_type or ""]
    topic = f"city.{domain}.events"
    records = [
        h.event(
            {**sample, **rule.where, "entity_id": entity, rule.metric: reading(rule, sample, breach)},
            id=f"rows-{entity}-{i}", type=ce_type, time=at, topic=topic,
        )
        for i, (at, breach) in enumerate(readings)
    ]  # fmt: skip
    await h.handle(domain, records)


async def open_one_incident_per_domain(
    h: Harness, samples: dict[str, tuple[str, str, dict[str, Any]]], now: datetime
) -> None:
    """Each domain's threshold rule with the shortest `for`, breached for that long."""
    thresholds = [r for r in default_rules().rules if isinstance(r, Threshold)]
    for domain in sorted(Registry().domains()):
        rule = min((r for r in thresholds if r.domain == domain), key=lambda r: (r.for_, r.id))
        first = now - rule.for_ - timedelta(minutes=2)
        times = [first + (now - first) * i / 6 for i in range(7)]
        await feed(h, samples, rule, f"rows-{domain}", [(t, True) for t in times])


async def flap(
    h: Harness, samples: dict[str, tuple[str, str, dict[str, Any]]], now: datetime
) -> None:
    """Breach, clear for the quiet period, breach again within the flap window."""
    rule = default_rules().by_id(FLAPPING_RULE)
    assert isinstance(rule, Threshold) and rule.for_ == timedelta(0)
    assert rule.quiet + timedelta(minutes=2) < rule.flap_window
    first = now - rule.quiet - timedelta(minutes=10)
    cleared = first + timedelta(minutes=1)
    readings = [(first, True), (cleared, False), (cleared + rule.quiet, False),
                (cleared + rule.quiet + timedelta(minutes=1), True)]  # fmt: skip
    await feed(h, samples, rule, "rows-flapping", readings)


def problems(results: list[Any]) -> list[str]:
    return [
        f"{r.dashboard} / {r.panel} [{r.ref_id}]: {r.error or '; '.join(r.problems)}"
        for r in results
        if not r.ok
    ]


async def test_every_panel_of_every_dashboard_has_rows_on_demo_data(
    settings: Settings, superuser: str
) -> None:
    now = datetime.now(UTC)
    async with pipeline_harness(
        settings, superuser, rules=DEFAULT_RULES, late_horizon_s=10 * 365 * 86400
    ) as h:
        await run(h, demo_run(now), chunk=1000)
        samples = sample_data(now)
        now = datetime.now(UTC)
        await open_one_incident_per_domain(h, samples, now)
        await flap(h, samples, now)
        incidents = h.incidents()
        assert any(i["flapping"] and i["state"] == "open" for i in incidents)
        with h.owner() as conn:
            ack = next(i for i in incidents if i["state"] == "open")
            act(conn, str(ack["id"]), "acknowledge", "duty-officer", "api")
            add_silence(conn, RouteMatch(domain=["environment"]), now, now + timedelta(hours=2),
                        "duty-officer", "river gauges serviced")  # fmt: skip
        h.pipeline.write_stats()
        h.pipeline.maintain_now()
        results = check_dashboards(
            h.settings.db, DASHBOARDS, TimeRange.last(timedelta(hours=1)), require_rows=True
        )
    assert {Path(r.path).name for r in results} == {p.name for p in DASHBOARDS}
    failing = problems(results)
    assert not failing, "panels without rows in their shape:\n" + "\n".join(failing)
