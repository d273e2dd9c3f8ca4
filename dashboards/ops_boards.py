"""The pipeline dashboard (throughput, DLQ by reason, lag, latency, workers) and the incidents
dashboard (open, acknowledged, time to acknowledge, flapping, silences).

Pipeline ranges read pipeline_stats_1m, the per-minute rollup; the DLQ's reasons (a JSON object
per window) and the workers' last windows read pipeline_stats itself."""

from __future__ import annotations

from grafana_foundation_sdk.builders import common, dashboard
from grafana_foundation_sdk.models import common as cm

from dashboards import kit
from dashboards.sql import INCIDENT_DOMAIN, OPEN, SEVERITIES, SEVERITY_COLOURS, ZONE_FILTER
from dashboards.wall import lag_panel, latency_panel

STORED_PER_MIN = """SELECT $__timeGroupAlias(bucket, $__interval), domain AS metric,
  sum(stored) / ($__interval_ms / 60000.0) AS value
FROM pipeline_stats_1m
WHERE $__timeFilter(bucket)
GROUP BY 1, 2
ORDER BY 1, 2"""

OUTCOMES = """SELECT $__timeGroupAlias(bucket, $__interval), sum(stored) AS stored,
  sum(duplicates) AS duplicates, sum(rejected) AS "to the DLQ"
FROM pipeline_stats_1m
WHERE $__timeFilter(bucket)
GROUP BY 1
ORDER BY 1"""

DLQ_BY_REASON = """SELECT $__timeGroupAlias(p.time, $__interval), r.key AS metric,
  sum(r.value::bigint) AS value
FROM pipeline_stats p CROSS JOIN LATERAL jsonb_each_text(p.rejected_by_reason) r
WHERE $__timeFilter(p.time)
GROUP BY 1, 2
ORDER BY 1, 2"""

DLQ_TOTALS = """SELECT r.key AS reason, sum(r.value::bigint) AS events
FROM pipeline_stats p CROSS JOIN LATERAL jsonb_each_text(p.rejected_by_reason) r
WHERE $__timeFilter(p.time)
GROUP BY 1
ORDER BY 2 DESC"""

LATENCY_QUANTILES = """SELECT $__timeGroupAlias(bucket, $__interval), max(latency_p50_s) AS p50,
  max(latency_p95_s) AS p95, max(latency_p99_s) AS p99
FROM pipeline_stats_1m
WHERE $__timeFilter(bucket)
GROUP BY 1
ORDER BY 1"""

WORKERS = """SELECT DISTINCT ON (worker, domain) worker, domain, time AS "last window",
  received, stored, duplicates, rejected, lag, latency_p95_s AS "latency p95 (s)"
FROM pipeline_stats
WHERE time > $__timeTo()::timestamptz - interval '5 minutes' AND time <= $__timeTo()
ORDER BY worker, domain, time DESC"""

TOTALS = """SELECT sum(stored) AS stored, sum(duplicates) AS duplicates, sum(rejected) AS "to the DLQ",
  100.0 * sum(rejected) / nullif(sum(received), 0) AS "rejected %"
FROM pipeline_stats_1m
WHERE $__timeFilter(bucket)"""


def pipeline_dashboard() -> dashboard.Dashboard:
    totals = kit.stat_panel("In the range", TOTALS, unit="short").override_by_name(
        "rejected %",
        [
            kit.prop("unit", "percent"),
            kit.prop(
                "thresholds",
                {"mode": "absolute", "steps": [
                    {"value": None, "color": "green"}, {"value": 1, "color": "orange"},
                    {"value": 5, "color": "red"},
                ]},
            ),
        ],
    )  # fmt: skip
    panels: list[tuple[dashboard.Panel, int, int]] = [
        (totals, 24, 4),
        (kit.series_panel("Events stored per minute, by domain", STORED_PER_MIN), 12, 8),
        (
            kit.series_panel("Outcomes: stored, duplicates, DLQ", OUTCOMES, fmt="table", bars=True)
            .stacking(common.StackingConfig().mode(cm.StackingMode.NORMAL)),
            12, 8,
        ),
        (kit.series_panel("DLQ by reason", DLQ_BY_REASON, bars=True), 12, 8),
        (kit.bars_panel("DLQ by reason, whole range", DLQ_TOTALS, unit="short"), 12, 8),
        (lag_panel(), 12, 8),
        (latency_panel(), 12, 8),
        (kit.series_panel("Latency quantiles, all domains", LATENCY_QUANTILES, unit="s", fmt="table"), 12, 8),
        (kit.table("Workers: last window per domain", WORKERS), 12, 8),
    ]  # fmt: skip
    board = (
        kit.new_dashboard("ioc-pipeline", "Pipeline", ["pipeline"], time_from="now-6h")
        .description("Kafka -> Faust workers -> database: throughput, DLQ, lag, latency.")
        .link(kit.link_to_wall())
        .link(kit.link_to_others())
    )
    for number, (panel, w, h) in enumerate(panels, start=1):
        board = board.with_panel(panel.id(number).span(w).height(h))
    return board


ZONED = f"(zone_id IS NULL OR {ZONE_FILTER})"

STATE_COUNTS = f"""SELECT count(*) FILTER (WHERE state = 'open') AS "open",
  count(*) FILTER (WHERE state = 'acknowledged') AS "acknowledged",
  count(*) FILTER (WHERE {OPEN} AND flapping) AS "flapping"
FROM incidents
WHERE {OPEN} AND {ZONED}"""

TIME_TO_ACK = f"""SELECT
  percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM acknowledged_at - created_at)) AS "median",
  percentile_cont(0.95) WITHIN GROUP (ORDER BY extract(epoch FROM acknowledged_at - created_at)) AS "p95"
FROM incidents
WHERE acknowledged_at IS NOT NULL AND $__timeFilter(acknowledged_at) AND {ZONED}"""

TIME_TO_ACK_SERIES = f"""SELECT $__timeGroupAlias(acknowledged_at, '1h'), severity AS metric,
  avg(extract(epoch FROM acknowledged_at - created_at)) AS value
FROM incidents
WHERE acknowledged_at IS NOT NULL AND $__timeFilter(acknowledged_at) AND {ZONED}
GROUP BY 1, 2
ORDER BY 1, 2"""

OPENED = f"""SELECT $__timeGroupAlias(opened_at, '1h'), severity AS metric, count(*) AS value
FROM incidents
WHERE $__timeFilter(opened_at) AND {ZONED}
GROUP BY 1, 2
ORDER BY 1, 2"""

BY_DOMAIN = f"""SELECT {INCIDENT_DOMAIN} AS domain, count(*) AS open
FROM incidents
WHERE {OPEN} AND {ZONED}
GROUP BY 1
ORDER BY 2 DESC"""

OPEN_TABLE = f"""SELECT i.severity, i.state, {INCIDENT_DOMAIN} AS domain, i.title, z.name AS zone,
  i.opened_at AS opened, i.acknowledged_by AS "acknowledged by", i.count, i.flapping
FROM incidents i LEFT JOIN zones z ON z.id = i.zone_id
WHERE i.{OPEN} AND (i.zone_id IS NULL OR i.{ZONE_FILTER})
ORDER BY CASE i.severity WHEN 'critical' THEN 0 WHEN 'high' THEN 1 WHEN 'medium' THEN 2
  WHEN 'low' THEN 3 ELSE 4 END, i.opened_at DESC
LIMIT 100"""

FLAPPING = f"""SELECT i.title, z.name AS zone, i.entity_id AS entity, i.state, i.flap_count AS flaps,
  i.opened_at AS opened, i.last_seen AS "last seen"
FROM incidents i LEFT JOIN zones z ON z.id = i.zone_id
WHERE i.flapping AND $__timeFilter(i.last_seen) AND (i.zone_id IS NULL OR i.{ZONE_FILTER})
ORDER BY i.flap_count DESC, i.last_seen DESC
LIMIT 50"""

ACKS_BY_CHANNEL = """SELECT e.channel, count(*) AS acknowledgements
FROM incident_events e
WHERE e.kind = 'acknowledged' AND $__timeFilter(e.at)
GROUP BY 1
ORDER BY 2 DESC"""

SILENCES = """SELECT matchers::text AS matchers, starts_at AS "from", ends_at AS "until",
  created_by AS "by", comment
FROM silences
WHERE starts_at <= now() AND ends_at > now() AND expired_by IS NULL
ORDER BY ends_at"""


def incidents_dashboard() -> dashboard.Dashboard:
    counts = (
        kit.stat_panel("Now", STATE_COUNTS)
        .override_by_name("open", [kit.fixed_colour("red")])
        .override_by_name("acknowledged", [kit.fixed_colour("orange")])
        .override_by_name("flapping", [kit.fixed_colour("purple")])
    )
    opened = kit.series_panel("Opened per hour, by severity", OPENED, bars=True).stacking(
        common.StackingConfig().mode(cm.StackingMode.NORMAL)
    )
    for severity in SEVERITIES:
        opened = opened.override_by_name(severity, [kit.fixed_colour(SEVERITY_COLOURS[severity])])
    panels: list[tuple[dashboard.Panel, int, int]] = [
        (counts, 8, 5),
        (kit.stat_panel("Time to acknowledge", TIME_TO_ACK, unit="s",
                        steps=((None, "green"), (300, "orange"), (900, "red"))), 8, 5),
        (kit.bars_panel("Open by domain", BY_DOMAIN, unit="none",
                        steps=((None, "orange"),)), 8, 5),
        (kit.table("Open and acknowledged incidents", OPEN_TABLE), 24, 9),
        (opened, 12, 8),
        (kit.series_panel("Time to acknowledge, by severity", TIME_TO_ACK_SERIES, unit="s",
                          steps=((None, "green"), (300, "orange"), (900, "red"))), 12, 8),
        (kit.table("Flapping incidents", FLAPPING), 12, 8),
        (kit.bars_panel("Acknowledgements by channel", ACKS_BY_CHANNEL), 6, 8),
        (kit.table("Active silences", SILENCES), 6, 8),
    ]  # fmt: skip
    board = (
        kit.new_dashboard("ioc-incidents", "Incidents", ["incidents"], time_from="now-24h")
        .description("Open, acknowledged, time to acknowledge, flapping, silences.")
        .with_variable(kit.zone_variable())
        .link(kit.link_to_wall())
        .link(kit.link_to_others())
    )
    for number, (panel, w, h) in enumerate(panels, start=1):
        board = board.with_panel(panel.id(number).span(w).height(h))
    return board
