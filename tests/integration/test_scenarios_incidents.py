"""The city's scenarios through the real pipeline (tests/support/harness.py: the real
Pipeline.handle and sink on a scratch database) with the shipped default rules: each scenario
opens exactly the incidents its manifest lists, with their open and resolve event times, and
nothing else; a noise-only run at city load opens no compound incident; another city's rule
file with other thresholds changes the outcome."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from domains import Registry
from geo import ZoneIndex
from localdev.runtime import LocalPostgres
from rules.load import default_rule_files
from simulator.config import SimulatorConfig
from simulator.generate import Simulation
from streams.settings import Settings
from tests.support.harness import Harness, pipeline_harness

pytestmark = pytest.mark.integration

# 20:00 in Đắk Lắk (13:00 UTC), today's if over an hour ago, else yesterday's: the stored
# partitions are the recent days', and the evening's background is the same whenever it runs
_TODAY = datetime.now(UTC).replace(hour=13, minute=0, second=0, microsecond=0)
START = _TODAY if datetime.now(UTC) - _TODAY >= timedelta(hours=1) else _TODAY - timedelta(days=1)
COUNT = 8000
DEFAULTS = "\n".join(
    line for _, text in default_rule_files() for line in text.splitlines() if line != "rules:"
)
DEFAULT_RULES = "rules:\n" + DEFAULTS


@pytest.fixture(scope="module")
def superuser(settings: Settings, pg_conninfo: str) -> str:
    return LocalPostgres(settings).superuser_conninfo()


def simulation(scenario: str | None, count: int = COUNT, seed: int = 3) -> Simulation:
    config = SimulatorConfig(count=count, rate=2000, seed=seed, start=START, scenario=scenario)  # type: ignore[arg-type]
    return Simulation(config, Registry(), ZoneIndex.from_file())


async def run(h: Harness, sim: Simulation, chunk: int = 400, *, as_agents: bool = False) -> None:
    """The messages in order, in batches per domain; a batch ends where the scripted readings
    change domain, so that each zone's events reach the rules in event-time order (as one
    worker's batches would; the engine drops an event older than its key's newest)."""
    scripted = {e.id.encode() for _, e in sim.scripted}
    pending: list[Any] = []
    last_scripted: str | None = None

    async def flush() -> None:
        by_domain: dict[str, list[Any]] = {}
        for message in pending:
            record = h.record(message.value, message.headers, topic=message.topic, key=message.key)
            by_domain.setdefault(message.domain, []).append(record)
        for domain, records in by_domain.items():
            await h.handle(domain, records)
        pending.clear()

    for message in sim.messages():
        if message.key in scripted and not as_agents:
            if last_scripted not in (None, message.domain):
                await flush()
            last_scripted = message.domain
        pending.append(message)
        if len(pending) >= chunk:
            await flush()
    await flush()


def opened(h: Harness) -> list[dict[str, Any]]:
    return sorted(
        (
            {
                "rule": i["rule_id"],
                "zone": i["zone_id"],
                "entity": i["entity_id"],
                "key": i["key"],
                "opened_at": _iso(i["opened_at"]),
                "resolved_at": None if i["resolved_at"] is None else _iso(i["resolved_at"]),
            }
            for i in h.incidents()
        ),
        key=lambda i: (i["opened_at"], i["rule"], i["entity"]),
    )


def _iso(t: datetime) -> str:
    return t.astimezone(UTC).isoformat(timespec="milliseconds")


@pytest.mark.parametrize("scenario", ["flood", "festival-crowd", "coastal-storm"])
async def test_a_scenario_opens_exactly_its_manifest_s_incidents(
    settings: Settings, superuser: str, scenario: str
) -> None:
    sim = simulation(scenario)
    async with pipeline_harness(
        settings, superuser, rules=DEFAULT_RULES, late_horizon_s=10 * 365 * 86400
    ) as h:
        await run(h, sim)
        expected = sim.manifest.incidents
        assert {i["rule"] for i in expected if i["rule"].startswith("compound.")}
        assert all(i["resolved_at"] for i in expected)  # each opens and clears within the run
        found = opened(h)
        assert [(i["rule"], i["entity"]) for i in found if i not in expected] == []  # nothing else
        assert found == expected
        assert h.reasons() == []


async def test_compound_incidents_do_not_depend_on_how_the_agents_batches_interleave(
    settings: Settings, superuser: str
) -> None:
    """The domains' agents commit their batches in turn, each holding up to a second of another
    domain's events: a zone's compound rule sees conditions out of event-time order. It still
    opens and resolves exactly as the manifest says."""
    sim = simulation("flood")
    async with pipeline_harness(
        settings, superuser, rules=DEFAULT_RULES, late_horizon_s=10 * 365 * 86400
    ) as h:
        await run(h, sim, chunk=2000, as_agents=True)
        expected = [i for i in sim.manifest.incidents if i["rule"].startswith("compound.")]
        found = [i for i in opened(h) if i["rule"].startswith("compound.")]
        assert found == expected


async def test_noise_at_city_load_opens_no_compound_incident(
    settings: Settings, superuser: str
) -> None:
    sim = simulation(None, count=12_000, seed=5)
    async with pipeline_harness(
        settings, superuser, rules=DEFAULT_RULES, late_horizon_s=10 * 365 * 86400
    ) as h:
        await run(h, sim, chunk=1000)
        compound = [i for i in h.incidents() if i["rule_id"].startswith("compound.")]
        assert compound == []
        assert len(h.stored_ids()) == 12_000


async def test_another_city_s_thresholds_change_the_outcome(
    settings: Settings, superuser: str
) -> None:
    """A city whose heavy-rain level is 80 mm/h (its drains take more) gets no flood-impact
    incident and no heavy-rain incident from the same flood; nothing is hard-wired."""
    other_city = DEFAULT_RULES.replace(
        'metric: precipitation, op: ">=", value: 50', 'metric: precipitation, op: ">=", value: 80'
    ).replace("metric: precipitation\n    raise_at: 50", "metric: precipitation\n    raise_at: 80")
    assert other_city.count("80") >= 2
    sim = simulation("flood")
    async with pipeline_harness(
        settings, superuser, rules=other_city, late_horizon_s=10 * 365 * 86400
    ) as h:
        await run(h, sim)
        rules = {i["rule"] for i in opened(h)}
        assert "compound.flood-impact" not in rules and "env.rain.heavy" not in rules
        assert {"env.river.flood-alert-2", "transport.corridor.slow"} <= rules
