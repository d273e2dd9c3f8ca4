"""One dashboard per domain: its health, its open incidents, and panels chosen for its work.

A domain's panels are data (DOMAIN_PANELS): a trend per zone from the aggregates, the current
value per entity from measurements_latest, raw readings or events over the last hour. Limits
drawn on the panels are the default rules' levels (rules/defaults/*.yaml), so a panel and the
rule that opens the incident agree. Every dashboard has the `zone` variable and a link back to
the wall.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

from grafana_foundation_sdk.builders import common, dashboard
from grafana_foundation_sdk.models import common as cm

from dashboards import kit
from dashboards.sql import (
    INCIDENT_DOMAIN,
    OPEN,
    ZONE_FILTER,
    Series,
    health_tile,
    latest_by_entity,
    recent_points,
    zone_series,
)
from dashboards.wall import TILE_STEPS, TILE_UNITS, thresholds_prop
from domains.registry import default_registry
from rules.load import default_rule_files, load_rule_files
from rules.model import Baseline

RAW_WINDOW = "1h"  # panels on the raw tables never look further back


@cache
def limit(rule_id: str) -> float:
    """The level at which a default rule raises its incident; for a seasonal baseline rule, the
    least value that can raise it (its level itself changes with the season)."""
    rule = load_rule_files(default_rule_files()).by_id(rule_id)
    if isinstance(rule, Baseline):
        return float(rule.min_value)
    return float(rule.raise_at)  # type: ignore[union-attr]


def above(rule_id: str, warn: float | None = None) -> tuple[kit.Step, ...]:
    """Green below, orange from `warn`, red from the rule's level."""
    steps: list[kit.Step] = [(None, "green")]
    if warn is not None:
        steps.append((warn, "orange"))
    return (*steps, (limit(rule_id), "red"))


def below(rule_id: str, ok: float) -> tuple[kit.Step, ...]:
    """Red under the rule's level, orange up to `ok`, green above."""
    return ((None, "red"), (limit(rule_id), "orange"), (ok, "green"))


@dataclass(frozen=True)
class Trend:
    """One series per zone over the dashboard's range, from the aggregates."""

    title: str
    series: Series
    unit: str = "none"
    steps: tuple[kit.Step, ...] | None = None
    bars: bool = False

    def panel(self) -> dashboard.Panel:
        return kit.series_panel(
            self.title, zone_series(self.series), unit=self.unit, steps=self.steps, bars=self.bars
        )


@dataclass(frozen=True)
class Latest:
    """The current value per entity (measurements_latest), as bars."""

    title: str
    domain: str
    metric: str
    prefix: str
    unit: str = "none"
    steps: tuple[kit.Step, ...] = ((None, "green"),)
    lowest_first: bool = False
    max_value: float | None = None

    def panel(self) -> dashboard.Panel:
        query = latest_by_entity(
            self.domain, self.metric, self.prefix, order="ASC" if self.lowest_first else "DESC"
        )
        return kit.bars_panel(
            self.title, query, unit=self.unit, steps=self.steps, max_value=self.max_value
        )


@dataclass(frozen=True)
class Recent:
    """Every reading of the last hour (raw measurements), as points."""

    title: str
    domain: str
    metric: str
    prefix: str
    unit: str = "none"
    steps: tuple[kit.Step, ...] | None = None

    def panel(self) -> dashboard.Panel:
        query = recent_points(self.domain, self.metric, self.prefix)
        return (
            kit.series_panel(self.title, query, unit=self.unit, steps=self.steps)
            .draw_style(cm.GraphDrawStyle.POINTS)
            .point_size(5)
            .time_from(RAW_WINDOW)
        )


@dataclass(frozen=True)
class EventKinds:
    """Events of one type in the last hour by one of their fields, stacked per 5 minutes."""

    title: str
    domain: str
    event_type: str
    field: str

    def panel(self) -> dashboard.Panel:
        query = (
            f"SELECT $__timeGroupAlias(time, '5m'), data->>'{self.field}' AS metric,"
            f" count(*) AS value\nFROM events\n"
            f"WHERE $__timeFilter(time) AND domain = '{self.domain}'"
            f" AND type LIKE '%.{self.domain}.{self.event_type}.v%'\n"
            f"  AND {ZONE_FILTER}\nGROUP BY 1, 2\nORDER BY 1, 2"
        )
        return (
            kit.series_panel(self.title, query, bars=True)
            .stacking(common.StackingConfig().mode(cm.StackingMode.NORMAL))
            .time_from(RAW_WINDOW)
        )


PanelSpec = Trend | Latest | Recent | EventKinds

S = Series
DOMAIN_PANELS: dict[str, list[PanelSpec]] = {
    "environment": [
        Trend("PM2.5 by zone against the national limit (QCVN 05:2023, 24 h)",
              S("environment", "pm25"), "suffix: µg/m³", above("env.air.pm25-qcvn05", 25)),
        Latest("AQI now, by station", "environment", "aqi", "aq", "none",
               ((None, "green"), (51, "yellow"), (101, "orange"), (limit("env.air.aqi-bad"), "red"),
                (201, "purple"), (301, "dark-red"))),
        Trend("River and reservoir levels by zone (max)", S("environment", "water_level", "max"),
              "lengthm"),
        Latest("Flood alert level now, by gauge (national levels I-III)", "environment",
               "alert_level", "wl", "none",
               ((None, "green"), (1, "yellow"), (limit("env.river.flood-alert-2"), "orange"),
                (3, "red")), max_value=3),
        Trend("Rain by zone", S("environment", "precipitation", "max"), "suffix: mm/h",
              above("env.rain.heavy", 16), bars=True),
        Trend("Wind by zone (max)", S("environment", "wind_speed", "max"), "velocityms",
              above("env.wind.storm-force", 10.8)),
    ],
    "transport": [
        Trend("Average speed by zone", S("transport", "average_vehicle_speed"), "velocitykmh",
              below("transport.corridor.slow", 20)),
        Trend("Traffic flow by zone (vehicles/h, mean per counter)", S("transport", "intensity"),
              "none"),
        Latest("Car park occupancy now", "transport", "occupancy", "pk", "percentunit",
               ((None, "green"), (0.85, "orange"), (limit("transport.parking.saturated"), "red")),
               max_value=1),
        Recent("Bus delays, last hour (each report)", "transport", "delay", "bus", "s",
               ((None, "green"), (300, "orange"), (900, "red"))),
    ],
    "health": [
        Latest("Bed occupancy now, by hospital", "health", "occupancy", "hosp", "percentunit",
               ((None, "green"), (0.85, "orange"), (limit("health.hospital.overcrowded"), "red")),
               max_value=1.2),
        Latest("ICU beds occupied now, by hospital", "health", "icu_occupied", "hosp", "none"),
        Trend("Emergency department waiting by zone", S("health", "emergency_waiting", "max"),
              "none", above("health.emergency.crowded", 20)),
        Recent("Ambulance response times, last hour (each dispatch)", "health", "response_time",
               "amb", "s", above("health.ambulance.slow-response", 900)),
        Trend("Dengue: new cases reported by zone (the alert level follows the season)",
              S("health", "new_cases", "sum"), "none", above("health.dengue.cases-high"),
              bars=True),
    ],
    "security": [
        EventKinds("Camera detections, last hour", "security", "camera_event", "detection"),
        EventKinds("Emergency calls by category, last hour", "security", "emergency_call",
                   "category"),
        # no rule judges answer times (calls are counted per zone): red at a minute's wait
        Trend("Emergency call answer time by zone", S("security", "wait_time"), "s",
              ((None, "green"), (30, "orange"), (60, "red"))),
        Latest("Smoke density now, highest fire-alarm panels", "security", "smoke_density",
               "fire", "none", ((None, "green"), (2, "orange"), (5, "red"))),
        Trend("People counted by cameras by zone (max)", S("security", "people_count", "max"),
              "none"),
    ],
    "tourism": [
        Latest("Visitor sites: occupancy now", "tourism", "occupancy", "site", "percentunit",
               ((None, "green"), (0.75, "orange"), (limit("tourism.site.crowded"), "red")),
               max_value=1),
        Latest("Visitors on site now", "tourism", "people_count", "site", "none"),
        Trend("Entries by zone", S("tourism", "entries", "sum"), "none", bars=True),
        Latest("Hotel occupancy now (highest)", "tourism", "occupancy", "hotel", "percentunit",
               ((None, "green"), (0.85, "orange"), (0.95, "red")), max_value=1),
    ],
    "education": [
        Trend("Attendance rate by zone", S("education", "attendance_rate"), "percentunit",
              ((None, "red"), (0.85, "orange"), (0.92, "green"))),
        Latest("Lowest attendance now, by school", "education", "attendance_rate", "sch",
               "percentunit", ((None, "red"), (0.85, "orange"), (0.92, "green")),
               lowest_first=True, max_value=1),
        Trend("Classroom CO2 by zone (max)", S("education", "co2", "max"), "ppm",
              above("education.classroom.co2-high", 1000)),
        Trend("Classroom temperature by zone (max)", S("education", "classroom_temperature", "max"),
              "celsius", above("education.classroom.too-hot", 32)),
    ],
    "planning": [
        Trend("Building permits: processing days by zone", S("planning", "processing_days"), "d"),
        Trend("Construction violations by zone (count)", S("planning", "severity", "count"),
              "none", bars=True),
        EventKinds("Construction violations by kind, last hour", "planning",
                   "construction_violation", "violation"),
        Trend("Customers without utility service by zone (max)",
              S("planning", "customers_affected", "max"), "none",
              above("planning.outage.large", 1000)),
    ],
    "agriculture": [
        Trend("Soil moisture by zone", S("agriculture", "soil_moisture"), "percent",
              below("agri.soil.dry", 22)),
        Latest("Driest farms now", "agriculture", "soil_moisture", "soil", "percent",
               below("agri.soil.dry", 22), lowest_first=True),
        Trend("Irrigation flow by zone (total)", S("agriculture", "flow_rate", "sum"), "none"),
        Trend("Pest reports by zone (count)", S("agriculture", "severity", "count"), "none",
              bars=True),
        Trend("Pest severity by zone (max, 1-5)", S("agriculture", "severity", "max"), "none",
              ((None, "green"), (3, "orange"), (4, "red"))),
    ],
}  # fmt: skip


def incidents_table(domain: str) -> str:
    return f"""SELECT i.severity, i.state, i.title, z.name AS zone, i.entity_id AS entity,
  i.opened_at AS opened, i.last_value AS value, i.count, i.flapping
FROM incidents i LEFT JOIN zones z ON z.id = i.zone_id
WHERE i.{OPEN} AND {INCIDENT_DOMAIN} = '{domain}'
  AND (i.zone_id IS NULL OR i.{ZONE_FILTER})
ORDER BY CASE i.severity WHEN 'critical' THEN 0 WHEN 'high' THEN 1 WHEN 'medium' THEN 2
  WHEN 'low' THEN 3 ELSE 4 END, i.opened_at DESC
LIMIT 50"""


def domain_dashboard(domain: str) -> dashboard.Dashboard:
    title = default_registry().domain(domain).title
    board = (
        kit.new_dashboard(f"ioc-{domain}", title, ["domain", domain], time_from="now-6h")
        .description(f"{title}: health, open incidents and the domain's own panels.")
        .with_variable(kit.zone_variable())
        .link(kit.link_to_wall())
        .link(kit.link_to_others())
    )
    health = kit.stat_panel("Health", health_tile(domain)).no_value("0")
    for field, steps in TILE_STEPS.items():
        health = health.override_by_name(
            field, [thresholds_prop(steps), kit.prop("unit", TILE_UNITS[field])]
        )
    number = 1
    board = board.with_panel(health.id(number).span(8).height(6))
    number += 1
    board = board.with_panel(
        kit.table("Open incidents", incidents_table(domain)).id(number).span(16).height(6)
    )
    for spec in DOMAIN_PANELS[domain]:
        number += 1
        board = board.with_panel(spec.panel().id(number).span(12).height(8))
    return board


def domain_dashboards() -> list[dashboard.Dashboard]:
    return [domain_dashboard(d) for d in sorted(default_registry().domains())]
