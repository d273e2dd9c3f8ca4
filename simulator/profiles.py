"""What each event type's simulated entities look like and how their readings move.

One `Profile` per event model, keyed by the model class (no branching on domain names): how many
entities, in which kinds of zone, how often they report by hour of day, and a function that makes
one reading from the entity, the moment (`Moment`: local hour, season, scenario intensity) and a
seeded `random.Random`. Patterns follow Dak Lak: morning and evening rush hours in Buon Ma Thuot,
the rainy season from May to October (rivers rise, afternoon storms), the dry season's
irrigation of coffee farms, the burning season's haze (February to April), the Buon Ma Thuot
coffee festival in March.
"""

from __future__ import annotations

import bisect
import itertools
import math
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from domains import agriculture, education, environment, health, planning, security, tourism
from domains import transport as tr
from domains.base import DomainEvent


@dataclass(slots=True)
class Entity:
    id: str
    model: type[DomainEvent]
    zone_id: str
    lon: float
    lat: float
    attrs: dict[str, Any]  # static fields copied into every reading (names, capacities...)
    base: dict[str, Any]  # entity_id + location (or zone_id): the start of every reading
    state: dict[str, float] = field(default_factory=dict)  # evolving values (levels, volumes)
    scenario: bool = False  # in the running scenario's zone


@dataclass(slots=True)
class Moment:
    """The simulated clock at one event, and what the season and the scenario do to it."""

    hour: float = 12.0  # local time of day, 0..24
    weekday: int = 0  # 0 = Monday
    month: int = 1
    rainy: float = 0.0  # 0 dry season .. 1 peak of the rainy season
    festival: float = 0.0  # 0 .. 1 coffee festival crowds (calendar or scenario)
    scenario: str | None = None
    intensity: float = 0.0  # the running scenario's strength now, 0..1

    def effect(self, entity: Entity, scenario: str) -> float:
        """The scenario's strength for this entity (0 unless it runs and the entity is in its zone)."""
        if self.scenario == scenario and entity.scenario:
            return self.intensity
        return 0.0

    # Derived once per simulated second by `derive()`, read by every reading.
    daylight: float = 0.5  # 0 at night, 1 at noon
    rush: float = 0.5  # 1 at 7:00 and 17:30 (Buon Ma Thuot's rush hours), ~0.1 at night
    office: float = 1.0  # office hours on weekdays
    school: float = 1.0  # school sessions (not in the June-July holidays)

    def derive(self) -> Moment:
        h = self.hour
        self.daylight = max(0.0, math.sin((h - 6.0) / 12.0 * math.pi))
        self.rush = max(
            0.1,
            math.exp(-(((h - 7.0) / 1.2) ** 2)),
            math.exp(-(((h - 17.5) / 1.3) ** 2)),
            0.55 * self.daylight,
        )
        self.office = 1.0 if self.weekday < 5 and 7.5 <= h < 17.0 else 0.05
        in_session = 7.0 <= h < 11.0 or 13.5 <= h < 17.0
        self.school = 1.0 if self.weekday < 6 and in_session and self.month not in (6, 7) else 0.02
        return self


Reading = Callable[[Entity, Moment, random.Random], dict[str, Any]]
Weight = Callable[[Moment], float]


@dataclass(frozen=True, slots=True)
class Profile:
    prefix: str  # entity id prefix
    count: int  # entities
    weight: float  # share of the event stream at weight_by(moment) == 1
    zone_kinds: tuple[str, ...]  # zone kinds the entities live in (all zones if none match)
    reading: Reading
    attrs: Callable[[int, random.Random], dict[str, Any]] = lambda n, r: {}
    weight_by: Weight = lambda m: 1.0
    zone_only: bool = False  # reports a zone_id, not coordinates


URBAN = ("ward",)
PERI = ("ward", "commune")
RURAL = ("commune", "district", "town")
ANY = ("ward", "commune", "district", "town")

ROADS = (
    "Lê Duẩn",
    "Nguyễn Tất Thành",
    "Phan Bội Châu",
    "Lê Hồng Phong",
    "Y Jút",
    "Hùng Vương",
    "Nguyễn Chí Thanh",
    "Trần Phú",
    "Quang Trung",
    "Hai Bà Trưng",
    "Giải Phóng",
    "Ngô Quyền",
    "Phan Chu Trinh",
    "Võ Văn Kiệt",
    "Mai Hắc Đế",
    "Đinh Tiên Hoàng",
    "Lê Thánh Tông",
    "Y Moan",
)
RIVERS = ("Sêrêpốk", "Krông Ana", "Krông Nô", "Ea Tam stream", "Ea H'leo")
RESERVOIRS = ("Hồ Lắk", "Hồ Ea Kao", "Hồ Buôn Triết", "Hồ Ea Súp Thượng", "Hồ Krông Búk Hạ")
HOSPITALS = (
    "Bệnh viện Đa khoa vùng Tây Nguyên",
    "Bệnh viện Đa khoa Thiện Hạnh",
    "Bệnh viện Đa khoa Đắk Lắk",
    "Bệnh viện Nhi Đắk Lắk",
    "Bệnh viện Lao và Bệnh phổi",
    "Trung tâm Y tế huyện",
)
SITES = (
    ("Bảo tàng Thế giới Cà phê", 3000),
    ("Khu du lịch Buôn Đôn", 5000),
    ("Thác Dray Nur", 4000),
    ("Hồ Lắk", 6000),
    ("Buôn Akô Dhông", 1500),
    ("Quảng trường 10/3 (lễ hội cà phê)", 40000),
    ("Làng cà phê Trung Nguyên", 2500),
)
HOTELS = ("Mường Thanh", "Sài Gòn Ban Mê", "Damsan", "Elephant", "Coffee Tour", "Ban Mê Central")
CROPS = ("coffee", "coffee", "coffee", "pepper", "durian", "rice", "cassava", "rubber")
LEVELS = ("kindergarten", "primary", "primary", "lower_secondary", "upper_secondary")


def pick(values: tuple[Any, ...], weights: tuple[float, ...]) -> Callable[[random.Random], Any]:
    """A fast weighted choice (random.choices rebuilds its table on every call)."""
    cumulative = list(itertools.accumulate(weights))
    total = cumulative[-1]
    return lambda r: values[bisect.bisect(cumulative, r.random() * total)]


def r1(x: float) -> float:
    return round(x, 1)


def r2(x: float) -> float:
    return round(x, 2)


def noise(r: random.Random, sigma: float) -> float:
    """Zero-mean noise with standard deviation `sigma` (triangular; cheaper than gauss)."""
    return (r.random() + r.random() - 1.0) * sigma * 2.449


def clamp(x: float, lo: float, hi: float) -> float:
    return lo if x < lo else hi if x > hi else x


ALARM_STATE = pick(("normal", "pre_alarm", "alarm", "fault", "test"), (90, 4, 1, 3, 2))
WATER = pick(("ok", "low_pressure", "outage"), (95, 4, 1))
INTERNET = pick(("ok", "degraded", "down"), (92, 6, 2))
DETECTION = pick(("accident", "wrong_way", "loitering", "intrusion", "smoke"), (3, 4, 3, 1, 1))

# -- environment ---------------------------------------------------------------------------------


def _air(e: Entity, m: Moment, r: random.Random, v2: bool) -> dict[str, Any]:
    haze = 18.0 if m.month in (2, 3, 4) else 0.0
    pollution = m.effect(e, "air-pollution")
    base = e.state["pm25"]
    pm25 = clamp(base * (0.6 + 0.6 * m.rush) + haze + 170 * pollution + noise(r, 3), 1, 999)
    no2 = clamp(12 + 30 * m.rush + 60 * pollution + noise(r, 3), 0, 1999)
    d = {
        **e.base,
        "pm25": r1(pm25),
        "pm10": r1(pm25 * r.uniform(1.4, 1.9)),
        "no2": r1(no2),
        "o3": r1(clamp(20 + 60 * m.daylight + noise(r, 5), 0, 999)),
        "co": r2(clamp(0.4 + 0.8 * m.rush + 2 * pollution + noise(r, 0.1), 0, 99)),
        "aqi": min(500, round(pm25 * 2.1 + 5)),
    }
    if v2:
        d["so2"] = r1(clamp(5 + 10 * m.rush + noise(r, 2), 0, 1999))
        d["aqi_standard"] = "VN_AQI"
    return d


def air_v1(e: Entity, m: Moment, r: random.Random) -> dict[str, Any]:
    return _air(e, m, r, v2=False)


def air_v2(e: Entity, m: Moment, r: random.Random) -> dict[str, Any]:
    return _air(e, m, r, v2=True)


def water_level(e: Entity, m: Moment, r: random.Random) -> dict[str, Any]:
    flood = m.effect(e, "flood")
    datum = e.state["datum"]
    target = datum + 2.2 * m.rainy + 4.5 * flood
    level = e.state["level"] = (
        e.state["level"] + 0.05 * (target - e.state["level"]) + noise(r, 0.01)
    )
    rise = level - datum
    alert = 3 if rise > 4.0 else 2 if rise > 3.0 else 1 if rise > 2.0 else 0
    river = e.attrs["water_body_kind"] == "river"
    return {
        **e.base,
        **e.attrs,
        "water_level": r2(clamp(level, -10, 600)),
        "flow": r1(max(0.0, (40 + 120 * rise * rise) * (1 if river else 0.3))),
        "alert_level": alert,
    }


def weather(e: Entity, m: Moment, r: random.Random) -> dict[str, Any]:
    flood = m.effect(e, "flood")
    storm = m.rainy * max(0.0, math.sin((m.hour - 12) / 8 * math.pi))  # afternoon showers
    rain = max(0.0, 12 * storm * r.random() + 60 * flood * r.uniform(0.6, 1.2) - 1)
    return {
        **e.base,
        "temperature": r1(20 + 9 * m.daylight - 2 * m.rainy + noise(r, 0.5)),
        "relative_humidity": r1(clamp(60 + 30 * m.rainy - 20 * m.daylight + 30 * flood, 5, 100)),
        "precipitation": r1(rain),
        "wind_speed": r1(clamp(2 + 3 * m.daylight + 10 * flood + noise(r, 0.7), 0, 99)),
        "atmospheric_pressure": r1(1008 - 6 * flood + noise(r, 1)),
    }


# -- transport -----------------------------------------------------------------------------------


def traffic(e: Entity, m: Moment, r: random.Random) -> dict[str, Any]:
    flood = m.effect(e, "flood")
    crowd = m.effect(e, "festival-crowd")
    load = clamp(m.rush * (1 + 0.6 * crowd) * r.uniform(0.85, 1.15), 0, 2)
    capacity = e.state["capacity"]
    speed = clamp(e.state["free_speed"] * (1 - 0.55 * load) * (1 - 0.7 * flood), 2, 199)
    occupancy = clamp(0.05 + 0.5 * load + 0.3 * flood, 0, 1)
    return {
        **e.base,
        **e.attrs,
        "intensity": int(capacity * load * (1 - 0.5 * flood)),
        "average_vehicle_speed": r1(speed),
        "occupancy": r2(occupancy),
        "motorbike_share": r2(clamp(0.82 + noise(r, 0.03), 0, 1)),
        "congested": speed < 12,
    }


def parking(e: Entity, m: Moment, r: random.Random) -> dict[str, Any]:
    total = e.attrs["total_spot_number"]
    crowd = m.effect(e, "festival-crowd") + 0.3 * m.festival
    occupancy = clamp(0.15 + 0.65 * m.office + 0.4 * crowd + noise(r, 0.05), 0, 1)
    return {
        **e.base,
        **e.attrs,
        "available_spot_number": total - round(total * occupancy),
        "occupancy": r2(occupancy),
    }


def bus(e: Entity, m: Moment, r: random.Random) -> dict[str, Any]:
    flood = m.effect(e, "flood")
    return {
        **e.base,
        **e.attrs,
        "speed": r1(clamp(28 * (1 - 0.4 * m.rush) * (1 - 0.6 * flood) + noise(r, 4), 0, 149)),
        "heading": r1(r.uniform(0, 359.9)),
        "delay": int(30 + 400 * m.rush + 900 * flood + noise(r, 60)),
        "passengers": int(clamp(5 + 55 * m.rush + noise(r, 5), 0, 200)),
    }


# -- agriculture ---------------------------------------------------------------------------------


def soil(e: Entity, m: Moment, r: random.Random) -> dict[str, Any]:
    flood = m.effect(e, "flood")
    moisture = 18 + 25 * m.rainy + 30 * flood - 4 * m.daylight + noise(r, 1.5)
    return {
        **e.base,
        **e.attrs,
        "soil_moisture": r1(clamp(moisture, 0, 100)),
        "soil_temperature": r1(21 + 6 * m.daylight + noise(r, 0.4)),
    }


def irrigation(e: Entity, m: Moment, r: random.Random) -> dict[str, Any]:
    dry = 1.0 - m.rainy
    flow = max(0.0, 35 * dry * (0.3 + m.daylight) + noise(r, 2))
    e.state["volume"] = e.state.get("volume", 0.0) + flow / 60
    if e.state["volume"] > 900_000:
        e.state["volume"] = 0.0
    return {**e.base, **e.attrs, "flow_rate": r1(flow), "volume": r1(e.state["volume"])}


PESTS = ("coffee_berry_borer", "coffee_leaf_rust", "mealybug", "root_nematode", "pepper_foot_rot")


def pest(e: Entity, m: Moment, r: random.Random) -> dict[str, Any]:
    return {
        **e.base,
        **e.attrs,
        "pest": r.choice(PESTS),
        "severity": r.choices((1, 2, 3, 4, 5), (40, 30, 18, 9, 3))[0],
        "affected_area": r1(r.expovariate(1 / 3)),
    }


# -- health --------------------------------------------------------------------------------------


def beds(e: Entity, m: Moment, r: random.Random) -> dict[str, Any]:
    surge = m.effect(e, "hospital-surge")
    total = e.attrs["beds_total"]
    occ = clamp(0.78 + 0.12 * m.rainy + 0.45 * surge + noise(r, 0.02), 0.2, 2.5)
    icu_total = e.attrs["icu_total"]
    return {
        **e.base,
        **e.attrs,
        "beds_occupied": round(total * occ),
        "occupancy": r2(occ),
        "icu_occupied": min(icu_total * 2, round(icu_total * clamp(occ, 0, 1.4))),
        "emergency_waiting": int(clamp(4 + 10 * m.daylight + 60 * surge + noise(r, 2), 0, 5000)),
    }


def ambulance(e: Entity, m: Moment, r: random.Random) -> dict[str, Any]:
    surge = m.effect(e, "hospital-surge")
    return {
        **e.base,
        "incident_id": f"115-{r.getrandbits(40):010x}",
        "priority": r.choices(("P1", "P2", "P3"), (20 + 30 * surge, 50, 30))[0],
        "status": r.choices(("dispatched", "on_scene", "transporting", "arrived"), (4, 3, 3, 3))[0],
        "response_time": int(clamp(r.gauss(900 + 600 * m.rush + 900 * surge, 200), 60, 86_400)),
        "distance": r1(r.uniform(0.5, 25)),
    }


def disease(e: Entity, m: Moment, r: random.Random) -> dict[str, Any]:
    surge = m.effect(e, "hospital-surge")
    new = int(r.expovariate(1 / (1 + 6 * m.rainy + 25 * surge)))
    return {
        **e.base,
        "disease": r.choices(("dengue", "hand_foot_mouth", "influenza"), (6, 2, 2))[0],
        "new_cases": new,
        "hospitalised": int(new * r.uniform(0, 0.3)),
    }


# -- security ------------------------------------------------------------------------------------


def camera(e: Entity, m: Moment, r: random.Random) -> dict[str, Any]:
    crowd = m.effect(e, "festival-crowd") + 0.5 * m.festival
    flood = m.effect(e, "flood")
    if r.random() < 0.3 + 0.6 * crowd:
        detection, people = "crowd", int(50 + 4000 * crowd * r.uniform(0.5, 1.5))
    elif flood and r.random() < flood:
        detection, people = "flooding", 0
    else:
        detection = DETECTION(r)
        people = int(r.uniform(0, 12))
    return {
        **e.base,
        **e.attrs,
        "detection": detection,
        "confidence": r2(r.uniform(0.55, 0.99)),
        "people_count": people,
    }


def emergency_call(e: Entity, m: Moment, r: random.Random) -> dict[str, Any]:
    flood = m.effect(e, "flood")
    surge = m.effect(e, "hospital-surge")
    line = r.choices(("113", "114", "115"), (45, 15 + 30 * flood, 40 + 60 * surge))[0]
    category = {
        "113": ("crime", "traffic_accident", "other"),
        "114": ("fire", "rescue", "flood") if flood else ("fire", "rescue", "other"),
        "115": ("medical", "traffic_accident", "medical"),
    }[line][r.randrange(3)]
    return {
        **e.base,
        "line": line,
        "category": category,
        "wait_time": r1(clamp(r.expovariate(1 / (6 + 30 * (flood + surge))), 0, 3600)),
        "call_duration": r1(r.uniform(30, 400)),
    }


def fire_alarm(e: Entity, m: Moment, r: random.Random) -> dict[str, Any]:
    state = ALARM_STATE(r)
    hot = state in ("alarm", "pre_alarm")
    return {
        **e.base,
        **e.attrs,
        "state": state,
        "smoke_density": r2(r.uniform(2, 15) if hot else r.uniform(0, 0.3)),
        "temperature": r1(r.uniform(45, 90) if state == "alarm" else 24 + 6 * m.daylight),
    }


# -- tourism -------------------------------------------------------------------------------------


def visitors(e: Entity, m: Moment, r: random.Random) -> dict[str, Any]:
    crowd = m.effect(e, "festival-crowd") + 0.6 * m.festival
    capacity = e.attrs["capacity"]
    present = int(capacity * clamp(0.03 + 0.45 * m.daylight + 1.1 * crowd + noise(r, 0.03), 0, 4.9))
    previous = int(e.state.get("present", present))
    e.state["present"] = present
    delta = present - previous
    return {
        **e.base,
        **e.attrs,
        "people_count": present,
        "entries": max(0, delta) + int(r.uniform(0, capacity * 0.02)),
        "exits": max(0, -delta),
        "occupancy": r2(present / capacity),
    }


def hotel(e: Entity, m: Moment, r: random.Random) -> dict[str, Any]:
    crowd = m.effect(e, "festival-crowd") + 0.5 * m.festival
    total = e.attrs["rooms_total"]
    occ = clamp(0.55 + 0.1 * (m.weekday >= 4) + 0.45 * crowd + noise(r, 0.03), 0, 1)
    return {**e.base, **e.attrs, "rooms_occupied": round(total * occ), "occupancy": r2(occ)}


# -- education -----------------------------------------------------------------------------------


def attendance(e: Entity, m: Moment, r: random.Random) -> dict[str, Any]:
    flood = m.effect(e, "flood")
    surge = m.effect(e, "hospital-surge")
    rate = clamp(0.96 - 0.03 * m.rainy - 0.5 * flood - 0.15 * surge + noise(r, 0.01), 0, 1)
    enrolled = e.attrs["enrolled"]
    return {**e.base, **e.attrs, "present": round(enrolled * rate), "attendance_rate": r2(rate)}


def facility(e: Entity, m: Moment, r: random.Random) -> dict[str, Any]:
    flood = m.effect(e, "flood")
    return {
        **e.base,
        **e.attrs,
        "power": "outage" if r.random() < 0.01 + 0.5 * flood else "ok",
        "water": WATER(r),
        "internet": INTERNET(r),
        "classroom_temperature": r1(23 + 7 * m.daylight + noise(r, 0.6)),
        "co2": r1(clamp(420 + 900 * m.school * r.uniform(0.5, 1.2), 300, 9999)),
    }


# -- planning ------------------------------------------------------------------------------------


def permit(e: Entity, m: Moment, r: random.Random) -> dict[str, Any]:
    floors = r.choices((1, 2, 3, 4, 5, 7, 9, 12), (20, 30, 25, 12, 6, 4, 2, 1))[0]
    status = r.choices(("submitted", "in_review", "approved", "rejected"), (35, 30, 28, 7))[0]
    return {
        **e.base,
        "status": status,
        "use": r.choices(
            ("residential", "commercial", "mixed", "industrial", "public"), (70, 12, 10, 5, 3)
        )[0],
        "floor_area": r1(floors * r.uniform(60, 400)),
        "floors": floors,
        "processing_days": int(r.uniform(3, 40)) if status in ("approved", "rejected") else None,
    }


def violation(e: Entity, m: Moment, r: random.Random) -> dict[str, Any]:
    severity = r.choices((1, 2, 3, 4, 5), (30, 30, 20, 15, 5))[0]
    kinds = ("no_permit", "exceeds_permit", "encroachment", "unsafe_site", "dust_noise", "debris")
    return {
        **e.base,
        "violation": r.choice(kinds),
        "severity": severity,
        "fine": float(severity * r.choice((2, 5, 10, 20)) * 1_000_000),
    }


def outage(e: Entity, m: Moment, r: random.Random) -> dict[str, Any]:
    flood = m.effect(e, "flood")
    return {
        **e.base,
        "utility": r.choices(
            ("electricity", "water", "telecom", "drainage"), (50, 30, 15, 5 + 40 * flood)
        )[0],
        "state": r.choice(("started", "ongoing", "restored")),
        "customers_affected": int(r.expovariate(1 / (300 + 3000 * flood))),
        "expected_duration": r1(r.uniform(20, 480)),
        "planned": r.random() < 0.3,
    }


def _name(prefix: str, names: tuple[str, ...]) -> Callable[[int, random.Random], dict[str, Any]]:
    return lambda n, r: {prefix: names[n % len(names)]}


def _water_attrs(n: int, r: random.Random) -> dict[str, Any]:
    if n % 3 == 2:
        return {"water_body": RESERVOIRS[n % len(RESERVOIRS)], "water_body_kind": "reservoir"}
    return {"water_body": RIVERS[n % len(RIVERS)], "water_body_kind": "river"}


def _site(n: int, r: random.Random) -> dict[str, Any]:
    name, capacity = SITES[n % len(SITES)]
    return {
        "site": name if n < len(SITES) else f"{name} #{n // len(SITES) + 1}",
        "capacity": capacity,
    }


def _school(n: int, r: random.Random) -> dict[str, Any]:
    level = LEVELS[n % len(LEVELS)]
    return {"school": f"Trường {level.replace('_', ' ')} số {n + 1}", "level": level}


PROFILES: dict[type[DomainEvent], Profile] = {
    environment.AirQualityObserved: Profile("aq", 24, 6, PERI, air_v1, weight_by=lambda m: 1.0),
    environment.AirQualityObservedV2: Profile("aq2", 8, 2, PERI, air_v2),
    environment.WaterLevelObserved: Profile("wl", 30, 4, RURAL, water_level, _water_attrs),
    environment.WeatherObserved: Profile("ws", 25, 4, ANY, weather),
    tr.TrafficFlowObserved: Profile(
        "tf", 120, 16, URBAN, traffic, _name("road", ROADS), lambda m: 0.3 + m.rush
    ),
    tr.ParkingOccupancy: Profile(
        "pk",
        30,
        4,
        URBAN,
        parking,
        lambda n, r: {
            "name": f"Bãi xe {ROADS[n % len(ROADS)]}",
            "total_spot_number": r.randrange(40, 400),
        },
    ),
    tr.BusPosition: Profile(
        "bus",
        60,
        10,
        PERI,
        bus,
        lambda n, r: {"route_id": f"{n % 12 + 1:02d}"},
        lambda m: 0.05 + m.rush,
    ),
    agriculture.SoilMoistureObserved: Profile(
        "soil", 200, 8, RURAL, soil, lambda n, r: {"crop": CROPS[n % len(CROPS)], "depth": 30}
    ),
    agriculture.IrrigationFlow: Profile(
        "irr",
        80,
        4,
        RURAL,
        irrigation,
        lambda n, r: {
            "crop": CROPS[n % len(CROPS)],
            "water_source": ("well", "river", "reservoir")[n % 3],
        },
        lambda m: 0.2 + m.daylight,
    ),
    agriculture.PestReport: Profile(
        "pest",
        40,
        0.3,
        RURAL,
        pest,
        lambda n, r: {"crop": CROPS[n % len(CROPS)]},
        lambda m: m.office,
    ),
    health.HospitalBedOccupancy: Profile(
        "hosp",
        12,
        2,
        PERI,
        beds,
        lambda n, r: {
            "facility": HOSPITALS[n % len(HOSPITALS)],
            "beds_total": r.randrange(150, 1200),
            "icu_total": r.randrange(10, 60),
        },
    ),
    health.AmbulanceDispatch: Profile("amb", 40, 1.5, ANY, ambulance),
    health.DiseaseCaseReport: Profile("dis", 35, 0.5, ANY, disease, zone_only=True),
    security.CameraEvent: Profile(
        "cam", 150, 6, URBAN, camera, lambda n, r: {"camera_id": f"CAM-{n:04d}"}
    ),
    security.EmergencyCall: Profile("call", 30, 2, ANY, emergency_call),
    security.FireAlarm: Profile(
        "fire", 80, 2, PERI, fire_alarm, lambda n, r: {"building": f"Tòa nhà {n + 1}"}
    ),
    tourism.VisitorCount: Profile("site", 14, 3, ANY, visitors, _site, lambda m: 0.1 + m.daylight),
    tourism.HotelOccupancy: Profile(
        "hotel",
        40,
        1,
        URBAN,
        hotel,
        lambda n, r: {
            "hotel": f"Khách sạn {HOTELS[n % len(HOTELS)]} {n + 1}",
            "stars": r.randrange(1, 6),
            "rooms_total": r.randrange(20, 250),
        },
    ),
    education.SchoolAttendance: Profile(
        "sch",
        120,
        2,
        ANY,
        attendance,
        lambda n, r: {**_school(n, r), "enrolled": r.randrange(200, 1800)},
        lambda m: m.school,
    ),
    education.FacilityStatus: Profile("fac", 120, 2, ANY, facility, _school),
    planning.BuildingPermit: Profile("bp", 400, 0.6, PERI, permit, weight_by=lambda m: m.office),
    planning.ConstructionViolation: Profile(
        "cv", 60, 0.3, PERI, violation, weight_by=lambda m: m.office
    ),
    planning.UtilityOutage: Profile("out", 50, 0.5, ANY, outage),
}


def initial_state(model: type[DomainEvent], r: random.Random) -> dict[str, float]:
    """Per-entity evolving values, where a profile needs them."""
    return STATE.get(model, lambda r: {})(r)


def _water_state(r: random.Random) -> dict[str, float]:
    datum = r.uniform(1.0, 4.0)
    return {"datum": datum, "level": datum}


STATE: dict[type[DomainEvent], Callable[[random.Random], dict[str, float]]] = {
    environment.AirQualityObserved: lambda r: {"pm25": r.uniform(12, 30)},
    environment.AirQualityObservedV2: lambda r: {"pm25": r.uniform(12, 30)},
    environment.WaterLevelObserved: _water_state,
    tr.TrafficFlowObserved: lambda r: {
        "capacity": r.uniform(600, 3000),
        "free_speed": r.uniform(35, 60),
    },
}
