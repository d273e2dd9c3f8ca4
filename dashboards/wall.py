"""The wall, "IOC overview": what the operations center sees from across the room.

Top, a health tile per domain (events/min, freshness, open incidents), coloured by thresholds and
linked to the domain's dashboard. Then the open incidents by severity, the map (zones coloured by
open incidents, the sensors' latest positions), data freshness per domain as a state timeline,
and the pipeline's end-to-end latency p95 and consumer lag.

Every query reads a table made for it: measurements_latest and incidents for current values,
the raw events only for the last 5 or 15 minutes, pipeline_stats_1m (the per-minute rollup of
pipeline_stats) for the pipeline's health over the range.
"""

from __future__ import annotations

from dataclasses import dataclass

from grafana_foundation_sdk.builders import common, dashboard, geomap
from grafana_foundation_sdk.models import common as cm
from grafana_foundation_sdk.models import dashboard as dm
from grafana_foundation_sdk.models import geomap as gm

from dashboards import kit
from dashboards.postgres import DATASOURCE, sql
from dashboards.sql import OPEN, SEVERITIES, SEVERITY_COLOURS, health_tile
from domains.registry import default_registry

# Where Grafana serves the shipped zone file (docker-compose.yml mounts geo/data/*.geojson there).
ZONES_GEOJSON = "public/maps/ioc-zones.geojson"

# Freshness, in seconds from event time to database commit (pipeline_stats.latency_p95_s).
FRESH_S, DELAYED_S, LATE_S = 30, 120, 600

TILE_STEPS = {
    "events/min": ((None, "red"), (1, "green")),
    "freshness": ((None, "green"), (DELAYED_S, "orange"), (LATE_S, "red")),
    "open incidents": ((None, "green"), (1, "orange"), (5, "red")),
}
TILE_UNITS = {"events/min": "none", "freshness": "s", "open incidents": "none"}

SEVERITY_QUERY = (
    "SELECT "
    + ",\n  ".join(f"count(*) FILTER (WHERE severity = '{s}') AS \"{s}\"" for s in SEVERITIES)
    + f"\nFROM incidents WHERE {OPEN}"
)

ZONES_QUERY = f"""SELECT z.id AS zone_id, z.name AS zone, z.centroid_lat AS latitude,
  z.centroid_lon AS longitude, coalesce(i.n, 0) AS open_incidents
FROM zones z LEFT JOIN (
  SELECT zone_id, count(*) AS n FROM incidents WHERE {OPEN} GROUP BY zone_id
) i ON i.zone_id = z.id
ORDER BY open_incidents DESC, z.name"""

SENSORS_QUERY = """SELECT DISTINCT ON (entity_id) entity_id AS sensor, domain, lat AS latitude,
  lon AS longitude, time
FROM events
WHERE time > $__timeTo()::timestamptz - interval '15 minutes' AND time <= $__timeTo()
  AND lat IS NOT NULL AND lon IS NOT NULL
ORDER BY entity_id, time DESC"""

LATENCY_QUERY = """SELECT $__timeGroupAlias(bucket, $__interval), domain AS metric,
  max(latency_p95_s) AS value
FROM pipeline_stats_1m
WHERE $__timeFilter(bucket) AND latency_p95_s IS NOT NULL
GROUP BY 1, 2
ORDER BY 1, 2"""

# Each worker's time-weighted mean lag over the interval, summed over the workers (each consumes
# its own partitions of the domain's topic).
LAG_QUERY = """SELECT time, domain AS metric, sum(lag) AS value
FROM (
  SELECT $__timeGroupAlias(bucket, $__interval), domain, worker,
    sum(lag_s) / nullif(sum(lag_window_s), 0) AS lag
  FROM pipeline_stats_1m
  WHERE $__timeFilter(bucket) AND lag_s IS NOT NULL
  GROUP BY 1, 2, 3
) per_worker
GROUP BY 1, 2
ORDER BY 1, 2"""


def domain_names() -> list[str]:
    return sorted(default_registry().domains())


def freshness_query(domains: list[str]) -> str:
    """The state timeline's shape: a time column, then one column per domain holding the p95
    age of the data stored in that slot (NULL: nothing stored, shown as "no data"). The slots
    come from generate_series, so a slot without a row is a NULL, not a gap the panel bridges."""
    columns = ",\n  ".join(
        f"max(s.p95) FILTER (WHERE s.domain = '{d}') AS \"{d}\"" for d in domains
    )
    return f"""WITH s AS (
  SELECT $__timeGroupAlias(bucket, $__interval), domain,
    CASE WHEN sum(stored) > 0 THEN max(latency_p95_s) END AS p95
  FROM pipeline_stats_1m
  WHERE $__timeFilter(bucket)
  GROUP BY 1, 2
),
slots AS (
  SELECT generate_series(
    time_bucket($__interval_ms * interval '1 millisecond', $__timeFrom()::timestamptz),
    $__timeTo()::timestamptz, $__interval_ms * interval '1 millisecond') AS time
)
SELECT slots.time,
  {columns}
FROM slots LEFT JOIN s ON s.time = slots.time
GROUP BY slots.time
ORDER BY 1"""


def thresholds_prop(steps: tuple[kit.Step, ...]) -> dm.DynamicConfigValue:
    return kit.prop(
        "thresholds",
        {"mode": "absolute", "steps": [{"value": v, "color": c} for v, c in steps]},
    )


def tile(domain: str) -> dashboard.Panel:
    panel = kit.stat_panel(domain.capitalize(), health_tile(domain)).links(
        [dashboard.DashboardLink(f"{domain} dashboard").url(f"/d/ioc-{domain}")]
    )
    for field, steps in TILE_STEPS.items():
        panel = panel.override_by_name(
            field, [thresholds_prop(steps), kit.prop("unit", TILE_UNITS[field])]
        )
    return panel.no_value("0")


def severity_panel() -> dashboard.Panel:
    panel = kit.stat_panel("Open incidents by severity", SEVERITY_QUERY).links(
        [dashboard.DashboardLink("Incidents").url("/d/ioc-incidents")]
    )
    for severity in SEVERITIES:
        steps = ((None, "#3d3d3d"), (1, SEVERITY_COLOURS[severity]))
        panel = panel.override_by_name(severity, [thresholds_prop(steps)])
    return panel


def _markers(name: str, ref_id: str, *, legend: bool, color: dict[str, object],
             size: dict[str, object], opacity: float) -> common.MapLayerOptions:  # fmt: skip
    """A markers layer placed by the `latitude`/`longitude` columns of query `ref_id`."""
    return (
        common.MapLayerOptions()
        .type("markers")
        .name(name)
        .filter_data({"id": "byRefId", "options": ref_id})
        .location(
            common.FrameGeometrySource()
            .mode(cm.FrameGeometrySourceMode.COORDS)
            .latitude("latitude")
            .longitude("longitude")
        )
        .config(
            {
                "showLegend": legend,
                "style": {
                    "color": color,
                    "size": size,
                    "opacity": opacity,
                    "symbol": {"fixed": "img/icons/marker/circle.svg", "mode": "fixed"},
                },
            }
        )
        .tooltip(True)
    )


def map_panel() -> geomap.Panel:
    zones_outline = (
        common.MapLayerOptions()
        .type("geojson")
        .name("Zones")
        .config(
            {
                "src": ZONES_GEOJSON,
                "rules": [],
                "style": {
                    "color": {"fixed": "#8ab8ff"},
                    "opacity": 0.15,
                    "lineWidth": 1,
                    "symbol": {"fixed": "", "mode": "fixed"},
                },
            }
        )
        .tooltip(True)
    )
    incidents_per_zone = _markers(
        "Open incidents per zone", "A", legend=True,
        color={"field": "open_incidents", "fixed": "green"},
        size={"field": "open_incidents", "fixed": 6, "min": 6, "max": 24}, opacity=0.8,
    )  # fmt: skip
    sensors = _markers(
        "Sensors (latest position)", "B", legend=False, color={"fixed": "#b0b0b0"},
        size={"fixed": 2}, opacity=0.6,
    )  # fmt: skip
    return (
        geomap.Panel()
        .title("Zones by open incidents, sensors' latest positions")
        .datasource(DATASOURCE)
        .with_target(sql(ZONES_QUERY, ref_id="A"))
        .with_target(sql(SENSORS_QUERY, ref_id="B"))
        .view(geomap.MapViewConfig().id("fit").all_layers(True).padding(2))
        .controls(geomap.ControlsOptions().show_zoom(True).mouse_wheel_zoom(False))
        .basemap(common.MapLayerOptions().type("default").name("Basemap"))
        .layers([zones_outline, incidents_per_zone, sensors])
        .tooltip(geomap.TooltipOptions().mode(gm.TooltipMode.DETAILS))
        .thresholds(kit.thresholds((None, "green"), (1, "orange"), (3, "red")))
        .color_scheme(dashboard.FieldColor().mode(dm.FieldColorModeId.THRESHOLDS))
    )


def freshness_panel(domains: list[str]) -> dashboard.Panel:
    return (
        kit.timeline(
            "Data freshness per domain (p95 event age at storage)", freshness_query(domains)
        )
        .unit("s")
        .mappings(
            [
                kit.range_text(0, FRESH_S, "fresh", "green"),
                kit.range_text(FRESH_S, DELAYED_S, "delayed", "yellow"),
                kit.range_text(DELAYED_S, LATE_S, "late", "orange"),
                kit.range_text(LATE_S, None, "stale", "red"),
                kit.null_text("no data", "dark-red"),
            ]
        )
        .span_nulls(False)
    )


def latency_panel() -> dashboard.Panel:
    return kit.series_panel(
        "End-to-end latency p95 (event time to database commit)", LATENCY_QUERY, unit="s",
        steps=((None, "green"), (FRESH_S, "orange"), (DELAYED_S, "red")),
    )  # fmt: skip


def lag_panel() -> dashboard.Panel:
    return kit.series_panel("Consumer lag (records behind, all workers)", LAG_QUERY, unit="short")


@dataclass(frozen=True)
class Placed:
    panel: dashboard.Panel
    pos: dm.GridPos


def wall_panels() -> list[Placed]:
    domains = domain_names()
    width = 24 // len(domains)
    placed = [
        Placed(tile(d), dm.GridPos(h=5, w=width, x=i * width, y=0)) for i, d in enumerate(domains)
    ]
    placed += [
        Placed(map_panel(), dm.GridPos(h=16, w=12, x=0, y=5)),
        Placed(severity_panel(), dm.GridPos(h=4, w=12, x=12, y=5)),
        Placed(freshness_panel(domains), dm.GridPos(h=12, w=12, x=12, y=9)),
        Placed(latency_panel(), dm.GridPos(h=8, w=12, x=0, y=21)),
        Placed(lag_panel(), dm.GridPos(h=8, w=12, x=12, y=21)),
    ]
    return placed


def wall() -> dashboard.Dashboard:
    board = (
        kit.new_dashboard(kit.WALL_UID, "IOC overview", ["wall"], time_from="now-6h")
        .refresh("30s")
        .description("The operations center's wall: every domain's health, incidents, the map.")
        .link(kit.link_to_others())
    )
    for number, p in enumerate(wall_panels(), start=1):
        board = board.with_panel(p.panel.id(number).grid_pos(p.pos))
    return board
