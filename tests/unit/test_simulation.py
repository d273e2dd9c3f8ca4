"""The simulator's pure part: the manifest agrees with the decoder message by message, seeds
repeat, scenarios show in the readings, the CLI's parsing refuses bad input."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest

from domains import Decoder, Event, Registry, Rejection
from domains.agriculture import SoilMoistureObserved
from domains.environment import WaterLevelObserved
from domains.tourism import VisitorCount
from domains.transport import TrafficFlowObserved
from geo import ZoneIndex
from simulator.config import FAULTS, SimulatorConfig, parse_duration, parse_faults
from simulator.generate import SCENARIO_ZONES, Manifest, Simulation
from simulator.profiles import PROFILES

START = datetime(2026, 7, 15, 0, 0, tzinfo=UTC)  # 07:00 in Dak Lak, rainy season
REGISTRY = Registry()
ZONES = ZoneIndex.from_file()


def simulate(count: int = 4000, **options: object) -> Simulation:
    config = SimulatorConfig(count=count, seed=options.pop("seed", 11), start=START, **options)  # type: ignore[arg-type]
    return Simulation(config, REGISTRY, ZONES)


def test_every_message_decodes_to_the_outcome_the_manifest_expects() -> None:
    sim = simulate(6000, faults=dict.fromkeys(FAULTS, 0.01))
    decoder = Decoder(REGISTRY, max_bytes=sim.config.max_event_bytes)
    now = sim.config.end()
    seen: set[str] = set()
    tally: dict[str, Counter[str]] = {}
    for message in sim.messages():
        result = decoder.decode(message.value, message.headers, now=now)
        if isinstance(result, Event):
            outcome = "duplicate" if result.id in seen else "stored"
            seen.add(result.id)
            assert result.domain == message.domain
            assert result.entity_id.encode() == message.key
            assert REGISTRY.topic(result.domain) == message.topic
            got = (outcome, None)
        else:
            assert isinstance(result, Rejection)
            got = ("dlq", result.reason)
        assert got == (message.outcome, message.reason), (message.seq, message.fault, result)
        label = got[0] if got[0] != "dlq" else f"dlq:{got[1]}"
        tally.setdefault(message.domain, Counter())[label] += 1
    manifest = sim.manifest
    assert manifest.total() == 6000
    assert {d: dict(c) for d, c in sorted(tally.items())} == manifest.expected()
    injected = Counter(f["fault"] for f in manifest.faults)
    assert set(injected) == set(FAULTS) and min(injected.values()) > 20


def test_late_events_move_to_too_late_beyond_the_horizon() -> None:
    sim = simulate(3000, faults={"late": 0.05})
    list(sim.messages())
    late = [f for f in sim.manifest.faults if f["fault"] == "late"]
    assert late and all(0 < f["lag_s"] <= 7200 for f in late)
    beyond = sum(f["lag_s"] > 3600 for f in late)
    assert 0 < beyond < len(late)
    everything = sim.manifest.expected()
    horizon = sim.manifest.expected(late_horizon_s=3600)
    assert sum(c.get("dlq:too_late", 0) for c in horizon.values()) == beyond
    assert sum(sum(c.values()) for c in horizon.values()) == sum(
        sum(c.values()) for c in everything.values()
    )
    # the manifest survives JSON
    again = Manifest.from_json(sim.manifest.to_json())
    assert again.expected(late_horizon_s=3600) == horizon


def test_same_seed_same_bytes_other_seed_other_bytes() -> None:
    def run(seed: int) -> list[tuple[bytes, bytes]]:
        return [
            (m.key, m.value)
            for m in simulate(500, seed=seed, faults={"duplicate": 0.02}).messages()
        ]

    assert run(5) == run(5)
    assert run(5) != run(6)


def test_all_domains_by_default_or_the_ones_asked_for() -> None:
    assert {m.domain for m in simulate(5000).messages()} == set(REGISTRY.domains())
    picked = {m.domain for m in simulate(500, domains=("health", "tourism")).messages()}
    assert picked == {"health", "tourism"}
    with pytest.raises(ValueError, match="unknown domain"):
        simulate(10, domains=("weather",))


def test_entities_are_placed_in_their_zones() -> None:
    sim = simulate(10)
    for entities in sim.entities.values():
        for entity in entities[:5]:
            if "location" in entity.base:
                assert ZONES.lookup_one(entity.lon, entity.lat) == entity.zone_id


def test_every_site_and_scenario_zone_is_a_unit_of_the_shipped_file() -> None:
    for model, profile in PROFILES.items():
        for site in profile.sites:
            assert site.zone_id in ZONES.ids, (model.__name__, site)
            if site.lon is not None:
                assert ZONES.lookup_one(site.lon, site.lat) == site.zone_id, (model.__name__, site)
    assert {z for z in SCENARIO_ZONES.values() if z} <= ZONES.ids
    assert not simulate(10).manifest.run.get("placed_by_zone_kind")


def test_sites_cover_buon_ma_thuot_and_the_coast() -> None:
    sim = simulate(10, scenario="flood")
    zones_of = {
        model.__name__: {e.zone_id for e in entities} for model, entities in sim.entities.items()
    }
    former_bmt = {"24133", "24163", "24121", "24154", "24169", "24175"}
    assert former_bmt <= zones_of["TrafficFlowObserved"]
    assert {"22015", "22240"} <= zones_of["TrafficFlowObserved"]  # Tuy Hoà
    names = {e.attrs.get("water_body") for e in sim.entities[WaterLevelObserved]}
    assert any(n.startswith("Sêrêpốk") for n in names)
    assert any(n.startswith("Krông Ana") for n in names)
    sites = {e.attrs["site"]: e.zone_id for e in sim.entities[VisitorCount]}
    assert sites["Quảng trường 10/3 (lễ hội cà phê)"] == "24133"
    assert sites["Bãi biển Tuy Hoà"] == "22015"
    crops = {e.attrs["crop"] for e in sim.entities[SoilMoistureObserved] if e.zone_id == "24280"}
    assert "coffee" in crops  # Cư M'gar
    # The scenario's own entities in Tuy Hoà carry that place's names.
    flood_roads = {
        e.attrs["road"] for e in sim.entities[TrafficFlowObserved] if e.zone_id == "22015"
    }
    assert "Độc Lập" in flood_roads


def test_every_zone_id_sent_is_a_zone_of_the_shipped_file() -> None:
    import orjson

    sim = simulate(5000, scenario="hospital-surge")
    zone_ids = set()
    for message in sim.messages():
        if message.headers[0][0] == "ce_specversion":
            data = orjson.loads(message.value)
        else:
            data = orjson.loads(message.value)["data"]
        if "zone_id" in data:
            zone_ids.add(data["zone_id"])
    assert zone_ids and zone_ids <= ZONES.ids


def levels(sim: Simulation, type_suffix: str, field: str, zone: str | None) -> list[float]:
    import orjson

    values = []
    for message in sim.messages():
        if message.headers[0][0] != "ce_specversion":
            continue  # structured: skip for brevity
        type_ = dict(message.headers)["ce_type"].decode()
        if type_.endswith(type_suffix) and (zone is None or f"-{zone}-" in message.key.decode()):
            values.append(orjson.loads(message.value)[field])
    return values


def test_flood_raises_the_river_and_slows_traffic_in_its_zone() -> None:
    calm = simulate(20_000, domains=("environment", "transport"))
    flood = simulate(20_000, domains=("environment", "transport"), scenario="flood")
    zone = flood.scenario_zone
    assert zone == "22015" and ZONES.zone(zone).name == "Tuy Hoà"  # the coast
    assert flood.manifest.run["scenario"]["zone_id"] == zone
    water = levels(flood, "water_level.v1", "alert_level", zone)
    assert max(water) >= 2  # alert level 2+ during the flood
    slow = levels(flood, "traffic_flow.v1", "average_vehicle_speed", zone)
    normal = levels(calm, "traffic_flow.v1", "average_vehicle_speed", None)
    assert min(slow) < 0.5 * (sum(normal) / len(normal))


def test_sensor_silence_stops_the_zone_s_sensors_during_the_window() -> None:
    sim = simulate(20_000, scenario="sensor-silence")
    silenced = set(sim.manifest.run["scenario"]["silenced_entities"])
    assert silenced
    start, end = sim.window
    keys = [(m.seq, m.key.decode()) for m in sim.messages()]
    assert not [k for seq, k in keys if start <= seq < end and k in silenced]
    assert [k for seq, k in keys if (seq < start or seq >= end) and k in silenced]


def test_hospital_surge_fills_the_beds() -> None:
    calm = levels(simulate(20_000, domains=("health",)), "hospital_beds.v1", "occupancy", None)
    surge = levels(
        simulate(20_000, domains=("health",), scenario="hospital-surge"),
        "hospital_beds.v1",
        "occupancy",
        None,
    )
    assert max(surge) > max(calm) + 0.2


def test_a_scenario_zone_missing_from_another_city_s_file_falls_back_and_says_so(tmp_path) -> None:
    import json

    ring = [[10, 10], [11, 10], [11, 11], [10, 11], [10, 10]]
    doc = {
        "type": "FeatureCollection",
        "features": [
            {
                "type": "Feature",
                "properties": {"id": "z1", "name": "Z", "kind": "ward"},
                "geometry": {"type": "Polygon", "coordinates": [ring]},
            }
        ],
    }
    path = tmp_path / "city.geojson"
    path.write_text(json.dumps(doc))
    config = SimulatorConfig(count=100, start=START, scenario="flood")
    sim = Simulation(config, REGISTRY, ZoneIndex.from_file(path))
    assert sim.scenario_zone == "z1"
    assert "not in the zone file" in sim.manifest.run["scenario"]["note"]
    assert "tf" in sim.manifest.run["placed_by_zone_kind"]["profiles"]
    assert {e.zone_id for ents in sim.entities.values() for e in ents} == {"z1"}
    assert len(list(sim.messages())) == 100


def test_cli_parsing() -> None:
    assert (
        parse_duration("10m") == 600
        and parse_duration("30s") == 30
        and parse_duration("2h") == 7200
    )
    assert parse_duration("90") == 90
    with pytest.raises(ValueError, match="duration"):
        parse_duration("ten minutes")
    assert parse_faults(0.01, ["late=0.05"])["late"] == 0.05
    assert parse_faults(0.0, []) == {}
    with pytest.raises(ValueError, match="KIND=RATE"):
        parse_faults(0, ["lateness=1"])
    with pytest.raises(ValueError, match=r"at most 0\.5"):
        simulate(10, faults=dict.fromkeys(FAULTS, 0.1))


def test_fast_start_keeps_every_event_in_the_past() -> None:
    now = datetime.now(UTC)
    config = SimulatorConfig(count=1000, rate=2000, start=now - timedelta(seconds=0.5))
    assert config.end() <= now + timedelta(milliseconds=1)
