"""What each event type's simulated entities look like and how their readings move.

One `Profile` per event model, keyed by the model class (no branching on domain names): how many
entities, at which sites, how often they report by hour of day, and a function that makes one
reading from the entity, the moment (`Moment`: local hour, season, scenario intensity) and a
seeded `random.Random`. Patterns follow Dak Lak: morning and evening rush hours in Buon Ma Thuot,
the rainy season from May to October (rivers rise, afternoon storms), the dry season's
irrigation of coffee farms, the burning season's haze (February to April), the Buon Ma Thuot
coffee festival in March.

Sites are in the province's real units (geo/data/daklak_communes_2025.geojson), named by their
official codes: Buon Ma Thuot's traffic corridors in the wards of the former city, stations on the
Sêrêpốk, Krông Ana and Đà Rằng rivers, coffee, pepper, durian, rice and cassava farms in their
communes, hospitals, the coffee festival's sites, and the coast that came with Phú Yên (Tuy Hoà,
its ports, beaches and the storms from the sea). A site's coordinates, where given, are
approximate positions inside its unit (tests/unit/test_simulation.py checks each against the
zone file); without coordinates an entity gets a random point of its unit. With another city's
zone file, profiles whose units it lacks fall back to their zone kinds (the manifest says so).
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
class Site:
    """Where entities stand: a unit (its official code), fields of the place, and where known its
    approximate position (inside the unit); without one, a random point of the unit."""

    zone_id: str
    attrs: dict[str, Any] = field(default_factory=dict)
    lon: float | None = None
    lat: float | None = None


@dataclass(frozen=True, slots=True)
class Profile:
    prefix: str  # entity id prefix
    count: int  # entities
    weight: float  # share of the event stream at weight_by(moment) == 1
    zone_kinds: tuple[str, ...]  # zone kinds for another city's file (all zones if none match)
    reading: Reading
    attrs: Callable[[int, random.Random], dict[str, Any]] = lambda n, r: {}
    weight_by: Weight = lambda m: 1.0
    zone_only: bool = False  # reports a zone_id, not coordinates
    # Entity n stands at sites[n % len(sites)]; its fields override attrs'. Empty: every zone of
    # the profile's kinds.
    sites: tuple[Site, ...] = ()


URBAN = ("ward",)
PERI = ("ward", "commune")
RURAL = ("commune", "district", "town")
ANY = ("ward", "commune", "district", "town")

# Units by their official codes (geo/data/daklak_communes_2025.geojson).
# The former Buôn Ma Thuột city: the wards of Buôn Ma Thuột, Tân An, Tân Lập, Thành Nhất and
# Ea Kao, and the commune of Hoà Phú.
BMT, TAN_AN, TAN_LAP, THANH_NHAT, EA_KAO, HOA_PHU = (
    "24133", "24163", "24121", "24154", "24169", "24175",
)  # fmt: skip
BUON_MA_THUOT = (BMT, TAN_AN, TAN_LAP, THANH_NHAT, EA_KAO, HOA_PHU)
# The former Tuy Hoà city, on the coast: the wards of Tuy Hoà, Phú Yên and Bình Kiến.
TUY_HOA, PHU_YEN, BINH_KIEN = "22015", "22240", "22045"
TUY_HOA_CITY = (TUY_HOA, PHU_YEN, BINH_KIEN)
# The other wards: Buôn Hồ, Cư Bao, Sông Cầu, Xuân Đài, Đông Hoà, Hoà Hiệp.
TOWNS = ("24305", "24340", "22051", "22076", "22258", "22261")
CITIES = BUON_MA_THUOT + TUY_HOA_CITY


def spread(*zones: str) -> tuple[Site, ...]:
    """Sites anywhere in these units (an entity gets a random point of its unit)."""
    return tuple(Site(zone) for zone in zones)


def sited(field_name: str, *places: tuple[str, str]) -> tuple[Site, ...]:
    """(unit, name) pairs -> sites with the name in `field_name`."""
    return tuple(Site(zone, {field_name: name}) for zone, name in places)


def from_sites(sites: tuple[Site, ...]) -> Callable[[int, random.Random], dict[str, Any]]:
    """Entity n's fields from sites[n % len]: what another city's zone file still gets."""
    return lambda n, r: dict(sites[n % len(sites)].attrs)


# Traffic corridors: Buôn Ma Thuột's main roads by the ward they cross, and Tuy Hoà's.
CORRIDORS = sited(
    "road",
    (BMT, "Lê Duẩn"), (BMT, "Lê Hồng Phong"), (BMT, "Y Jút"), (BMT, "Quang Trung"),
    (BMT, "Hai Bà Trưng"), (BMT, "Phan Chu Trinh"), (BMT, "Trần Phú"), (BMT, "Ngô Quyền"),
    (TAN_AN, "Nguyễn Chí Thanh"), (TAN_AN, "Giải Phóng"), (TAN_AN, "Phan Bội Châu"),
    (TAN_LAP, "Nguyễn Tất Thành"), (TAN_LAP, "Hùng Vương"), (TAN_LAP, "Đinh Tiên Hoàng"),
    (THANH_NHAT, "Võ Văn Kiệt"), (THANH_NHAT, "Lê Thánh Tông"),
    (EA_KAO, "Mai Hắc Đế"), (EA_KAO, "Y Moan Ênuôl"), (HOA_PHU, "Quốc lộ 14"),
    (TUY_HOA, "Hùng Vương (Tuy Hoà)"), (TUY_HOA, "Trần Hưng Đạo"), (TUY_HOA, "Độc Lập"),
    (PHU_YEN, "Nguyễn Tất Thành (Tuy Hoà)"), (BINH_KIEN, "Quốc lộ 1 (Bình Kiến)"),
)  # fmt: skip
# The coast's ports (cameras, alarms, car parks stand there).
PORTS = (
    Site("22291", {"name": "Cảng Vũng Rô"}, 109.4039, 12.8720),
    Site(PHU_YEN, {"name": "Cảng cá Đông Tác"}, 109.3270, 13.0770),
    Site("22147", {"name": "Cảng cá Tiên Châu"}, 109.2901, 13.2798),
    Site("22051", {"name": "Cảng cá Dân Phước"}, 109.2698, 13.4293),
)
PARKING = (
    *(Site(c.zone_id, {"name": f"Bãi xe {c.attrs['road']}"}) for c in CORRIDORS),
    Site(TUY_HOA, {"name": "Bãi xe bãi biển Tuy Hoà"}, 109.3180, 13.0960),
    Site(PHU_YEN, {"name": "Bãi xe Sân bay Tuy Hoà"}, 109.3340, 13.0490),
    *(Site(p.zone_id, {"name": f"Bãi xe {p.attrs['name']}"}, p.lon, p.lat) for p in PORTS),
)


def _water(
    zone: str, name: str, kind: str, lon: float | None = None, lat: float | None = None
) -> Site:
    return Site(zone, {"water_body": name, "water_body_kind": kind}, lon, lat)


WATER_STATIONS = (
    _water(HOA_PHU, "Sêrêpốk (cầu 14)", "river", 107.9350, 12.5970),
    _water("24559", "Sêrêpốk (thác Dray Nur)", "river", 107.8900, 12.5400),
    _water("24235", "Sêrêpốk (Bản Đôn)", "river", 107.7786, 12.8877),
    _water("24538", "Krông Ana (Buôn Trấp)", "river", 108.0300, 12.4800),
    _water("24568", "Krông Ana (Dur Kmăl)", "river"),
    _water("24598", "Krông Nô (Đắk Phơi)", "river"),
    _water("24184", "Ea H'leo", "river"),
    _water(EA_KAO, "Suối Ea Tam", "river"),
    _water(TUY_HOA, "Đà Rằng (Tuy Hoà)", "river"),
    _water(PHU_YEN, "Đà Rằng (cửa sông)", "river"),
    _water("22165", "Sông Ba (Củng Sơn)", "river", 108.9800, 13.0400),
    _water("22132", "Kỳ Lộ (Hà Bằng)", "river"),
    _water("22147", "Đầm Ô Loan", "lake", 109.2550, 13.2650),
    _water("24580", "Hồ Lắk", "lake", 108.1897, 12.4167),
    _water(EA_KAO, "Hồ Ea Kao", "reservoir"),
    _water("24595", "Hồ Buôn Triết", "reservoir"),
    _water("24217", "Hồ Ea Súp Thượng", "reservoir"),
    _water("24505", "Hồ Krông Búk Hạ", "reservoir"),
    _water("22207", "Hồ Sông Hinh", "reservoir", 108.9500, 12.8600),
)
# Weather stations: the highlands, and the coast where the storms come in from the sea.
WEATHER = spread(
    BMT, "24305", "24184", "24211", "24412", "24448", "24580", "24373", "24490", "24235",
    "24343", "24280", "24181", "24538", "24561", "22165", "22207", "22319", "22255",
    TUY_HOA, "22051", "22261", "22291", "22120", "22076",
)  # fmt: skip
AIR = spread(*BUON_MA_THUOT, *TUY_HOA_CITY, "24305", "22051", "22258", "22261")
# Farms by crop, in the communes that grow it.
FARMS = (
    sited(
        "crop",
        *(
            (zone, "coffee")
            for zone in (
                "24280", "24259", "24265", "24277", "24286", "24301", "24496", "24490",
                "24505", "24502", "24343", "24346", "24316", "24310", "24313", "24561",
                "24540", "24544", HOA_PHU, "24328", "24184", "24181",
            )
        ),
    )
    + sited("crop", *((z, "pepper") for z in ("24280", "24265", "24343", "24373", "24187")))
    + sited("crop", *((z, "durian") for z in ("24490", "24496", "24561", "24540", "24343")))
    + sited(
        "crop",
        *((z, "rice") for z in ("24538", "24580", "24568", "24559", "22319", "22303", "22255")),
    )
    + sited("crop", *((z, "cassava") for z in ("22165", "22207", "24412", "24211", "24415")))
    + sited("crop", *((z, "rubber") for z in ("24184", "24229", "24241")))
)  # fmt: skip
HOSPITALS = (
    Site(BMT, {"facility": "Bệnh viện Đa khoa vùng Tây Nguyên"}, 108.0528, 12.6703),
    Site(BMT, {"facility": "Bệnh viện Đa khoa Thiện Hạnh"}),
    Site(BMT, {"facility": "Bệnh viện Nhi Đắk Lắk"}),
    Site(TAN_AN, {"facility": "Bệnh viện Lao và Bệnh phổi Đắk Lắk"}),
    Site(TUY_HOA, {"facility": "Bệnh viện Đa khoa Phú Yên"}, 109.3070, 13.0930),
    Site(TUY_HOA, {"facility": "Bệnh viện Sản - Nhi Phú Yên"}),
    Site("24305", {"facility": "Trung tâm Y tế Buôn Hồ"}),
    Site("22051", {"facility": "Trung tâm Y tế Sông Cầu"}),
    Site("24181", {"facility": "Trung tâm Y tế Ea H'Leo"}),
    Site("24490", {"facility": "Trung tâm Y tế Krông Pắc"}),
    Site("22258", {"facility": "Trung tâm Y tế Đông Hoà"}),
    Site("24538", {"facility": "Trung tâm Y tế Krông Ana"}),
)
# Tourist sites and the coffee festival's (Buôn Ma Thuột, March of odd years), then the coast.
TOURIST_SITES = (
    Site(BMT, {"site": "Quảng trường 10/3 (lễ hội cà phê)", "capacity": 40000}, 108.0450, 12.6785),
    Site(BMT, {"site": "Bảo tàng Thế giới Cà phê", "capacity": 3000}, 108.0505, 12.6950),
    Site(BMT, {"site": "Làng cà phê Trung Nguyên", "capacity": 2500}, 108.0520, 12.6970),
    Site(BMT, {"site": "Buôn Akô Dhông", "capacity": 1500}, 108.0515, 12.7090),
    Site("24235", {"site": "Khu du lịch Buôn Đôn", "capacity": 5000}, 107.7786, 12.8877),
    Site("24559", {"site": "Thác Dray Nur", "capacity": 4000}, 107.8900, 12.5400),
    Site("24580", {"site": "Hồ Lắk", "capacity": 6000}, 108.1897, 12.4167),
    Site(TUY_HOA, {"site": "Bãi biển Tuy Hoà", "capacity": 20000}, 109.3180, 13.0960),
    Site(TUY_HOA, {"site": "Tháp Nhạn", "capacity": 3000}, 109.3045, 13.0935),
    Site("22120", {"site": "Gành Đá Đĩa", "capacity": 5000}, 109.2906, 13.3577),
    Site("22291", {"site": "Mũi Điện - Bãi Môn", "capacity": 4000}, 109.4519, 12.8930),
    Site("22147", {"site": "Đầm Ô Loan", "capacity": 2000}, 109.2550, 13.2650),
    Site("22051", {"site": "Vịnh Xuân Đài", "capacity": 3000}, 109.2700, 13.4200),
    Site(PHU_YEN, {"site": "Cảng cá Đông Tác (chợ cá)", "capacity": 2500}, 109.3270, 13.0770),
)
BUSES = spread(*CITIES, *CITIES[:3], "24305", "24280", "24490", "24561", "22319")
# Cameras and fire alarms: the cities (their centres twice), the towns and the ports.
WATCHED = (
    *spread(*CITIES, *CITIES[:3], *TOWNS),
    *(Site(p.zone_id, {}, p.lon, p.lat) for p in PORTS),
)
HOTEL_AREAS = spread(*BUON_MA_THUOT[:5], *BUON_MA_THUOT[:3], *TUY_HOA_CITY, TUY_HOA, "22051")
BUILDING_AREAS = spread(*CITIES, *CITIES, *TOWNS)
HOTELS = ("Mường Thanh", "Sài Gòn Ban Mê", "Damsan", "Elephant", "Coffee Tour", "Ban Mê Central")
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
    previous = e.state.setdefault("level", datum + 2.2 * m.rainy)
    level = e.state["level"] = previous + 0.05 * (target - previous) + noise(r, 0.01)
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


PORT_CLOSED = pick(("open", "restricted", "closed"), (96, 3, 1))


def port_status(e: Entity, m: Moment, r: random.Random) -> dict[str, Any]:
    status = PORT_CLOSED(r)
    reason = None if status == "open" else r.choice(("maintenance", "fog", "high_waves", "other"))
    reading = {
        **e.base,
        **e.attrs,
        "status": status,
        "vessels_in_port": int(clamp(40 + 30 * (1 - m.daylight) + noise(r, 8), 0, 10_000)),
        "wave_height": r1(clamp(0.8 + noise(r, 0.3), 0.1, 30)),
    }
    return reading if reason is None else {**reading, "closure_reason": reason}


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
        # 10-15 minutes; over 25 only in a surge (the 30-minute rule is for real delays)
        "response_time": int(
            clamp(r.gauss(600 + 300 * m.rush + 1200 * surge, 120), 60, 1500 + 3000 * surge)
        ),
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


def _school(n: int, r: random.Random) -> dict[str, Any]:
    level = LEVELS[n % len(LEVELS)]
    return {"school": f"Trường {level.replace('_', ' ')} số {n + 1}", "level": level}


PROFILES: dict[type[DomainEvent], Profile] = {
    environment.AirQualityObserved: Profile("aq", 24, 6, PERI, air_v1, sites=AIR),
    environment.AirQualityObservedV2: Profile("aq2", 8, 2, PERI, air_v2, sites=AIR),
    environment.WaterLevelObserved: Profile(
        "wl", 30, 4, RURAL, water_level, from_sites(WATER_STATIONS), sites=WATER_STATIONS
    ),
    environment.WeatherObserved: Profile("ws", 25, 4, ANY, weather, sites=WEATHER),
    tr.TrafficFlowObserved: Profile(
        "tf", 120, 16, URBAN, traffic, from_sites(CORRIDORS), lambda m: 0.3 + m.rush,
        sites=CORRIDORS,
    ),
    tr.ParkingOccupancy: Profile(
        "pk", 30, 4, URBAN, parking,
        lambda n, r: {
            **PARKING[n % len(PARKING)].attrs, "total_spot_number": r.randrange(40, 400)
        },
        sites=PARKING,
    ),
    tr.BusPosition: Profile(
        "bus", 60, 10, PERI, bus, lambda n, r: {"route_id": f"{n % 12 + 1:02d}"},
        lambda m: 0.05 + m.rush, sites=BUSES,
    ),
    tr.PortStatus: Profile(
        "port", 4, 0.2, PERI, port_status, from_sites(PORTS), lambda m: 0.2 + m.office,
        sites=PORTS,
    ),
    agriculture.SoilMoistureObserved: Profile(
        "soil", 200, 8, RURAL, soil,
        lambda n, r: {**FARMS[n % len(FARMS)].attrs, "depth": 30}, sites=FARMS,
    ),
    agriculture.IrrigationFlow: Profile(
        "irr", 80, 4, RURAL, irrigation,
        lambda n, r: {
            **FARMS[n % len(FARMS)].attrs, "water_source": ("well", "river", "reservoir")[n % 3]
        },
        lambda m: 0.2 + m.daylight, sites=FARMS,
    ),
    agriculture.PestReport: Profile(
        "pest", 40, 0.3, RURAL, pest, from_sites(FARMS), lambda m: m.office, sites=FARMS
    ),
    health.HospitalBedOccupancy: Profile(
        "hosp", 12, 2, PERI, beds,
        lambda n, r: {
            **HOSPITALS[n % len(HOSPITALS)].attrs,
            "beds_total": r.randrange(150, 1200),
            "icu_total": r.randrange(10, 60),
        },
        sites=HOSPITALS,
    ),
    health.AmbulanceDispatch: Profile("amb", 40, 1.5, ANY, ambulance),
    health.DiseaseCaseReport: Profile("dis", 35, 0.5, ANY, disease, zone_only=True),
    security.CameraEvent: Profile(
        "cam", 150, 6, URBAN, camera, lambda n, r: {"camera_id": f"CAM-{n:04d}"}, sites=WATCHED
    ),
    security.EmergencyCall: Profile("call", 30, 0.2, ANY, emergency_call),
    security.FireAlarm: Profile(
        "fire", 80, 2, PERI, fire_alarm, lambda n, r: {"building": f"Tòa nhà {n + 1}"},
        sites=WATCHED,
    ),
    tourism.VisitorCount: Profile(
        "site", 14, 3, ANY, visitors, from_sites(TOURIST_SITES), lambda m: 0.1 + m.daylight,
        sites=TOURIST_SITES,
    ),
    tourism.HotelOccupancy: Profile(
        "hotel", 40, 1, URBAN, hotel,
        lambda n, r: {
            "hotel": f"Khách sạn {HOTELS[n % len(HOTELS)]} {n + 1}",
            "stars": r.randrange(1, 6),
            "rooms_total": r.randrange(20, 250),
        },
        sites=HOTEL_AREAS,
    ),
    # Schools, permits, ambulances, calls, outages and disease reports: in every unit.
    education.SchoolAttendance: Profile(
        "sch", 120, 2, ANY, attendance,
        lambda n, r: {**_school(n, r), "enrolled": r.randrange(200, 1800)}, lambda m: m.school,
    ),
    education.FacilityStatus: Profile("fac", 120, 2, ANY, facility, _school),
    planning.BuildingPermit: Profile(
        "bp", 400, 0.6, PERI, permit, weight_by=lambda m: m.office, sites=BUILDING_AREAS
    ),
    planning.ConstructionViolation: Profile(
        "cv", 60, 0.3, PERI, violation, weight_by=lambda m: m.office, sites=BUILDING_AREAS
    ),
    planning.UtilityOutage: Profile("out", 50, 0.5, ANY, outage),
}  # fmt: skip


def initial_state(model: type[DomainEvent], r: random.Random) -> dict[str, float]:
    """Per-entity evolving values, where a profile needs them."""
    return STATE.get(model, lambda r: {})(r)


def _water_state(r: random.Random) -> dict[str, float]:
    return {"datum": r.uniform(1.0, 4.0)}  # the level starts at its season's (water_level)


STATE: dict[type[DomainEvent], Callable[[random.Random], dict[str, float]]] = {
    environment.AirQualityObserved: lambda r: {"pm25": r.uniform(12, 30)},
    environment.AirQualityObservedV2: lambda r: {"pm25": r.uniform(12, 30)},
    environment.WaterLevelObserved: _water_state,
    tr.TrafficFlowObserved: lambda r: {
        "capacity": r.uniform(600, 3000),
        "free_speed": r.uniform(35, 60),
    },
}


# -- scripted scenarios --------------------------------------------------------------------------
# A scripted scenario is deterministic: in its zone, every entity of a signal's model reports on
# a fixed schedule (every `Script.every_s` of event time) with calm values, and with the phase's
# values while the phase lasts; nothing else in the zone is touched (no random effects). The run
# then covers `span_s` of event time ending at its nominal end, so that minutes-long rules open
# and clear within a short run, and the simulator knows which readings breach: the manifest lists
# the incidents they must open (simulator.generate.expected_incidents).

Values = dict[str, Any]  # field -> value, or a function of the entity


@dataclass(frozen=True, slots=True)
class Signal:
    """One kind of scripted reading: its model, calm values, the phase (from_s, to_s offsets from
    the run's first event time) with its values, and the per-entity rule the phase breaches."""

    model: type[DomainEvent]
    calm: Values
    phase: tuple[float, float, Values]
    rule: str | None = None


@dataclass(frozen=True, slots=True)
class Script:
    signals: tuple[Signal, ...]  # in the order of the compound rule's conditions
    compound: str  # the correlation rule the phases meet together
    span_s: float = 3300.0  # 55 min: the oldest event stays under the default 1 h late horizon
    every_s: float = 60.0


def _level(rise: float) -> Callable[[Entity], float]:
    return lambda e: r2(e.state["datum"] + rise)


def _present(occupancy: float) -> Callable[[Entity], int]:
    return lambda e: int(e.attrs["capacity"] * occupancy)


SCRIPTS: dict[str, Script] = {
    # Tuy Hoà: very heavy rain, the Đà Rằng at alert II, the streets at a crawl.
    "flood": Script(
        (
            Signal(environment.WeatherObserved, {"precipitation": 1.5},
                   (180, 720, {"precipitation": 65.0, "relative_humidity": 98.0}), "env.rain.heavy"),
            Signal(environment.WaterLevelObserved, {"alert_level": 1, "water_level": _level(2.1)},
                   (240, 840, {"alert_level": 2, "water_level": _level(3.4)}),
                   "env.river.flood-alert-2"),
            Signal(tr.TrafficFlowObserved, {"average_vehicle_speed": 30.0, "congested": False},
                   (300, 720, {"average_vehicle_speed": 7.0, "congested": True, "occupancy": 0.8}),
                   "transport.corridor.slow"),
        ),
        "compound.flood-impact",
    ),
    # Buôn Ma Thuột's festival square full, and the ambulances stuck in the crowd.
    "festival-crowd": Script(
        (
            Signal(tourism.VisitorCount, {"occupancy": 0.4, "people_count": _present(0.4)},
                   (180, 900, {"occupancy": 1.1, "people_count": _present(1.1)}),
                   "tourism.site.crowded"),
            Signal(health.AmbulanceDispatch, {"response_time": 720},
                   (300, 780, {"response_time": 2100, "priority": "P1"}),
                   "health.ambulance.slow-response"),
        ),
        "compound.crowd-health-risk",
    ),
    # Sông Cầu on the coast: a storm from the sea brings Beaufort 9 winds and a surge, and the
    # harbour master closes Dân Phước port; the fleet shelters inside until the ban is lifted.
    "coastal-storm": Script(
        (
            Signal(environment.WeatherObserved, {"wind_speed": 4.0},
                   (240, 960, {"wind_speed": 24.0, "precipitation": 35.0,
                               "atmospheric_pressure": 985.0}), "env.wind.storm-force"),
            Signal(tr.PortStatus, {"status": "open", "closure_reason": None, "wave_height": 0.8},
                   (300, 900, {"status": "closed", "closure_reason": "storm", "wave_height": 4.5,
                               "vessels_in_port": 320}), None),
        ),
        "compound.coastal-storm-impact",
    ),
}  # fmt: skip


def scripted_reading(signal: Signal, entity: Entity, offset_s: float, data: Values) -> Values:
    """`data` (an ordinary reading) with the signal's calm or phase values at `offset_s`; a
    value of None leaves the field out."""
    start, end, values = signal.phase
    chosen = values if start <= offset_s < end else signal.calm
    merged = {**data, **{k: v(entity) if callable(v) else v for k, v in chosen.items()}}
    return {k: v for k, v in merged.items() if v is not None}
